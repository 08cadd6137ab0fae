"""Tasks: every query is scoped to the owner; a task that is not yours does not exist."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from taskapi.errors import NotFound, PreconditionFailed
from taskapi.models import Task, utcnow

TASK_NOT_FOUND = "Task not found"
TASK_CHANGED = "Task has changed since that ETag; fetch it again"


@dataclass(frozen=True)
class TaskFields:
    """The writable fields of a task, as POST and PUT set them."""

    title: str
    description: str
    status: str
    priority: str
    due_date: datetime | None


@dataclass(frozen=True)
class Expect:
    """A write's precondition (If-Match): any current version, or one of `versions`."""

    versions: frozenset[int] | None = None


def create(s: Session, *, owner_id: int, fields: TaskFields) -> Task:
    return create_many(s, owner_id=owner_id, fields=[fields])[0]


def create_many(s: Session, *, owner_id: int, fields: Sequence[TaskFields]) -> list[Task]:
    """Insert tasks in one round trip; they share one created_at."""
    now = utcnow()
    created = [Task(user_id=owner_id, created_at=now, updated_at=now, **vars(f)) for f in fields]
    s.add_all(created)
    s.flush()
    return created


def get_owned(s: Session, *, owner_id: int, task_id: int) -> Task:
    """The caller's task. Raises NotFound if it does not exist or belongs to someone else."""
    task = s.scalar(select(Task).where(Task.id == task_id, Task.user_id == owner_id))
    if task is None:
        raise NotFound(TASK_NOT_FOUND)
    return task


def replace(
    s: Session, *, owner_id: int, task_id: int, fields: TaskFields, expect: Expect | None = None
) -> Task:
    """Overwrite the writable fields of the caller's task and bump `updated_at`."""
    return _write(s, owner_id, task_id, vars(fields), expect)


def patch(
    s: Session,
    *,
    owner_id: int,
    task_id: int,
    changes: Mapping[str, Any],
    expect: Expect | None = None,
) -> Task:
    """Change only the given fields. An empty patch changes nothing, not even `updated_at`."""
    if changes:
        return _write(s, owner_id, task_id, changes, expect)
    task = get_owned(s, owner_id=owner_id, task_id=task_id)
    if expect is not None and expect.versions is not None and task.version not in expect.versions:
        raise PreconditionFailed(TASK_CHANGED)
    return task


def remove(s: Session, *, owner_id: int, task_id: int, expect: Expect | None = None) -> None:
    """Delete the caller's task. Raises NotFound if there is none to delete."""
    statement = delete(Task).where(*_target(owner_id, task_id, expect))
    result = s.execute(statement.execution_options(synchronize_session=False))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        _missing_or_changed(s, owner_id, task_id, expect)


def _write(
    s: Session, owner_id: int, task_id: int, values: Mapping[str, Any], expect: Expect | None
) -> Task:
    # One statement checks the version and writes, so two writers with the same ETag cannot
    # both win.
    task = s.scalar(
        update(Task)
        .where(*_target(owner_id, task_id, expect))
        .values(**values, updated_at=utcnow(), version=Task.version + 1)
        .returning(Task)
        .execution_options(synchronize_session=False)
    )
    if task is None:
        _missing_or_changed(s, owner_id, task_id, expect)
    return task


def _target(owner_id: int, task_id: int, expect: Expect | None) -> list[Any]:
    where = [Task.id == task_id, Task.user_id == owner_id]
    if expect is not None and expect.versions is not None:
        where.append(Task.version.in_(expect.versions))
    return where


def _missing_or_changed(s: Session, owner_id: int, task_id: int, expect: Expect | None) -> NoReturn:
    if expect is not None:
        exists = s.scalar(select(Task.id).where(Task.id == task_id, Task.user_id == owner_id))
        if exists is not None:
            raise PreconditionFailed(TASK_CHANGED)
    raise NotFound(TASK_NOT_FOUND)
