"""Everything that knows HTTP, ASGI, Connexion or Flask: handlers, middleware, problems, docs."""
