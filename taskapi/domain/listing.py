"""Listing the caller's tasks: filters, sorting, offset pages and keyset cursors.

Offset pages (`page`) answer the size of the filtered set, as the seed API does: read from
`task_counts` when the filters are status and priority only, counted otherwise. Every sort has
an index (taskapi/storage/schema.py), so page 1 is read off it; page N skips N - 1 pages of it.
A cursor instead names the last row seen, so the next page starts from it through the index:
page 50,000 costs what page 1 costs. Every page answers `next_cursor`, so a client can switch
at any point.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Select,
    and_,
    bindparam,
    func,
    or_,
    select,
    tuple_,
)

from taskapi.domain import changes, timestamps
from taskapi.domain.errors import InvalidInput
from taskapi.storage.rows import TaskView
from taskapi.storage.schema import (
    DUE_DATE_KEY,
    NO_DUE_DATE,
    PRIORITY_RANK,
    PRIORITY_RANKS,
    TASK_COUNTS,
    TASKS,
    TITLE_KEY,
    TITLE_MAX_LENGTH,
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


@dataclass(frozen=True)
class Page:
    tasks: Sequence[TaskView]
    # The size of the filtered set; only counted for offset pages.
    total: int | None
    next_cursor: str | None
    # The change feed's floor when the page was read (domain/changes.py): the list's ETag.
    floor: int


def list_owned(c: Connection, *, owner_id: int, query: ListQuery) -> Page:
    """One page of the caller's tasks."""
    dialect = c.dialect.name
    filters = tuple(name for name in _FILTERS if getattr(query, name) not in (None, ""))
    values: dict[str, Any] = {"owner_id": owner_id, "limit": query.limit}
    for name in filters:
        values[name] = _FILTERS[name].value(getattr(query, name), dialect)
    if query.cursor is not None:
        # The cursor carries the order it was issued in, and wins over `sort` as over `page`.
        sort, last_key, last_id = decode_cursor(query.cursor)
        values |= {"last_key": last_key, "last_id": last_id, "limit": query.limit + 1}
        statement = _cursor_statement(_Shape(dialect, sort, filters, last_key is None))
        # Before the page: a floor read earlier is lower, never higher (changes.floor).
        seen_floor = int(c.scalar(_floor_statement(dialect)))
        rows = list(c.execute(statement, values))
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        return Page(rows, None, _encode(rows[-1], sort) if more else None, seen_floor)

    page, count = _offset_statements(_Shape(dialect, query.sort, filters))
    counted, seen_floor = c.execute(count, values).one()
    # PostgreSQL's sum of a bigint is a numeric.
    total = int(counted or 0)
    offset = (query.page - 1) * query.limit
    if offset >= total:
        return Page([], total, None, seen_floor)
    rows = list(c.execute(page, {**values, "offset": offset}))
    more = offset + len(rows) < total
    return Page(rows, total, _encode(rows[-1], query.sort) if more else None, seen_floor)


@functools.cache
def _floor_statement(dialect: str) -> Select[Any]:
    return select(changes.floor(dialect))


@dataclass(frozen=True)
class _Filter:
    """A filter of ListQuery: its condition on a bound parameter of its name, and that value."""

    condition: Callable[[str], ColumnElement[bool]]
    value: Callable[[Any, str], Any] = lambda value, _dialect: value


def _contains(column: Any, dialect: str) -> ColumnElement[bool]:
    """Case-insensitive substring match of the `q` parameter (see _pattern)."""
    if dialect == "postgresql":
        # Served by the pg_trgm indexes of migration 0002.
        match: ColumnElement[bool] = column.ilike(bindparam("q"), escape="\\")
        return match
    # SQLite's own lower() only folds ASCII; db.py registers Python's as unicode_lower().
    return func.unicode_lower(column).like(bindparam("q"), escape="\\")


def _pattern(text: str, dialect: str) -> str:
    """`text` as the LIKE pattern of a substring; `%` and `_` in it are literal."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped if dialect == 'postgresql' else escaped.lower()}%"


# One per field of ListQuery that is not about paging (a test checks they match). Ranges are
# half-open: `after` includes its instant, `before` excludes it.
_FILTERS: dict[str, _Filter] = {
    "status": _Filter(lambda _: TASKS.c.status == bindparam("status")),
    "priority": _Filter(lambda _: TASKS.c.priority == bindparam("priority")),
    "q": _Filter(
        lambda dialect: or_(
            _contains(TASKS.c.title, dialect), _contains(TASKS.c.description, dialect)
        ),
        _pattern,
    ),
    "due_after": _Filter(lambda _: TASKS.c.due_date >= bindparam("due_after")),
    "due_before": _Filter(lambda _: TASKS.c.due_date < bindparam("due_before")),
    "created_after": _Filter(lambda _: TASKS.c.created_at >= bindparam("created_after")),
    "created_before": _Filter(lambda _: TASKS.c.created_at < bindparam("created_before")),
}


@dataclass(frozen=True)
class _Shape:
    """What a list statement's SQL depends on; the values it runs with are parameters."""

    dialect: str
    sort: Sort
    filters: tuple[str, ...]
    # A cursor after a task without a due date starts from the bound that sorts those last.
    no_last_key: bool = False


# Building a statement and its cache key on each request cost about as much as running it, so
# each shape's statements are built once.


@functools.lru_cache(maxsize=512)
def _offset_statements(shape: _Shape) -> tuple[Select[Any], Select[Any, int]]:
    """An offset page of `shape`, and the size of its filtered set."""
    where = _where(shape)
    return _rows(shape).where(*where).offset(bindparam("offset")), _total(shape, where)


@functools.lru_cache(maxsize=512)
def _cursor_statement(shape: _Shape) -> Select[Any]:
    """The rows of `shape` after a cursor's (last_key, last_id)."""
    key = _sort_key(shape.sort, shape.dialect)
    return _rows(shape).where(*_where(shape), _after(key, shape.sort, shape.no_last_key))


def _where(shape: _Shape) -> list[ColumnElement[bool]]:
    return [
        TASKS.c.user_id == bindparam("owner_id"),
        *(_FILTERS[name].condition(shape.dialect) for name in shape.filters),
    ]


def _rows(shape: _Shape) -> Select[Any]:
    key = _sort_key(shape.sort, shape.dialect)
    return select(*TASKS.c).order_by(*_order(key, shape.sort)).limit(bindparam("limit"))


def _total(shape: _Shape, where: list[ColumnElement[bool]]) -> Select[Any, int]:
    """The size of the filtered set: from task_counts when it can tell, else counted."""
    floor = changes.floor(shape.dialect)
    if not COUNTED_FILTERS.issuperset(shape.filters):
        return select(func.count(), floor).select_from(TASKS).where(*where)
    counts = [TASK_COUNTS.c.user_id == bindparam("owner_id")]
    counts += [TASK_COUNTS.c[name] == bindparam(name) for name in shape.filters]
    return select(func.sum(TASK_COUNTS.c.n), floor).where(*counts)


def _sort_key(sort: Sort, dialect: str) -> ColumnElement[Any]:
    """The sort key as the index on it spells it (taskapi/storage/schema.py)."""
    if sort.key == "priority":
        return PRIORITY_RANK
    if sort.key == "due_date":
        return DUE_DATE_KEY[sort.descending]
    if sort.key == "title":
        return TITLE_KEY[dialect]
    column: ColumnElement[Any] = TASKS.c[sort.key]
    return column


def _order(key: ColumnElement[Any], sort: Sort) -> list[ColumnElement[Any]]:
    if sort.descending:
        return [key.desc(), TASKS.c.id.desc()]
    return [key.asc(), TASKS.c.id.asc()]


def _after(key: ColumnElement[Any], sort: Sort, no_last_key: bool) -> ColumnElement[bool]:
    """Rows that sort after (last_key, last_id), as a row comparison an index can serve."""
    later, from_ = (operator.lt, operator.le) if sort.descending else (operator.gt, operator.ge)
    # Only due_date is nullable, and its key stands in for NULL with what sorts last.
    bound = NO_DUE_DATE[sort.descending] if no_last_key else bindparam("last_key", type_=key.type)
    last_id = bindparam("last_id", type_=Integer)
    # The key's own bound repeats part of the row comparison for SQLite, which starts an index
    # range on an expression (priority, due_date) from a plain comparison only.
    return and_(from_(key, bound), later(tuple_(key, TASKS.c.id), tuple_(bound, last_id)))


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


# What timestamps.render() writes, the only form a cursor this API issued holds.
_RENDERED_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")


def _check_key(key: str, value: Any) -> Any:
    """A cursor's key, as strictly as the value it stands for: a forged one must be a 400 here,
    not a value the database driver refuses (a lone surrogate, NUL) with a 500."""
    if key == "priority":
        if type(value) is not int or value not in PRIORITY_RANKS.values():
            raise ValueError(value)
        return value
    if key == "title":
        if not isinstance(value, str) or not 1 <= len(value) <= TITLE_MAX_LENGTH:
            raise ValueError(value)
        if "\x00" in value:
            raise ValueError(value)
        value.encode("utf-8")  # raises UnicodeEncodeError (a ValueError) for a lone surrogate
        return value
    if value is None and key == "due_date":
        return None
    if not isinstance(value, str) or not _RENDERED_INSTANT.fullmatch(value):
        raise ValueError(value)
    return timestamps.parse(value)
