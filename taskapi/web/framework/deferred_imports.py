"""Modules Connexion imports as it loads and a server never uses, loaded only when used.

Connexion imports, at the top of modules every app loads: `requests` (json_schema.py, for
remote `$ref`s), `httpx` (security.py, for OAuth token introspection) and Starlette's test
client (apps/abstract.py, for `App.test_client()`). A serving process calls none of them, and
they take memory in every worker (docs/performance.md, "Memory"). `defer()`, called before
Connexion is first imported, puts a stand-in in `sys.modules` for each, which loads the real
module at the first use of one of its attributes: a test client, or a remote `$ref`, still works.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

# Module -> the names Connexion takes from it with `from module import name`: each gets a
# stand-in too, which loads the module when it is called (to make an instance).
DEFERRED: dict[str, tuple[str, ...]] = {
    "requests": (),
    "httpx": (),
    "starlette.testclient": ("TestClient",),
}


class DeferredModule(types.ModuleType):
    """Stands in for a module until one of its attributes is used, then for the real one."""

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            # The import system asks for __path__ (is it a package?) and the like: answering
            # is no use of the module.
            raise AttributeError(attr)
        return getattr(_load(self), attr)


def _load(stand_in: DeferredModule) -> types.ModuleType:
    name = stand_in.__name__
    if sys.modules.get(name) is stand_in:
        del sys.modules[name]
    real = importlib.import_module(name)
    # Later uses of the stand-in find the real module's attributes on it directly.
    vars(stand_in).update({k: v for k, v in vars(real).items() if k not in ("__spec__",)})
    return real


def _deferred_callable(stand_in: DeferredModule, attr: str) -> type:
    class Deferred:
        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            return getattr(_load(stand_in), attr)(*args, **kwargs)

    Deferred.__name__ = Deferred.__qualname__ = attr
    return Deferred


def defer() -> None:
    """Put the stand-ins in place; a module already imported is left as it is.

    Not `importlib.util.LazyLoader`: on CPython 3.11, importing a module that is already in
    `sys.modules` reads its `__spec__`, and reading any attribute of a lazy module loads it, so
    Connexion's own `import requests` loaded it.
    """
    for name, taken in DEFERRED.items():
        if name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)
        if spec is None:
            continue
        stand_in = DeferredModule(name)
        stand_in.__spec__ = spec  # what the import system reads when it is imported again
        for attr in taken:
            setattr(stand_in, attr, _deferred_callable(stand_in, attr))
        sys.modules[name] = stand_in


def loaded(name: str) -> bool:
    """Whether the real module `name` has been executed in this process."""
    module = sys.modules.get(name)
    return module is not None and not isinstance(module, DeferredModule)
