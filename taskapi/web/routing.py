"""From a request to its operation: exact routing, the handler for each operationId, `Allow`.

TaskAPI answers the paths the spec defines, byte for byte. Connexion routes with Starlette,
which by default redirects `/api/v1/tasks/` to `/api/v1/tasks` (echoing the request's Host
header in the redirect); and anything Connexion did not route still reached Flask, whose own
router merges slashes (`//health` matched `/health`) and ran the handler without Connexion's
security step. Here neither happens: Starlette's routers never redirect
(web/framework/routing.py), and a request that no operation matched is a 404 before it
reaches Flask.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from connexion.resolver import Resolver
from connexion.utils import get_function_from_name
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from taskapi.web import context

# The OpenAPI path-item keys that are operations.
HTTP_METHODS = ("get", "put", "post", "delete", "patch")


def spec_operations(spec: Mapping[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """operationId -> (method, path, operation object) for every operation of `spec`."""
    return {
        operation["operationId"]: (method, path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }


class TagResolver(Resolver):  # type: ignore[misc]
    """operationId `createTask` tagged `tasks` -> taskapi.web.api.tasks.create_task."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self._tags = {op_id: op["tags"][0] for op_id, (_, _, op) in spec_operations(spec).items()}
        super().__init__(function_resolver=self._function)

    def _function(self, operation_id: str) -> Callable[..., Any]:
        name = re.sub(r"(?<!^)(?=[A-Z])", "_", operation_id).lower()
        function: Callable[..., Any] = get_function_from_name(
            f"taskapi.web.api.{self._tags[operation_id]}.{name}"
        )
        return function


class Routes:
    """The spec's paths and methods, for a correct `Allow` header on 405 responses."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self._routes = [
            (
                re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", path) + r"\Z"),
                ", ".join(m.upper() for m in item if m in HTTP_METHODS),
            )
            # Literal paths first: /api/v1/tasks/batch before /api/v1/tasks/{id}.
            for path, item in sorted(spec["paths"].items(), key=lambda p: p[0].count("{"))
        ]

    def allow(self, path: str) -> str:
        return next((methods for rx, methods in self._routes if rx.match(path)), "")


class RoutedOnlyMiddleware:
    """A 404 for any request no operation of the spec matched; it never reaches Flask."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and context.operation_id(scope) is None:
            raise HTTPException(404)
        await self.app(scope, receive, send)
