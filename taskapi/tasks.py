"""Tasks: every query is scoped to the owner; a task that is not yours does not exist."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from sqlalchemy import bindparam, case, delete, func, select, update
from sqlalchemy.orm import Session

from taskapi.errors import TaskChanged, TaskNotFound
from taskapi.models import TASK_PRIORITIES, TASK_STATUSES, Task, TaskView, utcnow


@dataclass(frozen=True)
class TaskFields:
    """The writable fields of a task, as POST and PUT set them."""

    title: str
    description: str
    status: str
    priority: str
    due_date: datetime | None


@dataclass(frozen=True)
class Precondition:
    """Which versions of a task a write may overwrite (If-Match): any, or one of `versions`."""

    versions: frozenset[int] | None = None

    @classmethod
    def any(cls) -> Precondition:
        return cls()

    @classmethod
    def of(cls, versions: frozenset[int]) -> Precondition:
        return cls(versions)

    def allows(self, version: int) -> bool:
        return self.versions is None or version in self.versions


ANY_VERSION = Precondition.any()


def create(s: Session, *, owner_id: int, fields: TaskFields) -> Task:
    return create_many(s, owner_id=owner_id, fields=[fields])[0]


def create_many(s: Session, *, owner_id: int, fields: Sequence[TaskFields]) -> list[Task]:
    """Insert tasks in one round trip; they share one created_at."""
    now = utcnow()
    created = [Task(user_id=owner_id, created_at=now, updated_at=now, **vars(f)) for f in fields]
    s.add_all(created)
    s.flush()
    return created


@dataclass(frozen=True)
class Stats:
    """Counts of one owner's tasks."""

    by_status: dict[str, int]
    by_priority: dict[str, int]
    overdue: int

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


def stats(s: Session, *, owner_id: int, now: datetime) -> Stats:
    """Count the owner's tasks by status and priority, and the overdue ones, in one query."""
    overdue = case((Task.due_date < now, 1), else_=0)
    rows = s.execute(
        select(Task.status, Task.priority, func.count(), func.sum(overdue))
        .where(Task.user_id == owner_id)
        .group_by(Task.status, Task.priority)
    )
    by_status = dict.fromkeys(TASK_STATUSES, 0)
    by_priority = dict.fromkeys(TASK_PRIORITIES, 0)
    late = 0
    for status, priority, count, due in rows:
        by_status[status] += count
        by_priority[priority] += count
        if status != "completed":
            late += due or 0
    return Stats(by_status, by_priority, late)


_OWNED_ROW = select(*Task.__table__.c).where(
    Task.__table__.c.id == bindparam("task_id"), Task.__table__.c.user_id == bindparam("owner_id")
)


def read_owned(s: Session, *, owner_id: int, task_id: int) -> TaskView:
    """The caller's task, to read: a row, since building an ORM object costs more than the
    query (as in `get_owned`, which a write needs). Raises TaskNotFound like it."""
    row = s.connection().execute(_OWNED_ROW, {"task_id": task_id, "owner_id": owner_id}).first()
    if row is None:
        raise TaskNotFound()
    return row


def get_owned(s: Session, *, owner_id: int, task_id: int) -> Task:
    """The caller's task. Raises TaskNotFound if it does not exist or belongs to someone else."""
    task = s.scalar(select(Task).where(Task.id == task_id, Task.user_id == owner_id))
    if task is None:
        raise TaskNotFound()
    return task


def replace(
    s: Session,
    *,
    owner_id: int,
    task_id: int,
    fields: TaskFields,
    precondition: Precondition = ANY_VERSION,
) -> Task:
    """Overwrite the writable fields of the caller's task and bump `updated_at`."""
    return _write(s, owner_id, task_id, vars(fields), precondition)


def patch(
    s: Session,
    *,
    owner_id: int,
    task_id: int,
    changes: Mapping[str, Any],
    precondition: Precondition = ANY_VERSION,
) -> Task:
    """Change only the given fields. An empty patch changes nothing, not even `updated_at`."""
    if changes:
        return _write(s, owner_id, task_id, changes, precondition)
    task = get_owned(s, owner_id=owner_id, task_id=task_id)
    if not precondition.allows(task.version):
        raise TaskChanged()
    return task


def remove(
    s: Session, *, owner_id: int, task_id: int, precondition: Precondition = ANY_VERSION
) -> None:
    """Delete the caller's task. Raises TaskNotFound if there is none to delete."""
    statement = delete(Task).where(*_target(owner_id, task_id, precondition))
    result = s.execute(statement.execution_options(synchronize_session=False))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        _missing_or_changed(s, owner_id, task_id, precondition)


def _write(
    s: Session,
    owner_id: int,
    task_id: int,
    values: Mapping[str, Any],
    precondition: Precondition,
) -> Task:
    # One statement checks the version and writes, so two writers with the same ETag cannot
    # both win.
    task = s.scalar(
        update(Task)
        .where(*_target(owner_id, task_id, precondition))
        .values(**values, updated_at=utcnow(), version=Task.version + 1)
        .returning(Task)
        .execution_options(synchronize_session=False)
    )
    if task is None:
        _missing_or_changed(s, owner_id, task_id, precondition)
    return task


def _target(owner_id: int, task_id: int, precondition: Precondition) -> list[Any]:
    where = [Task.id == task_id, Task.user_id == owner_id]
    if precondition.versions is not None:
        where.append(Task.version.in_(precondition.versions))
    return where


def _missing_or_changed(
    s: Session, owner_id: int, task_id: int, precondition: Precondition
) -> NoReturn:
    # With versions to match, no row written means a changed task or a missing one; say which.
    if precondition.versions is not None:
        exists = s.scalar(select(Task.id).where(Task.id == task_id, Task.user_id == owner_id))
        if exists is not None:
            raise TaskChanged()
    raise TaskNotFound()
