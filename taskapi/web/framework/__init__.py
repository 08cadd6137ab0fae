"""Where TaskAPI overrides Connexion, Flask, Starlette or uvicorn internals (README.md here)."""
