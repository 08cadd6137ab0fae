"""Domain errors, and how every error becomes an RFC 9457 problem response.

Every error body is `application/problem+json` with `type` (a page of taskapi/web/problem_types.py),
`code`, `title`, `status` and `detail`, plus the seed API's `"success": false` and `"error"`
(the same message as `detail`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import exc as sa_exc

from taskapi.web import problem_types
from taskapi.web.problem_types import PROBLEM_JSON, ProblemType

if TYPE_CHECKING:
    from taskapi.web.routing import Routes

log = logging.getLogger("taskapi")

RETRY_AFTER_SECONDS = "5"


class DomainError(Exception):
    """A rule of the API was broken; `problem` says which kind of problem it is."""

    problem = problem_types.BY_CODE["validation_failed"]
    message = "Bad Request"

    def __init__(
        self, detail: str | None = None, *, headers: Mapping[str, str] | None = None
    ) -> None:
        self.detail = detail or self.message
        super().__init__(self.detail)
        self.headers = dict(headers or {})
        # More members of the problem body (RFC 9457 extensions), beside `errors`.
        self.extra: dict[str, Any] = {}

    @property
    def status(self) -> int:
        return self.problem.status


class InvalidInput(DomainError):
    """A field breaks a rule the spec cannot express; reported like a validation error."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class InvalidToken(DomainError):
    problem = problem_types.BY_CODE["invalid_token"]
    message = "Invalid or expired token"


class AccountGone(InvalidToken):
    """The account a valid token spoke for was deleted."""


class InvalidCredentials(DomainError):
    problem = problem_types.BY_CODE["invalid_credentials"]
    message = "Invalid credentials"


class InvalidRefreshToken(DomainError):
    problem = problem_types.BY_CODE["invalid_refresh_token"]
    message = "Invalid or expired refresh token"


class WrongPassword(DomainError):
    problem = problem_types.BY_CODE["wrong_password"]
    message = "password does not match"


class TaskNotFound(DomainError):
    problem = problem_types.BY_CODE["task_not_found"]
    message = "Task not found"


class EmailTaken(DomainError):
    problem = problem_types.BY_CODE["email_taken"]
    message = "Email already registered"


class IdempotencyKeyInUse(DomainError):
    problem = problem_types.BY_CODE["idempotency_key_in_use"]
    message = "A request with this Idempotency-Key is still in progress; retry later"


class IdempotencyKeyReused(DomainError):
    problem = problem_types.BY_CODE["idempotency_key_reused"]
    message = "This Idempotency-Key was used with a different request body"


class TaskChanged(DomainError):
    problem = problem_types.BY_CODE["task_changed"]
    message = "Task has changed since that ETag; fetch it again"


def problem_body(
    problem: ProblemType, detail: str | None = None, *, title: str | None = None, **extra: Any
) -> dict[str, Any]:
    detail = detail or title or problem.title
    return {
        "type": problem.uri,
        "code": problem.code,
        "title": title or problem.title,
        "status": problem.status,
        "detail": detail,
        "success": False,
        "error": detail,
        **extra,
    }


def problem_bytes(problem: ProblemType, detail: str | None = None, **extra: Any) -> bytes:
    return json.dumps(problem_body(problem, detail, **extra), separators=(",", ":")).encode()


def register_error_handlers(app: Any, routes: Routes) -> None:
    """Install the handlers that turn every exception into a problem response."""
    from connexion.exceptions import OAuthProblem, ProblemException
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
        return respond(request, exc.problem, exc.detail, exc.headers, extra=extra)

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

    def on_unexpected(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return respond(request, problem_types.INTERNAL_ERROR, "internal server error")

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
