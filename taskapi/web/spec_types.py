"""The spec's types, generated from openapi/openapi.yaml by `make types`: do not edit."""

from __future__ import annotations

from typing import Literal, NotRequired, TypeAlias, TypedDict


class ReadinessChecks(TypedDict):
    database: Literal["ok", "unavailable"]
    redis: Literal["ok", "unavailable", "not configured"]
    shutting_down: bool


class ProblemType(TypedDict):
    type: str
    code: str
    status: int
    title: str
    description: str


class Health(TypedDict):
    status: Literal["healthy"]
    time: str


Email: TypeAlias = str


NewPassword: TypeAlias = str


Name: TypeAlias = str


class LoginRequest(TypedDict):
    email: Email
    password: str


class User(TypedDict):
    id: int
    email: Email
    name: str
    created_at: str
    updated_at: str


class LoginResult(TypedDict):
    token: str
    refresh_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    user: User


class RefreshRequest(TypedDict):
    refresh_token: str


class ProfilePatch(TypedDict):
    name: NotRequired[Name]


class PasswordChange(TypedDict):
    current_password: str
    new_password: NewPassword


class PasswordConfirmation(TypedDict):
    password: str


Scope: TypeAlias = Literal["tasks:read", "tasks:write", "account:read"]


class PersonalAccessTokenInput(TypedDict):
    name: str
    scopes: list[Scope]
    expires_in: NotRequired[int]


class PersonalAccessToken(TypedDict):
    id: int
    name: str
    scopes: list[Scope]
    token_prefix: str
    created_at: str
    expires_at: str
    last_used_at: str | None


class NewPersonalAccessToken(PersonalAccessToken):
    token: str


TaskStatus: TypeAlias = Literal["pending", "in_progress", "completed"]


TaskPriority: TypeAlias = Literal["low", "medium", "high"]


Title: TypeAlias = str


Description: TypeAlias = str


DueDate: TypeAlias = str | None


Instant: TypeAlias = str


class TaskPatch(TypedDict):
    title: NotRequired[Title]
    description: NotRequired[Description]
    status: NotRequired[TaskStatus]
    priority: NotRequired[TaskPriority]
    due_date: NotRequired[DueDate | None]


class TaskInput(TypedDict):
    title: Title
    description: NotRequired[Description]
    status: NotRequired[TaskStatus]
    priority: NotRequired[TaskPriority]
    due_date: NotRequired[DueDate | None]


class Task(TypedDict):
    id: int
    user_id: int
    title: Title
    description: Description
    status: TaskStatus
    priority: TaskPriority
    due_date: str | None
    created_at: str
    updated_at: str


class ByStatus(TypedDict):
    pending: int
    in_progress: int
    completed: int


class ByPriority(TypedDict):
    low: int
    medium: int
    high: int


class TaskStats(TypedDict):
    total: int
    by_status: ByStatus
    by_priority: ByPriority
    overdue: int


class DeletedTask(TypedDict):
    id: int
    deleted_at: str


class TaskChanges(TypedDict):
    tasks: list[Task]
    deleted: list[DeletedTask]


class ChangesMeta(TypedDict):
    next_since: str
    has_more: bool


class PageMeta(TypedDict):
    page: NotRequired[int]
    limit: int
    total_count: NotRequired[int]
    total_pages: NotRequired[int]
    next_cursor: str | None


Success: TypeAlias = Literal[True]


class FieldError(TypedDict):
    field: str
    message: str


class ListTasksParametersQuery(TypedDict):
    status: NotRequired[TaskStatus]
    priority: NotRequired[TaskPriority]
    q: NotRequired[str]
    due_before: NotRequired[Instant]
    due_after: NotRequired[Instant]
    created_before: NotRequired[Instant]
    created_after: NotRequired[Instant]
    sort: NotRequired[
        Literal[
            "created_at",
            "-created_at",
            "updated_at",
            "-updated_at",
            "due_date",
            "-due_date",
            "priority",
            "-priority",
            "title",
            "-title",
        ]
    ]
    page: NotRequired[int]
    limit: NotRequired[int]
    cursor: NotRequired[str]


class GetTaskChangesParametersQuery(TypedDict):
    since: NotRequired[str]
    limit: NotRequired[int]


class Readiness(TypedDict):
    status: Literal["ready"]
    checks: ReadinessChecks


class ReadinessEnvelope(TypedDict):
    success: Success
    data: Readiness


class ProblemTypeEnvelope(TypedDict):
    success: Success
    data: ProblemType


class RegisterRequest(TypedDict):
    email: Email
    password: NewPassword
    name: Name


class NewPersonalAccessTokenEnvelope(TypedDict):
    success: Success
    data: NewPersonalAccessToken


class PersonalAccessTokenEnvelope(TypedDict):
    success: Success
    data: PersonalAccessToken


class PersonalAccessTokenListEnvelope(TypedDict):
    success: Success
    data: list[PersonalAccessToken]


class TaskBatch(TypedDict):
    tasks: list[TaskInput]


class TaskChangesEnvelope(TypedDict):
    success: Success
    data: TaskChanges
    meta: ChangesMeta


class TaskStatsEnvelope(TypedDict):
    success: Success
    data: TaskStats


class UserEnvelope(TypedDict):
    success: Success
    data: User


class LoginEnvelope(TypedDict):
    success: Success
    data: LoginResult


class TaskEnvelope(TypedDict):
    success: Success
    data: Task


class TaskListEnvelope(TypedDict):
    success: Success
    data: list[Task]
    meta: PageMeta


class TaskArrayEnvelope(TypedDict):
    success: Success
    data: list[Task]


class MessageEnvelope(TypedDict):
    success: Success
    data: str


class Problem(TypedDict):
    type: str
    code: Literal[
        "authentication_required",
        "conflict",
        "content_too_large",
        "database_unavailable",
        "email_taken",
        "headers_too_large",
        "idempotency_key_in_use",
        "idempotency_key_reused",
        "insufficient_scope",
        "internal_error",
        "invalid_credentials",
        "invalid_refresh_token",
        "invalid_sync_token",
        "invalid_token",
        "method_not_allowed",
        "not_found",
        "not_ready",
        "overloaded",
        "rate_limited",
        "request_timeout",
        "sync_token_expired",
        "task_changed",
        "task_not_found",
        "token_not_found",
        "unsupported_media_type",
        "validation_failed",
        "wrong_password",
    ]
    title: str
    status: int
    detail: str
    success: Literal[False]
    error: str
    checks: NotRequired[ReadinessChecks]
    errors: NotRequired[list[FieldError]]
