"""Connexion's routing middleware, matching paths exactly.

Starlette's routers redirect `/api/v1/tasks/` to `/api/v1/tasks` by default, echoing the
request's Host header in the redirect; Connexion builds a router per API and mounts it, and
neither takes an option to turn that off.

Starlette also compiles each route to `^...$`, and `$` matches before a final newline: a
request for `/api/v1/tasks%0A` matched the mount without its newline and the route with it, so
Connexion filed it under an API base path of `/`, which no API has, and its security and
validation steps let it through to the handler.
"""

from __future__ import annotations

import re
from typing import Any

from connexion.middleware.routing import RoutingMiddleware
from starlette.routing import BaseRoute, Mount, Router
from starlette.types import ASGIApp


class ExactRoutingMiddleware(RoutingMiddleware):  # type: ignore[misc]
    """Connexion's routing without trailing-slash redirects, and each route's match anchored
    at the very end of the path."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app)
        self.router.redirect_slashes = False

    def add_api(self, *args: Any, **kwargs: Any) -> None:
        super().add_api(*args, **kwargs)
        for route in self.router.routes:
            _anchor_at_end(route)
            if isinstance(route, Mount) and isinstance(route.app, Router):
                route.app.redirect_slashes = False
                for child in route.app.routes:
                    _anchor_at_end(child)


def _anchor_at_end(route: BaseRoute) -> None:
    regex: re.Pattern[str] | None = getattr(route, "path_regex", None)
    if regex is not None and regex.pattern.endswith("$"):
        route.path_regex = re.compile(regex.pattern[:-1] + r"\Z", regex.flags)  # type: ignore[attr-defined]
