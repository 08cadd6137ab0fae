"""Domain errors, and how every error becomes an RFC 9457 problem response.

Every error body is `application/problem+json` with `type`, `title`, `status` and `detail`,
plus the seed API's `"success": false` and `"error"` (the same message as `detail`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from sqlalchemy import exc as sa_exc

log = logging.getLogger("taskapi")

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = "5"
# The OpenAPI path-item keys that are operations.
HTTP_METHODS = ("get", "put", "post", "delete", "patch")


class DomainError(Exception):
    """A rule of the API was broken; `status` is the HTTP status it maps to."""

    status = 400

    def __init__(self, detail: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers or {})


class InvalidInput(DomainError):
    """A field breaks a rule the spec cannot express; reported like a validation error."""

    status = 400

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class Unauthorized(DomainError):
    status = 401


class Forbidden(DomainError):
    status = 403


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class PreconditionFailed(DomainError):
    status = 412


class Unprocessable(DomainError):
    status = 422


def problem_body(
    status: int, detail: str | None = None, *, title: str | None = None, **extra: Any
) -> dict[str, Any]:
    title = title or HTTPStatus(status).phrase
    detail = detail or title
    return {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "success": False,
        "error": detail,
        **extra,
    }


def problem_bytes(status: int, detail: str | None = None, **extra: Any) -> bytes:
    return json.dumps(problem_body(status, detail, **extra), separators=(",", ":")).encode()


class Routes:
    """The spec's paths and methods, for a correct `Allow` header on 405 responses."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self._routes = [
            (
                re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", path) + "/?$"),
                ", ".join(m.upper() for m in item if m in HTTP_METHODS),
            )
            # Literal paths first: /api/v1/tasks/batch before /api/v1/tasks/{id}.
            for path, item in sorted(spec["paths"].items(), key=lambda p: p[0].count("{"))
        ]

    def allow(self, path: str) -> str:
        return next((methods for rx, methods in self._routes if rx.match(path)), "")


def register_error_handlers(app: Any, routes: Routes) -> None:
    """Install the handlers that turn every exception into a problem response."""
    from connexion.exceptions import OAuthProblem, ProblemException
    from connexion.lifecycle import ConnexionRequest, ConnexionResponse
    from starlette.exceptions import HTTPException

    def respond(
        request: ConnexionRequest,
        status: int,
        detail: str | None,
        headers: Mapping[str, str] | None = None,
        *,
        title: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> ConnexionResponse:
        headers = dict(headers or {})
        if status == 401:
            headers["WWW-Authenticate"] = _www_authenticate(request.headers.get("authorization"))
        if status == 503:
            headers.setdefault("Retry-After", RETRY_AFTER_SECONDS)
        return ConnexionResponse(
            status_code=status,
            mimetype=PROBLEM_JSON,
            content_type=PROBLEM_JSON,
            body=problem_bytes(status, detail, title=title, **(extra or {})),
            headers=headers,
        )

    def on_problem(request: ConnexionRequest, exc: ProblemException) -> ConnexionResponse:
        detail = _first_paragraph(exc.detail)
        if isinstance(exc, OAuthProblem):
            detail = _unauthorized_detail(request.headers.get("authorization"), detail)
        return respond(request, exc.status, detail, exc.headers, title=exc.title, extra=exc.ext)

    def on_http_exception(request: ConnexionRequest, exc: HTTPException) -> ConnexionResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = routes.allow(request.url.path)
        detail = exc.detail if exc.detail != HTTPStatus(exc.status_code).phrase else None
        return respond(request, exc.status_code, detail, headers)

    def on_domain_error(request: ConnexionRequest, exc: DomainError) -> ConnexionResponse:
        extra = None
        if isinstance(exc, InvalidInput):
            extra = {"errors": [{"field": exc.field, "message": exc.rule}]}
        return respond(request, exc.status, exc.detail, exc.headers, extra=extra)

    def on_bad_encoding(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        return respond(request, 400, "request body: is not valid UTF-8")

    def on_database_unavailable(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        log.error("database unavailable: %s", type(exc).__name__)
        return respond(request, 503, "the database is unavailable; retry shortly")

    def on_integrity_error(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        log.warning("integrity error: %s", type(getattr(exc, "orig", exc)).__name__)
        return respond(request, 409, "the request conflicts with the current state")

    def on_data_error(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        log.warning("data error: %s", type(getattr(exc, "orig", exc)).__name__)
        return respond(request, 400, "a value is out of range for the database")

    def on_unexpected(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return respond(request, 500, "internal server error")

    app.add_error_handler(ProblemException, on_problem)
    app.add_error_handler(HTTPException, on_http_exception)
    app.add_error_handler(DomainError, on_domain_error)
    app.add_error_handler(UnicodeDecodeError, on_bad_encoding)
    for unavailable in (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError):
        app.add_error_handler(unavailable, on_database_unavailable)
    app.add_error_handler(sa_exc.IntegrityError, on_integrity_error)
    app.add_error_handler(sa_exc.DataError, on_data_error)
    app.add_error_handler(Exception, on_unexpected)


def _first_paragraph(detail: str | None) -> str | None:
    # Connexion appends a dump of the JSON schema after a blank line; clients need the first line.
    return detail.split("\n\n", 1)[0] if detail else detail


def _bearer_token_sent(authorization: str | None) -> bool:
    scheme, _, token = (authorization or "").strip().partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


def _unauthorized_detail(authorization: str | None, detail: str | None) -> str | None:
    # The seed API's messages, which its clients may show or match.
    if not authorization:
        return "Authorization header required"
    if not _bearer_token_sent(authorization):
        return "Invalid authorization header format"
    return detail


def _www_authenticate(authorization: str | None) -> str:
    # RFC 6750 section 3: an error code only when a token was presented.
    if _bearer_token_sent(authorization):
        return 'Bearer realm="taskapi", error="invalid_token"'
    return 'Bearer realm="taskapi"'
