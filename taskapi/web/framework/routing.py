"""Connexion's routing middleware, without Starlette's trailing-slash redirects.

Starlette's routers redirect `/api/v1/tasks/` to `/api/v1/tasks` by default, echoing the
request's Host header in the redirect; Connexion builds a router per API and mounts it, and
neither takes an option to turn that off.
"""

from __future__ import annotations

from typing import Any

from connexion.middleware.routing import RoutingMiddleware
from starlette.routing import Mount, Router
from starlette.types import ASGIApp


class ExactRoutingMiddleware(RoutingMiddleware):  # type: ignore[misc]
    """Connexion's routing without Starlette's trailing-slash redirects."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app)
        self.router.redirect_slashes = False

    def add_api(self, *args: Any, **kwargs: Any) -> None:
        super().add_api(*args, **kwargs)
        for route in self.router.routes:
            if isinstance(route, Mount) and isinstance(route.app, Router):
                route.app.redirect_slashes = False
