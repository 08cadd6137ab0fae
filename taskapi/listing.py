"""Listing the caller's tasks: filters, sorting, offset pages and keyset cursors.

Offset pages (`page`) answer the size of the filtered set, as the seed API does: read from
`task_counts` when the filters are status and priority only, counted otherwise. Every sort has an
index (taskapi/models.py), so page 1 is read off it; page N skips N - 1 pages of it. A cursor
instead names the last row seen, so the next page starts from it through the index: page 50,000
costs what page 1 costs. Every page answers `next_cursor`, so a client can switch at any point.
"""

from __future__ import annotations

import base64
import binascii
import json
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, literal, or_, select, tuple_

from taskapi import timestamps
from taskapi.errors import InvalidInput
from taskapi.models import (
    DUE_DATE_KEY,
    NO_DUE_DATE,
    PRIORITY_RANK,
    PRIORITY_RANKS,
    TASKS,
    TITLE_KEY,
    Task,
    TaskCount,
    TaskView,
)

SORTABLE = ("created_at", "updated_at", "due_date", "priority", "title")
CURSOR_VERSION = 1
# The filters task_counts is keyed by, and the fields of ListQuery that only page.
COUNTED_FILTERS = {"status", "priority"}
PAGING = {"sort", "page", "limit", "cursor"}


@dataclass(frozen=True)
class Sort:
    """A sort key, ascending or descending; ties always go to the id, in the same direction."""

    key: str = "created_at"
    descending: bool = True

    @classmethod
    def parse(cls, text: str) -> Sort:
        key = text.removeprefix("-")
        if key not in SORTABLE:
            raise InvalidInput("sort", "must be one of " + ", ".join(SORTABLE))
        return cls(key, text.startswith("-"))

    def __str__(self) -> str:
        return ("-" if self.descending else "") + self.key


@dataclass(frozen=True)
class ListQuery:
    status: str | None = None
    priority: str | None = None
    q: str | None = None
    due_before: datetime | None = None
    due_after: datetime | None = None
    created_before: datetime | None = None
    created_after: datetime | None = None
    sort: Sort = field(default_factory=Sort)
    page: int = 1
    limit: int = 20
    cursor: str | None = None


# Any filter but status and priority (one added later included) needs the count.
_UNCOUNTED_FILTERS = tuple(
    f.name for f in fields(ListQuery) if f.name not in COUNTED_FILTERS | PAGING
)


@dataclass(frozen=True)
class Page:
    tasks: Sequence[TaskView]
    # The size of the filtered set; only counted for offset pages.
    total: int | None
    next_cursor: str | None


def list_owned(c: Connection, *, owner_id: int, query: ListQuery) -> Page:
    """One page of the caller's tasks."""
    dialect = c.dialect.name
    where = [Task.user_id == owner_id, *_filters(query, dialect)]
    if query.cursor is not None:
        # The cursor carries the order it was issued in, and wins over `sort` as over `page`.
        sort, last_key, last_id = decode_cursor(query.cursor)
        key = _sort_key(sort, dialect)
        where.append(_after(key, sort, last_key, last_id))
        statement = _TASK_ROWS.where(*where).order_by(*_order(key, sort))
        rows = list(c.execute(statement.limit(query.limit + 1)))
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        return Page(rows, None, _encode(rows[-1], sort) if more else None)

    total = _total(c, owner_id, query, where)
    offset = (query.page - 1) * query.limit
    if offset >= total:
        return Page([], total, None)
    key = _sort_key(query.sort, dialect)
    statement = _TASK_ROWS.where(*where).order_by(*_order(key, query.sort))
    rows = list(c.execute(statement.limit(query.limit).offset(offset)))
    more = offset + len(rows) < total
    return Page(rows, total, _encode(rows[-1], query.sort) if more else None)


# Pages are rows, not ORM objects: building those cost more than the query on a page of 20.
_TASK_ROWS = select(*TASKS.c)


def _total(c: Connection, owner_id: int, query: ListQuery, where: list[ColumnElement[bool]]) -> int:
    """The size of the filtered set: from task_counts when it can tell, else counted."""
    if any(getattr(query, name) not in (None, "") for name in _UNCOUNTED_FILTERS):
        return c.scalar(select(func.count()).select_from(Task).where(*where)) or 0
    counts = [TaskCount.user_id == owner_id]
    if query.status is not None:
        counts.append(TaskCount.status == query.status)
    if query.priority is not None:
        counts.append(TaskCount.priority == query.priority)
    # PostgreSQL's sum of a bigint is a numeric.
    return int(c.scalar(select(func.sum(TaskCount.n)).where(*counts)) or 0)


def _sort_key(sort: Sort, dialect: str) -> ColumnElement[Any]:
    """The sort key as the index on it spells it (taskapi/models.py)."""
    if sort.key == "priority":
        return PRIORITY_RANK
    if sort.key == "due_date":
        return DUE_DATE_KEY[sort.descending]
    if sort.key == "title":
        return TITLE_KEY[dialect]
    column: ColumnElement[Any] = getattr(Task, sort.key)
    return column


def _order(key: ColumnElement[Any], sort: Sort) -> list[ColumnElement[Any]]:
    if sort.descending:
        return [key.desc(), Task.id.desc()]
    return [key.asc(), Task.id.asc()]


def _filters(query: ListQuery, dialect: str) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if query.status is not None:
        where.append(Task.status == query.status)
    if query.priority is not None:
        where.append(Task.priority == query.priority)
    if query.q:
        where.append(
            or_(
                _contains(Task.title, query.q, dialect),
                _contains(Task.description, query.q, dialect),
            )
        )
    # Ranges are half-open: `after` includes its instant, `before` excludes it.
    if query.due_after is not None:
        where.append(Task.due_date >= query.due_after)
    if query.due_before is not None:
        where.append(Task.due_date < query.due_before)
    if query.created_after is not None:
        where.append(Task.created_at >= query.created_after)
    if query.created_before is not None:
        where.append(Task.created_at < query.created_before)
    return where


def _contains(column: Any, text: str, dialect: str) -> ColumnElement[bool]:
    """Case-insensitive substring match; `%` and `_` in `text` are literal."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    if dialect == "postgresql":
        # Served by the pg_trgm indexes of migration 0002.
        match: ColumnElement[bool] = column.ilike(f"%{escaped}%", escape="\\")
        return match
    # SQLite's own lower() only folds ASCII; db.py registers Python's as unicode_lower().
    return func.unicode_lower(column).like(f"%{escaped.lower()}%", escape="\\")


def _after(key: ColumnElement[Any], sort: Sort, last_key: Any, last_id: int) -> ColumnElement[bool]:
    """Rows that sort after (last_key, last_id), as a row comparison an index can serve."""
    later, from_ = (operator.lt, operator.le) if sort.descending else (operator.gt, operator.ge)
    # Only due_date is nullable, and its key stands in for NULL with what sorts last.
    bound = NO_DUE_DATE[sort.descending] if last_key is None else literal(last_key, key.type)
    # The key's own bound repeats part of the row comparison for SQLite, which starts an index
    # range on an expression (priority, due_date) from a plain comparison only.
    return and_(from_(key, bound), later(tuple_(key, Task.id), tuple_(bound, literal(last_id))))


def _key_of(task: TaskView, sort: Sort) -> Any:
    if sort.key == "priority":
        return PRIORITY_RANKS[task.priority]
    value = getattr(task, sort.key)
    return timestamps.render(value) if isinstance(value, datetime) else value


def _encode(task: TaskView, sort: Sort) -> str:
    payload = {"v": CURSOR_VERSION, "s": str(sort), "k": _key_of(task, sort), "i": task.id}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Sort, Any, int]:
    """The sort, and the (key, id) of the row `cursor` points after. Raises InvalidInput."""
    bad = InvalidInput("cursor", "is not a cursor this API issued")
    try:
        payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(payload, dict) or payload.get("v") != CURSOR_VERSION:
            raise bad
        sort = Sort.parse(str(payload.get("s")))
        last_key, last_id = payload.get("k"), payload.get("i")
        if type(last_id) is not int or not 1 <= last_id < 2**63:
            raise bad
        return sort, _check_key(sort.key, last_key), last_id
    except (binascii.Error, TypeError, ValueError, InvalidInput):
        raise bad from None


def _check_key(key: str, value: Any) -> Any:
    if key == "priority":
        if type(value) is not int or value not in PRIORITY_RANKS.values():
            raise ValueError(value)
        return value
    if key == "title":
        if not isinstance(value, str):
            raise TypeError(value)
        return value
    if value is None and key == "due_date":
        return None
    if not isinstance(value, str):
        raise TypeError(value)
    return timestamps.parse(value)
