"""TaskAPI: a spec-first task-management REST API."""

import warnings

__version__ = "1.0.0"

# Connexion imports starlette.testclient as it is imported (for App.test_client(), which a
# server never calls), and Starlette 1.10 warns there when httpx2 is not installed: a warning
# on every process's start that nothing in TaskAPI can act on. Installing httpx2 instead would
# load a second HTTP client into every worker; the tests install it (the dev extra).
warnings.filterwarnings(
    "ignore",
    message=r"Using `httpx` with `starlette\.testclient` is deprecated",
    module=r"connexion\.",
)
