"""The domain's errors: each a rule of the API that a request broke, named by a code.

Raised by the domain and the web layer alike; the web layer turns each into an RFC 9457
problem response by its code (web/problem_types.py, web/error_handlers.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class DomainError(Exception):
    """A rule of the API was broken; `code` says which kind of problem it is (the web layer
    answers each code with its own status and problem type: web/problem_types.py)."""

    code = "validation_failed"
    message = "Bad Request"

    def __init__(
        self, detail: str | None = None, *, headers: Mapping[str, str] | None = None
    ) -> None:
        self.detail = detail or self.message
        super().__init__(self.detail)
        self.headers = dict(headers or {})
        # More members of the problem body (RFC 9457 extensions), beside `errors`.
        self.extra: dict[str, Any] = {}


class InvalidInput(DomainError):
    """A field breaks a rule the spec cannot express; reported like a validation error."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class InvalidToken(DomainError):
    code = "invalid_token"
    message = "Invalid or expired token"


class AccountGone(InvalidToken):
    """The account a valid token spoke for was deleted."""


class InvalidCredentials(DomainError):
    code = "invalid_credentials"
    message = "Invalid credentials"


class InvalidRefreshToken(DomainError):
    code = "invalid_refresh_token"
    message = "Invalid or expired refresh token"


class WrongPassword(DomainError):
    code = "wrong_password"
    message = "password does not match"


class TaskNotFound(DomainError):
    code = "task_not_found"
    message = "Task not found"


class TokenNotFound(DomainError):
    code = "token_not_found"
    message = "Personal access token not found"


class EmailTaken(DomainError):
    code = "email_taken"
    message = "Email already registered"


class IdempotencyKeyInUse(DomainError):
    code = "idempotency_key_in_use"
    message = "A request with this Idempotency-Key is still in progress; retry later"


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"
    message = "This Idempotency-Key was used with a different request body"


class TaskChanged(DomainError):
    code = "task_changed"
    message = "Task has changed since that ETag; fetch it again"
