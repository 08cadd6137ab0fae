"""Tasks: every query is scoped to the owner; a task that is not yours does not exist.

Tasks are read and written as rows of `tasks` (storage/rows.py), not as ORM objects: building
and tracking an object costs more CPU than the statement itself (docs/performance.md, "Profiles,
before and after"), and nothing here needs the unit of work.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from sqlalchemy import (
    ColumnElement,
    Connection,
    Update,
    bindparam,
    case,
    delete,
    func,
    insert,
    select,
    update,
)

from taskapi.domain.errors import TaskChanged, TaskNotFound
from taskapi.storage.rows import TaskView
from taskapi.storage.schema import (
    TASK_PRIORITIES,
    TASK_STATUSES,
    TASKS,
    TaskPriority,
    TaskStatus,
    utcnow,
)


@dataclass(frozen=True)
class TaskFields:
    """The writable fields of a task, as POST and PUT set them."""

    title: str
    description: str
    status: TaskStatus
    priority: TaskPriority
    due_date: datetime | None


# The fields a client sets; every other column is the server's.
WRITABLE = frozenset(field.name for field in dataclasses.fields(TaskFields))


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


_INSERT = insert(TASKS).returning(*TASKS.c, sort_by_parameter_order=True)


def create(s: Connection, *, owner_id: int, fields: TaskFields) -> TaskView:
    return create_many(s, owner_id=owner_id, fields=[fields])[0]


def create_many(s: Connection, *, owner_id: int, fields: Sequence[TaskFields]) -> list[TaskView]:
    """Insert tasks in one round trip and return them in the order given; they share one
    created_at."""
    if not fields:
        return []  # an empty list of values would run the INSERT once, with none
    now = utcnow()
    values = [
        {"user_id": owner_id, "created_at": now, "updated_at": now, **vars(f)} for f in fields
    ]
    return list(s.execute(_INSERT, values))


@dataclass(frozen=True)
class Stats:
    """Counts of one owner's tasks."""

    by_status: dict[TaskStatus, int]
    by_priority: dict[TaskPriority, int]
    overdue: int

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


def stats(c: Connection, *, owner_id: int, now: datetime) -> Stats:
    """Count the owner's tasks by status and priority, and the overdue ones, in one query."""
    overdue = case((TASKS.c.due_date < now, 1), else_=0)
    rows = c.execute(
        select(TASKS.c.status, TASKS.c.priority, func.count(), func.sum(overdue))
        .where(TASKS.c.user_id == owner_id)
        .group_by(TASKS.c.status, TASKS.c.priority)
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


def _owned(*, versioned: bool = False) -> list[ColumnElement[bool]]:
    """The caller's task, as bound parameters task_id and owner_id; with `versioned`, only
    while its version is one of the parameter `versions` (If-Match)."""
    where = [TASKS.c.id == bindparam("task_id"), TASKS.c.user_id == bindparam("owner_id")]
    if versioned:
        where.append(TASKS.c.version.in_(bindparam("versions", expanding=True)))
    return where


def _owned_values(owner_id: int, task_id: int, precondition: Precondition) -> dict[str, Any]:
    """The parameters of _owned()."""
    return {"task_id": task_id, "owner_id": owner_id, "versions": list(precondition.versions or ())}


_OWNED_ROW = select(*TASKS.c).where(*_owned())
_OWNED_ID = select(TASKS.c.id).where(*_owned())
_DELETE = {
    versioned: delete(TASKS).where(*_owned(versioned=versioned)) for versioned in (False, True)
}


def read_owned(c: Connection, *, owner_id: int, task_id: int) -> TaskView:
    """The caller's task. Raises TaskNotFound if it does not exist or belongs to someone else."""
    row = c.execute(_OWNED_ROW, _owned_values(owner_id, task_id, ANY_VERSION)).first()
    if row is None:
        raise TaskNotFound()
    return row


def replace(
    s: Connection,
    *,
    owner_id: int,
    task_id: int,
    fields: TaskFields,
    precondition: Precondition = ANY_VERSION,
) -> TaskView:
    """Overwrite the writable fields of the caller's task and bump `updated_at`."""
    return _write(s, owner_id, task_id, vars(fields), precondition)


def patch(
    s: Connection,
    *,
    owner_id: int,
    task_id: int,
    changes: Mapping[str, Any],
    precondition: Precondition = ANY_VERSION,
) -> TaskView:
    """Change only the given fields. An empty patch changes nothing, not even `updated_at`."""
    if changes:
        return _write(s, owner_id, task_id, changes, precondition)
    task = read_owned(s, owner_id=owner_id, task_id=task_id)
    if not precondition.allows(task.version):
        raise TaskChanged()
    return task


def remove(
    s: Connection, *, owner_id: int, task_id: int, precondition: Precondition = ANY_VERSION
) -> None:
    """Delete the caller's task. Raises TaskNotFound if there is none to delete."""
    statement = _DELETE[precondition.versions is not None]
    result = s.execute(statement, _owned_values(owner_id, task_id, precondition))
    if result.rowcount == 0:
        _missing_or_changed(s, owner_id, task_id, precondition)


def _write(
    s: Connection,
    owner_id: int,
    task_id: int,
    values: Mapping[str, Any],
    precondition: Precondition,
) -> TaskView:
    # One statement checks the version and writes, so two writers with the same ETag cannot
    # both win.
    statement = _update_statement(tuple(sorted(values)), precondition.versions is not None)
    parameters = {
        **_owned_values(owner_id, task_id, precondition),
        "now": utcnow(),
        **{_SET + name: value for name, value in values.items()},
    }
    task = s.execute(statement, parameters).first()
    if task is None:
        _missing_or_changed(s, owner_id, task_id, precondition)
    return task


# Bound parameters may not be named after the columns an UPDATE sets.
_SET = "new_"


@functools.lru_cache(maxsize=256)
def _update_statement(columns: tuple[str, ...], versioned: bool) -> Update:
    """The UPDATE of `columns` of the caller's task (of listed versions, if `versioned`),
    built once per shape: building it per request cost as much as a short statement's run."""
    return (
        update(TASKS)
        .where(*_owned(versioned=versioned))
        .values(
            {
                **{name: bindparam(_SET + name, type_=TASKS.c[name].type) for name in columns},
                "updated_at": bindparam("now", type_=TASKS.c.updated_at.type),
                "version": TASKS.c.version + 1,
            }
        )
        .returning(*TASKS.c)
    )


def _missing_or_changed(
    s: Connection, owner_id: int, task_id: int, precondition: Precondition
) -> NoReturn:
    # With versions to match, no row written means a changed task or a missing one; say which.
    if precondition.versions is not None:
        found = s.scalar(_OWNED_ID, _owned_values(owner_id, task_id, ANY_VERSION))
        if found is not None:
            raise TaskChanged()
    raise TaskNotFound()
