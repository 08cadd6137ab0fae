"""What a read of the schema's tables hands out: rows, described for the type checker.

The domain reads and writes rows (SQLAlchemy Core), never ORM objects; these protocols name
the columns a row of each table has, so code that takes one is checked like code that takes an
object.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from taskapi.storage.schema import TaskPriority, TaskStatus


class UserView(Protocol):
    """An account as the domain hands it out: a row of `users`."""

    id: int
    email: str
    password_hash: str
    name: str
    token_version: int
    created_at: datetime
    updated_at: datetime


class TaskView(Protocol):
    """A task as the domain hands it out: a row of `tasks`."""

    id: int
    user_id: int
    title: str
    description: str
    status: TaskStatus
    priority: TaskPriority
    due_date: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime


class PersonalTokenView(Protocol):
    """A personal access token as the domain hands it out: a row without its digest."""

    id: int
    name: str
    scopes: str
    token_prefix: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
