"""The kinds of problem TaskAPI answers with, each with a stable code and a page of its own, and
how a problem document is written.

Every problem response (RFC 9457) carries `type`, a relative URI the API itself answers
(`/problems/email_taken`), and `code`, the same name for programs to switch on; `detail` stays
for people. The spec lists every code (the Problem schema's `code` enum) and a test checks the
two agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "/problems/"


@dataclass(frozen=True)
class ProblemType:
    code: str
    status: int
    description: str

    @property
    def uri(self) -> str:
        return TYPE_PREFIX + self.code

    @property
    def title(self) -> str:
        return HTTPStatus(self.status).phrase


_ALL = (
    ProblemType(
        "validation_failed",
        400,
        "The request breaks a rule of the API's spec: a missing or malformed field, a value out "
        "of range, a body that is not valid JSON. `errors` lists each broken rule by field.",
    ),
    ProblemType(
        "authentication_required",
        401,
        "The operation needs an access token: send `Authorization: Bearer <token>` with the "
        "`token` from POST /api/v1/auth/login.",
    ),
    ProblemType(
        "invalid_token",
        401,
        "The access token is malformed, expired, logged out, or older than the account's last "
        "password change, or its account is gone. Log in (or refresh) for a new one. A "
        "personal access token: unknown, expired, deleted, or ended by a password change.",
    ),
    ProblemType(
        "invalid_credentials",
        401,
        "The email and password do not match an account. The answer is the same whether or not "
        "the email is registered.",
    ),
    ProblemType(
        "invalid_refresh_token",
        401,
        "The refresh token is unknown, expired, revoked or already used. Using one twice ends "
        "its whole login session; log in again.",
    ),
    ProblemType(
        "wrong_password",
        403,
        "The password given to confirm this operation is not the account's. The access token is "
        "still valid.",
    ),
    ProblemType(
        "insufficient_scope",
        403,
        "The personal access token is valid but lacks the scope this operation needs, which "
        "`WWW-Authenticate` names (`scope=`). Operations that manage the account or its tokens "
        "need a login session (scope `session`), which no personal access token holds.",
    ),
    ProblemType("not_found", 404, "There is no such path, or no such resource among yours."),
    ProblemType(
        "task_not_found",
        404,
        "You have no task with this id: it never existed, was deleted, or belongs to someone "
        "else (the three look the same).",
    ),
    ProblemType(
        "invalid_sync_token",
        400,
        "`since` is not a `meta.next_since` this server gave you: altered, cut short, or "
        "another account's. Sync again without `since`.",
    ),
    ProblemType(
        "sync_token_expired",
        410,
        "`since` is older than the server keeps deleted tasks (TOMBSTONE_RETENTION), so your "
        "copy could miss a delete. Sync again without `since` and replace your copy with what "
        "it returns.",
    ),
    ProblemType(
        "token_not_found",
        404,
        "You have no personal access token with this id: it never existed, was deleted, or "
        "belongs to someone else (the three look the same).",
    ),
    ProblemType(
        "method_not_allowed",
        405,
        "The path exists but not with this method; `Allow` lists the methods it has.",
    ),
    ProblemType(
        "request_timeout",
        408,
        "The request body did not arrive in time (REQUEST_BODY_TIMEOUT). Send it again.",
    ),
    ProblemType(
        "email_taken",
        409,
        "An account with this email already exists (emails are compared case-insensitively).",
    ),
    ProblemType(
        "idempotency_key_in_use",
        409,
        "A request with this Idempotency-Key is still running. Retry once it has finished; the "
        "retry gets its response.",
    ),
    ProblemType("conflict", 409, "The request conflicts with the current state of the data."),
    ProblemType(
        "task_changed",
        412,
        "The task changed since the ETag sent in If-Match: nothing was written. Fetch it again, "
        "reapply the change and send the new ETag.",
    ),
    ProblemType(
        "content_too_large", 413, "The request body is larger than the server accepts (1 MiB)."
    ),
    ProblemType(
        "headers_too_large",
        431,
        "The request line and headers are larger, or more numerous, than the server accepts "
        "(16 KiB and 100 fields by default). The connection is closed.",
    ),
    ProblemType(
        "unsupported_media_type",
        415,
        "The request body is not JSON. Send `Content-Type: application/json` (PATCH also takes "
        "`application/merge-patch+json`).",
    ),
    ProblemType(
        "idempotency_key_reused",
        422,
        "This Idempotency-Key was used with a different request body within 24 hours. Use a new "
        "key for a new request.",
    ),
    ProblemType(
        "rate_limited",
        429,
        "Too many requests from this client, user or email in the current window. Wait "
        "`Retry-After` seconds; the `RateLimit-*` headers say how much budget is left.",
    ),
    ProblemType(
        "internal_error",
        500,
        "Something failed on the server. Nothing was changed; the `X-Request-ID` response "
        "header identifies the request in the server's logs.",
    ),
    ProblemType(
        "database_unavailable",
        503,
        "The database cannot be reached right now. Retry after `Retry-After` seconds.",
    ),
    ProblemType(
        "overloaded",
        503,
        "The server is busy checking passwords (each takes a fraction of a CPU second) and "
        "refused this one before starting it. Retry after `Retry-After` seconds.",
    ),
    ProblemType(
        "not_ready",
        503,
        "The service cannot take traffic: a dependency is down or it is shutting down.",
    ),
)

BY_CODE = {problem.code: problem for problem in _ALL}
# What an error that names no problem type of its own is, by status.
BY_STATUS = {
    400: BY_CODE["validation_failed"],
    401: BY_CODE["invalid_token"],
    403: BY_CODE["wrong_password"],
    404: BY_CODE["not_found"],
    405: BY_CODE["method_not_allowed"],
    408: BY_CODE["request_timeout"],
    409: BY_CODE["conflict"],
    412: BY_CODE["task_changed"],
    413: BY_CODE["content_too_large"],
    415: BY_CODE["unsupported_media_type"],
    422: BY_CODE["idempotency_key_reused"],
    429: BY_CODE["rate_limited"],
    431: BY_CODE["headers_too_large"],
    503: BY_CODE["database_unavailable"],
}
INTERNAL_ERROR = BY_CODE["internal_error"]


def for_status(status: int) -> ProblemType:
    """The problem type for an error of `status` that names none of its own."""
    return BY_STATUS.get(status, INTERNAL_ERROR)


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
