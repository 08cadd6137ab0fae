"""Deleting what has expired: refresh tokens, stored Idempotency-Key responses, logged-out
access tokens, personal access tokens, and the change feed's tombstones once
TOMBSTONE_RETENTION has passed.

Each of these rows has an indexed `expires_at`, after which nothing reads it (a revoked
refresh token expires an hour after its revocation) but its owner: an expired personal access
token stays listed for EXPIRED_TOKENS_LISTED, so the owner of a script that stopped working
can see why. Every server process purges on a timer
(PURGE_INTERVAL_SECONDS), so rows go whether or not their owner comes back, and `taskapi db
purge` does the same from a cron job. Rows go in batches, each in a short transaction of its
own, so a purge never holds many locks for long; on PostgreSQL one process at a time purges
(a transaction-level advisory lock; the others skip their turn).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from sqlalchemy import Connection, Table, bindparam, case, delete, func, select, tuple_, update

from taskapi.storage.db import Database
from taskapi.storage.schema import (
    IDEMPOTENCY_KEYS,
    PERSONAL_ACCESS_TOKENS,
    REFRESH_TOKENS,
    REVOKED_ACCESS_TOKENS,
    TASK_TOMBSTONES,
    USERS,
    utcnow,
)

log = logging.getLogger("taskapi.purge")

BATCH = 5000
# pg_try_advisory_xact_lock's key ("taskapi purge" in a 64-bit integer).
ADVISORY_LOCK = 0x7461736B70757267 & 0x7FFFFFFFFFFFFFFF

EXPIRED_TOKENS_LISTED = timedelta(days=30)
# Each table whose rows expire, and how long after it they are kept.
EXPIRING: dict[Table, timedelta] = {
    REFRESH_TOKENS: timedelta(0),
    IDEMPOTENCY_KEYS: timedelta(0),
    REVOKED_ACCESS_TOKENS: timedelta(0),
    PERSONAL_ACCESS_TOKENS: EXPIRED_TOKENS_LISTED,
}


def _claimed(s: Connection) -> bool:
    """Whether this transaction may purge: on PostgreSQL, no other process is purging."""
    if s.dialect.name != "postgresql":
        return True  # SQLite runs one writer at a time anyway
    return bool(s.scalar(select(func.pg_try_advisory_xact_lock(ADVISORY_LOCK))))


def purge_batch(s: Connection, table: Table, *, now: datetime, limit: int = BATCH) -> int:
    """Delete up to `limit` rows of `table` that expired before `now`; how many went."""
    key = list(table.primary_key.columns)
    expired = select(*key).where(table.c.expires_at < now).limit(limit)
    return int(s.execute(delete(table).where(tuple_(*key).in_(expired))).rowcount)


# Raise an account's changes_purged_through to the largest stamp purged, never lower it.
_RAISE_PURGED_THROUGH = (
    update(USERS)
    .where(USERS.c.id == bindparam("owner"))
    .values(
        changes_purged_through=case(
            (USERS.c.changes_purged_through < bindparam("through"), bindparam("through")),
            else_=USERS.c.changes_purged_through,
        )
    )
)


def purge_tombstones_batch(s: Connection, *, deleted_before: datetime, limit: int = BATCH) -> int:
    """Delete up to `limit` tombstones of tasks deleted before `deleted_before`, and record for
    each account the largest stamp it lost, so a sync token from before it is refused rather
    than answered without those deletes (domain/changes.py)."""
    old = (
        select(TASK_TOMBSTONES.c.task_id)
        .where(TASK_TOMBSTONES.c.deleted_at < deleted_before)
        .limit(limit)
    )
    gone = s.execute(
        delete(TASK_TOMBSTONES)
        .where(TASK_TOMBSTONES.c.task_id.in_(old))
        .returning(TASK_TOMBSTONES.c.user_id, TASK_TOMBSTONES.c.change_id)
    ).all()
    through: dict[int, int] = {}
    for owner, change_id in gone:
        through[owner] = max(through.get(owner, change_id), change_id)
    if through:
        s.execute(
            _RAISE_PURGED_THROUGH,
            [{"owner": owner, "through": stamp} for owner, stamp in sorted(through.items())],
        )
    return len(gone)


def purge(
    db: Database, *, now: datetime | None = None, tombstone_retention: float | None = None
) -> dict[str, int] | None:
    """Delete every expired row, and with `tombstone_retention` (seconds) the tombstones older
    than that; how many went, by table, or None if another process is purging (PostgreSQL)."""
    now = now or utcnow()
    batches: dict[str, Callable[[Connection], int]] = {
        table.name: functools.partial(purge_batch, table=table, now=now - kept)
        for table, kept in EXPIRING.items()
    }
    if tombstone_retention is not None:
        cutoff = now - timedelta(seconds=tombstone_retention)
        batches[TASK_TOMBSTONES.name] = functools.partial(
            purge_tombstones_batch, deleted_before=cutoff
        )
    purged = dict.fromkeys(batches, 0)
    for name, batch in batches.items():
        while True:
            with db.transaction() as s:
                if not _claimed(s):
                    return None
                deleted = batch(s)
            purged[name] += deleted
            if deleted < BATCH:
                break
    return purged


@asynccontextmanager
async def periodically(
    db: Database, interval: float, *, tombstone_retention: float
) -> AsyncIterator[None]:
    """Purge every `interval` seconds (with jitter, so processes spread out) while in the
    block; 0: never."""
    if interval <= 0:
        yield
        return

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval * random.uniform(0.5, 1.5))  # noqa: S311
            try:
                purged = await asyncio.to_thread(purge, db, tombstone_retention=tombstone_retention)
            except Exception as error:  # the next turn tries again; serving goes on
                log.warning("purge failed: %s", type(error).__name__)
                continue
            if purged:
                log.info("purged expired rows: %s", purged)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
