"""Middleware about headers, around Connexion's stack: CORS, security headers, HEAD as GET."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware as StarletteCORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskapi.web import problem_types
from taskapi.web.docs import DOCS_PREFIXES
from taskapi.web.framework.bridge import raw_headers
from taskapi.web.problem_types import PROBLEM_JSON, problem_bytes

CORS_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
CORS_HEADERS = (
    "Origin",
    "Content-Type",
    "Authorization",
    "If-Match",
    "If-None-Match",
    "Idempotency-Key",
)
CORS_EXPOSED = ("Location", "ETag", "Link", "Idempotent-Replayed", "Retry-After")
CORS_MAX_AGE = 86400

# JSON responses need no scripts, frames or anything else; Swagger UI (/ui/) does.
API_CSP = "default-src 'none'; frame-ancestors 'none'"


class CORSMiddleware(StarletteCORSMiddleware):
    """Starlette's CORS, answering preflights as the seed API does (204, no body)."""

    def __init__(self, app: ASGIApp, allow_origins: Sequence[str]) -> None:
        super().__init__(
            app,
            allow_origins=allow_origins,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_HEADERS,
            expose_headers=CORS_EXPOSED,
            max_age=CORS_MAX_AGE,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or any(name == b"origin" for name, _ in scope["headers"]):
            await super().__call__(scope, receive, send)
            return
        # Not a cross-origin request: Starlette would only add Origin to the response's Vary
        # (so caches keep it apart from cross-origin answers); that, without its bookkeeping.

        async def send_varying(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                vary = [value for name, value in headers if name.lower() == b"vary"]
                headers = [h for h in headers if h[0].lower() != b"vary"]
                message["headers"] = [*headers, (b"vary", b", ".join([*vary, b"Origin"]))]
            await send(message)

        await self.app(scope, receive, send_varying)

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in ("content-length", "content-type")
        }
        if response.status_code == 200:
            return Response(status_code=204, headers=headers)
        detail = bytes(response.body).decode()
        return Response(
            problem_bytes(problem_types.for_status(400), detail),
            400,
            headers,
            media_type=PROBLEM_JSON,
        )


# Every response gets these; API responses, unlike the docs pages (which set their own CSP),
# also get the CSP, and no-store unless their handler chose a Cache-Control.
DOCS_HEADERS = raw_headers(
    [
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
    ]
)
API_HEADERS = DOCS_HEADERS + raw_headers([("Content-Security-Policy", API_CSP)])
NOT_CACHED = raw_headers([("Cache-Control", "no-store")])
# Per kind of response (API or not): the headers added, and the names they replace.
SECURITY_HEADERS = {
    is_api: (added, {name for name, _ in added})
    for is_api, added in ((True, API_HEADERS), (False, DOCS_HEADERS))
}


class SecurityHeadersMiddleware:
    """Headers every response carries, errors included (OWASP REST Security Cheat Sheet).

    They replace any of the same name the handler set, in one pass over the response's headers.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        is_api = not path.startswith(DOCS_PREFIXES)
        added, names = SECURITY_HEADERS[is_api]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", ()) if h[0].lower() not in names]
                if is_api and all(name.lower() != b"cache-control" for name, _ in headers):
                    headers += NOT_CACHED
                message["headers"] = headers + added
            await send(message)

        await self.app(scope, receive, send_with_headers)


class HeadAsGetMiddleware:
    """HEAD is GET without the body (RFC 9110 section 9.3.2), for every GET operation."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_without_body)
