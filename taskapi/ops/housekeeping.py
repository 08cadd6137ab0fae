"""Deleting what has expired: refresh tokens, stored Idempotency-Key responses, logged-out
access tokens.

Each of these rows has an indexed `expires_at`, after which nothing reads it (a revoked
refresh token expires an hour after its revocation). Every server process purges on a timer
(PURGE_INTERVAL_SECONDS), so rows go whether or not their owner comes back, and `taskapi db
purge` does the same from a cron job. Rows go in batches, each in a short transaction of its
own, so a purge never holds many locks for long; on PostgreSQL one process at a time purges
(a transaction-level advisory lock; the others skip their turn).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from sqlalchemy import Connection, Table, delete, func, select, tuple_

from taskapi.storage.db import Database
from taskapi.storage.schema import IDEMPOTENCY_KEYS, REFRESH_TOKENS, REVOKED_ACCESS_TOKENS, utcnow

log = logging.getLogger("taskapi.purge")

BATCH = 5000
# pg_try_advisory_xact_lock's key ("taskapi purge" in a 64-bit integer).
ADVISORY_LOCK = 0x7461736B70757267 & 0x7FFFFFFFFFFFFFFF

EXPIRING: tuple[Table, ...] = (REFRESH_TOKENS, IDEMPOTENCY_KEYS, REVOKED_ACCESS_TOKENS)


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


def purge(db: Database, *, now: datetime | None = None) -> dict[str, int] | None:
    """Delete every expired row; how many went, by table, or None if another process is
    purging (PostgreSQL)."""
    now = now or utcnow()
    purged = dict.fromkeys((table.name for table in EXPIRING), 0)
    for table in EXPIRING:
        while True:
            with db.transaction() as s:
                if not _claimed(s):
                    return None
                deleted = purge_batch(s, table, now=now)
            purged[table.name] += deleted
            if deleted < BATCH:
                break
    return purged


@asynccontextmanager
async def periodically(db: Database, interval: float) -> AsyncIterator[None]:
    """Purge every `interval` seconds (with jitter, so processes spread out) while in the
    block; 0: never."""
    if interval <= 0:
        yield
        return

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval * random.uniform(0.5, 1.5))  # noqa: S311
            try:
                purged = await asyncio.to_thread(purge, db)
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
