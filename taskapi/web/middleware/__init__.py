"""TaskAPI's ASGI middleware; app.middleware_stack() puts it in order around Connexion's."""
