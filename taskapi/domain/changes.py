"""The change feed: what changed in an account's tasks since a point the client holds.

Every write of a task stamps its row's `change_id`, and every delete leaves a tombstone stamped
the same way (triggers, migration 0005): on PostgreSQL with the writing transaction's id, on
SQLite with a counter. The feed reads tasks and tombstones in (change_id, id) order, from a
position, a page at a time.

Why nothing is missed, though stamps are not given in commit order: every statement that reads
the feed also reads a *floor*, below which no change can still commit. On PostgreSQL that is
its snapshot's xmin: every transaction with a smaller id has ended, so its changes are visible
now or never; a transaction that commits later was running at this snapshot, or began after
it, so its id is at least the floor. On SQLite, with one writer at a time, it is the counter
plus one. A *pass* reads pages from a position to the end; the next pass starts again at the
lowest floor any page of the pass saw. A change that committed during a pass behind the
position it had reached has a stamp at or above that floor, so the next pass returns it. What
this costs: a change may be sent twice (a client upserts, so a repeat changes nothing), and
writers wait for nothing (no counter is shared on PostgreSQL).

A position travels as an opaque token, signed so a client can neither forge nor alter one, and
bound to its account. A token older than the tombstones' retention, or older than a tombstone
the purge deleted, could miss a delete: it is refused (410), never answered incompletely.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Connection,
    Executable,
    Integer,
    Select,
    bindparam,
    exists,
    literal_column,
    null,
    or_,
    select,
    text,
    true,
    tuple_,
    type_coerce,
    union_all,
)

from taskapi.domain.errors import DomainError
from taskapi.storage.rows import TaskView
from taskapi.storage.schema import CHANGE_CLOCK, TASK_TOMBSTONES, TASKS, USERS

TOKEN_VERSION = 1
_PAYLOAD = struct.Struct(">Bqqqqq?")
_MAC_BYTES = 16
# Before any stamp: a full sync reads from here.
START = (-1, -1)


class InvalidSyncToken(DomainError):
    code = "invalid_sync_token"
    message = "since: not a sync token this server issued to you; sync again without it"


class SyncTokenExpired(DomainError):
    code = "sync_token_expired"
    message = (
        "since: too old; deletes from before it may be forgotten. Sync again without `since` "
        "and replace your copy with what it returns"
    )


@dataclass(frozen=True)
class Position:
    """Where a client stands in its account's feed.

    `after` is the last (change_id, id) it was sent; `floor` the lowest floor the pages of
    the current pass saw (None at a pass's start); `tombstones` is False during a full sync's
    first pass, which needs none: the client has nothing to delete yet.
    """

    owner_id: int
    after: tuple[int, int] = START
    floor: int | None = None
    tombstones: bool = False


@dataclass(frozen=True)
class Deleted:
    id: int
    deleted_at: datetime


@dataclass(frozen=True)
class Changes:
    tasks: list[TaskView]
    deleted: list[Deleted]
    next_position: Position
    has_more: bool


class TokenCodec:
    """Sync tokens: a position, signed with a key derived from the server's secret."""

    def __init__(self, secret: str, retention_seconds: int) -> None:
        self._key = hmac.new(secret.encode(), b"taskapi sync token", hashlib.sha256).digest()
        self.retention = retention_seconds

    def encode(self, position: Position) -> str:
        payload = _PAYLOAD.pack(
            TOKEN_VERSION,
            position.owner_id,
            *position.after,
            -1 if position.floor is None else position.floor,
            int(time.time()),
            position.tombstones,
        )
        raw = payload + self._mac(payload)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def decode(self, token: str, *, owner_id: int) -> Position:
        """The position `token` holds, if this server issued it to `owner_id` within the
        retention; InvalidSyncToken or SyncTokenExpired otherwise."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise InvalidSyncToken() from None
        payload, mac = raw[: _PAYLOAD.size], raw[_PAYLOAD.size :]
        if len(raw) != _PAYLOAD.size + _MAC_BYTES or not hmac.compare_digest(
            mac, self._mac(payload)
        ):
            raise InvalidSyncToken()
        version, owner, change_id, task_id, floor, issued_at, tombstones = _PAYLOAD.unpack(payload)
        if version != TOKEN_VERSION or owner != owner_id:
            raise InvalidSyncToken()
        if time.time() - issued_at > self.retention:
            raise SyncTokenExpired()
        return Position(owner, (change_id, task_id), None if floor < 0 else floor, tombstones)

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC_BYTES]


def read(c: Connection, position: Position, *, limit: int) -> Changes:
    """One page of the feed from `position`, in one statement."""
    statement = _statement(c.dialect.name, position.tombstones)
    values = {
        "owner_id": position.owner_id,
        "after_change": position.after[0],
        "after_id": position.after[1],
        "limit": limit + 1,
    }
    rows = list(c.execute(statement, values))
    if not rows:
        raise InvalidSyncToken()  # the account is gone; its token went with it
    purged_through, seen_floor = rows[0].changes_purged_through, rows[0].floor
    if position.tombstones and purged_through and purged_through >= position.after[0]:
        raise SyncTokenExpired()
    found = [row for row in rows if row.change_id is not None]
    has_more = len(found) > limit
    found = found[:limit]
    lowest = seen_floor if position.floor is None else min(position.floor, seen_floor)
    if has_more:
        last = found[-1]
        following = Position(
            position.owner_id, (last.change_id, last.id), lowest, position.tombstones
        )
    else:
        following = Position(position.owner_id, (lowest, -1), None, True)
    return Changes(
        tasks=[row for row in found if not row.gone],
        deleted=[Deleted(row.id, row.deleted_at) for row in found if row.gone],
        next_position=following,
        has_more=has_more,
    )


def changed_since(c: Connection, *, owner_id: int, floor: int) -> bool:
    """Whether any of the owner's tasks may have been created, changed or deleted since a read
    whose floor was `floor` (a change that read already saw may answer True; a change it did
    not see never answers False). One statement, on the feed's indexes."""
    values = {"owner_id": owner_id, "floor": floor}
    return bool(c.scalar(_CHANGED_SINCE, values))


def floor(dialect: str) -> ColumnElement[int]:
    """The stamp below which no change can still commit, read in the statement's snapshot."""
    if dialect == "postgresql":
        return literal_column("(pg_snapshot_xmin(pg_current_snapshot())::text)::bigint", BigInteger)
    return select(CHANGE_CLOCK.c.value).scalar_subquery() + 1


_CHANGED_SINCE = select(
    or_(
        exists().where(
            TASKS.c.user_id == bindparam("owner_id"), TASKS.c.change_id >= bindparam("floor")
        ),
        exists().where(
            TASK_TOMBSTONES.c.user_id == bindparam("owner_id"),
            TASK_TOMBSTONES.c.change_id >= bindparam("floor"),
        ),
    )
)


@functools.cache
def _statement(dialect: str, tombstones: bool) -> Executable:
    if dialect == "postgresql":
        return _POSTGRESQL_PAGE.bindparams(tombstones=tombstones)
    return _portable_statement(dialect, tombstones)


# The same page as _portable_statement, from the function migration 0005 creates on
# PostgreSQL: its plan is kept, so a poll is not planned again each time.
_POSTGRESQL_PAGE = text(
    "SELECT * FROM task_changes(:owner_id, :after_change, :after_id, :limit, :tombstones)"
).columns(
    changes_purged_through=BigInteger,
    floor=BigInteger,
    gone=Boolean,
    change_id=BigInteger,
    **{c.key: c.type for c in TASKS.c if c.key != "change_id"},
    deleted_at=TASK_TOMBSTONES.c.deleted_at.type,
)


def _portable_statement(dialect: str, tombstones: bool) -> Select[Any]:
    owner = bindparam("owner_id", type_=BigInteger)
    after = tuple_(bindparam("after_change"), bindparam("after_id"))
    task_columns = [c for c in TASKS.c if c.key != "change_id"]
    # Literals and bare NULLs, not bound parameters and casts: the statement is planned on
    # every poll, and the smaller it is, the less that costs.
    changed = select(
        literal_column("false", Boolean).label("gone"),
        TASKS.c.change_id,
        *task_columns,
        type_coerce(null(), TASK_TOMBSTONES.c.deleted_at.type).label("deleted_at"),
    ).where(TASKS.c.user_id == owner, tuple_(TASKS.c.change_id, TASKS.c.id) > after)
    parts: Sequence[Select[Any]] = [changed]
    if tombstones:
        gone = select(
            literal_column("true", Boolean).label("gone"),
            TASK_TOMBSTONES.c.change_id,
            TASK_TOMBSTONES.c.task_id.label("id"),
            *[null().label(c.key) for c in task_columns if c.key != "id"],
            TASK_TOMBSTONES.c.deleted_at,
        ).where(
            TASK_TOMBSTONES.c.user_id == owner,
            tuple_(TASK_TOMBSTONES.c.change_id, TASK_TOMBSTONES.c.task_id) > after,
        )
        parts = [changed, gone]
    page = (
        (union_all(*parts) if len(parts) > 1 else changed)
        .order_by(literal_column("change_id"), literal_column("id"))
        .limit(bindparam("limit", type_=Integer))
        .subquery("page")
    )
    return (
        select(USERS.c.changes_purged_through, floor(dialect).label("floor"), page)
        .select_from(USERS.outerjoin(page, true()))
        .where(USERS.c.id == owner)
        .order_by(page.c.change_id, page.c.id)
    )
