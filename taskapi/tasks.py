"""Tasks: every query is scoped to the owner; a task that is not yours does not exist."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.orm import Session

from taskapi.errors import NotFound
from taskapi.models import Task, utcnow

TASK_NOT_FOUND = "Task not found"


@dataclass(frozen=True)
class TaskFields:
    """The writable fields of a task, as POST and PUT set them."""

    title: str
    description: str
    status: str
    priority: str
    due_date: datetime | None


@dataclass(frozen=True)
class ListQuery:
    status: str | None = None
    priority: str | None = None
    page: int = 1
    limit: int = 20


def create(s: Session, *, owner_id: int, fields: TaskFields) -> Task:
    now = utcnow()
    task = Task(user_id=owner_id, created_at=now, updated_at=now, **vars(fields))
    s.add(task)
    s.flush()
    return task


def get_owned(s: Session, *, owner_id: int, task_id: int) -> Task:
    """The caller's task. Raises NotFound if it does not exist or belongs to someone else."""
    task = s.scalar(select(Task).where(Task.id == task_id, Task.user_id == owner_id))
    if task is None:
        raise NotFound(TASK_NOT_FOUND)
    return task


def list_owned(s: Session, *, owner_id: int, query: ListQuery) -> tuple[list[Task], int]:
    """One page of the caller's tasks, newest first, and the size of the filtered set."""
    where: list[ColumnElement[bool]] = [Task.user_id == owner_id]
    if query.status is not None:
        where.append(Task.status == query.status)
    if query.priority is not None:
        where.append(Task.priority == query.priority)
    total = s.scalar(select(func.count()).select_from(Task).where(*where)) or 0
    offset = (query.page - 1) * query.limit
    if offset >= total:
        return [], total
    page = s.scalars(
        select(Task)
        .where(*where)
        .order_by(Task.created_at.desc(), Task.id.desc())
        .limit(query.limit)
        .offset(offset)
    )
    return list(page), total


def replace(s: Session, *, owner_id: int, task_id: int, fields: TaskFields) -> Task:
    """Overwrite the writable fields of the caller's task and bump `updated_at`."""
    task = s.scalar(
        update(Task)
        .where(Task.id == task_id, Task.user_id == owner_id)
        .values(**vars(fields), updated_at=utcnow())
        .returning(Task)
        .execution_options(synchronize_session=False)
    )
    if task is None:
        raise NotFound(TASK_NOT_FOUND)
    return task


def remove(s: Session, *, owner_id: int, task_id: int) -> None:
    """Delete the caller's task. Raises NotFound if there is none to delete."""
    result = s.execute(
        delete(Task)
        .where(Task.id == task_id, Task.user_id == owner_id)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(TASK_NOT_FOUND)
