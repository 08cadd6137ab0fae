"""How every exception becomes an RFC 9457 problem response (web/problem_types.py renders it).

Every error body is `application/problem+json` with `type` (a page the API serves), `code`,
`title`, `status` and `detail`, plus the seed API's `"success": false` and `"error"` (the same
message as `detail`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import exc as sa_exc

from taskapi.domain.errors import DomainError, InvalidInput
from taskapi.web import problem_types
from taskapi.web.problem_types import PROBLEM_JSON, ProblemType, problem_bytes

if TYPE_CHECKING:
    from taskapi.web.routing import Routes

log = logging.getLogger("taskapi")

RETRY_AFTER_SECONDS = "5"


def register_error_handlers(app: Any, routes: Routes) -> None:
    """Install the handlers that turn every exception into a problem response."""
    from connexion.exceptions import OAuthProblem, OAuthScopeProblem, ProblemException
    from connexion.lifecycle import ConnexionRequest, ConnexionResponse
    from starlette.exceptions import HTTPException

    def respond(
        request: ConnexionRequest,
        problem: ProblemType,
        detail: str | None,
        headers: Mapping[str, str] | None = None,
        *,
        title: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> ConnexionResponse:
        headers = dict(headers or {})
        if problem.status == 401:
            headers["WWW-Authenticate"] = _www_authenticate(request.headers.get("authorization"))
        if problem.status == 503:
            headers.setdefault("Retry-After", RETRY_AFTER_SECONDS)
        return ConnexionResponse(
            status_code=problem.status,
            mimetype=PROBLEM_JSON,
            content_type=PROBLEM_JSON,
            body=problem_bytes(problem, detail, title=title, **(extra or {})),
            headers=headers,
        )

    def on_problem(request: ConnexionRequest, exc: ProblemException) -> ConnexionResponse:
        detail = _first_paragraph(exc.detail)
        extra = dict(exc.ext or {})
        problem = problem_types.BY_CODE.get(
            extra.pop("code", ""), problem_types.for_status(exc.status)
        )
        if isinstance(exc, OAuthProblem):
            detail, problem = _unauthorized(request.headers.get("authorization"), detail)
        return respond(request, problem, detail, exc.headers, title=exc.title, extra=extra)

    def on_insufficient_scope(
        request: ConnexionRequest, exc: OAuthScopeProblem
    ) -> ConnexionResponse:
        needed = " ".join(exc.required_scopes)
        challenge = f'Bearer realm="taskapi", error="insufficient_scope", scope="{needed}"'
        return respond(
            request,
            problem_types.BY_CODE["insufficient_scope"],
            f"this operation needs the scope `{needed}`, which the token lacks",
            {"WWW-Authenticate": challenge},
        )

    def on_http_exception(request: ConnexionRequest, exc: HTTPException) -> ConnexionResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = routes.allow(request.url.path)
        problem = problem_types.for_status(exc.status_code)
        detail = exc.detail if exc.detail != problem.title else None
        return respond(request, problem, detail, headers)

    def on_domain_error(request: ConnexionRequest, exc: DomainError) -> ConnexionResponse:
        extra = dict(exc.extra)
        if isinstance(exc, InvalidInput):
            extra["errors"] = [{"field": exc.field, "message": exc.rule}]
        problem = problem_types.BY_CODE[exc.code]
        return respond(request, problem, exc.detail, exc.headers, extra=extra)

    def on_bad_encoding(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        return respond(request, problem_types.for_status(400), "request body: is not valid UTF-8")

    def on_database_unavailable(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        cause = type(getattr(exc, "orig", None) or exc).__name__
        timed_out = cause in ("QueryCanceled", "LockNotAvailable")
        log.error("database %s: %s", "timeout" if timed_out else "unavailable", cause)
        detail = (
            "the database did not answer in time; retry shortly"
            if timed_out
            else "the database is unavailable; retry shortly"
        )
        return respond(request, problem_types.BY_CODE["database_unavailable"], detail)

    def on_integrity_error(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        log.warning("integrity error: %s", type(getattr(exc, "orig", exc)).__name__)
        return respond(
            request,
            problem_types.BY_CODE["conflict"],
            "the request conflicts with the current state",
        )

    def on_data_error(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        log.warning("data error: %s", type(getattr(exc, "orig", exc)).__name__)
        return respond(
            request, problem_types.for_status(400), "a value is out of range for the database"
        )

    def on_database_error(request: ConnexionRequest, exc: sa_exc.DBAPIError) -> ConnexionResponse:
        # Any other driver error is a bug, unless the pool dropped the connection for it (a
        # primary that turned read-only: storage/db.py).
        if exc.connection_invalidated:
            return on_database_unavailable(request, exc)
        return on_unexpected(request, exc)

    def on_unexpected(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return respond(request, problem_types.INTERNAL_ERROR, "internal server error")

    app.add_error_handler(ProblemException, on_problem)
    app.add_error_handler(OAuthScopeProblem, on_insufficient_scope)
    app.add_error_handler(HTTPException, on_http_exception)
    app.add_error_handler(DomainError, on_domain_error)
    app.add_error_handler(UnicodeDecodeError, on_bad_encoding)
    for unavailable in (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError):
        app.add_error_handler(unavailable, on_database_unavailable)
    app.add_error_handler(sa_exc.IntegrityError, on_integrity_error)
    app.add_error_handler(sa_exc.DataError, on_data_error)
    app.add_error_handler(sa_exc.DBAPIError, on_database_error)
    app.add_error_handler(Exception, on_unexpected)


def _first_paragraph(detail: str | None) -> str | None:
    # Connexion appends a dump of the JSON schema after a blank line; clients need the first line.
    return detail.split("\n\n", 1)[0] if detail else detail


def _bearer_token_sent(authorization: str | None) -> bool:
    scheme, _, token = (authorization or "").strip().partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


def _unauthorized(authorization: str | None, detail: str | None) -> tuple[str | None, ProblemType]:
    # The seed API's messages, which its clients may show or match.
    if not authorization:
        return "Authorization header required", problem_types.BY_CODE["authentication_required"]
    if not _bearer_token_sent(authorization):
        return "Invalid authorization header format", problem_types.BY_CODE[
            "authentication_required"
        ]
    return detail, problem_types.BY_CODE["invalid_token"]


def _www_authenticate(authorization: str | None) -> str:
    # RFC 6750 section 3: an error code only when a token was presented.
    if _bearer_token_sent(authorization):
        return 'Bearer realm="taskapi", error="invalid_token"'
    return 'Bearer realm="taskapi"'
