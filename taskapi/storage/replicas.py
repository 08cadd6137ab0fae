"""Reads from a hot standby, without a client ever missing its own write.

With DATABASE_READ_URL set, a request of an account reads from a standby when the standby has
replayed that account's last write, and from the primary otherwise (the way GitLab's database
load balancer does it):

- After a write commits, its connection asks the primary for the end of its WAL
  (`pg_current_wal_insert_lsn()`). The web layer keeps that position for the account, where
  every worker and replica sees it (storage/write_positions.py).
- A read of the account uses the standby only if the standby's replay position
  (`pg_last_wal_replay_lsn()`) is at least that far. The replay position is cached per process
  and refreshed every REFRESH_EVERY, or sooner when an account's position is ahead of it: a read
  of an account that has not written recently costs no extra round trip.
- A standby that is not in recovery, lags by more than DB_READ_MAX_LAG, or fails is left out for
  a while; its reads go to the primary. Reads of requests that belong to no known account
  (registration, login, probes, housekeeping) always go to the primary.

A client of another account may see data up to DB_READ_MAX_LAG old: that is the trade.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text

log = logging.getLogger("taskapi.replicas")

# How often the cached replay position is refreshed while nothing forces it.
REFRESH_EVERY = 0.25
# An account position ahead of the cache refreshes it, but no more often than this.
REFRESH_AT_MOST_EVERY = 0.005
# How long a standby that failed or fell behind is left out before it is tried again: one
# refresh a second is cheap, and the standby is back in use soon after it recovers.
LEFT_OUT_FOR = 1.0
# Writes of this process remembered to measure the standby's lag: writes this close together
# share one entry, so that the oldest write not replayed is known for at least
# PENDING_WRITES * PENDING_SPACING seconds whatever the write rate.
PENDING_WRITES = 1024
PENDING_SPACING = 0.01


@dataclass(slots=True)
class Consistency:
    """What one request's reads must see: the account's last write known before the request
    (`floor`) and this request's own writes (`written`), as WAL positions; 0 for none."""

    account: int | None = None
    floor: int = 0
    written: int = 0

    def wrote(self, position: int) -> None:
        self.written = max(self.written, position)

    @property
    def must_see(self) -> int:
        return max(self.floor, self.written)


# The current request's, set by the web layer; None outside a request (probes, housekeeping).
CURRENT: contextvars.ContextVar[Consistency | None] = contextvars.ContextVar(
    "taskapi_consistency", default=None
)


def parse_lsn(value: str) -> int:
    """A PostgreSQL LSN (`16/B374D848`) as a number that orders as the LSNs do."""
    high, _, low = value.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


_REPLAY_STATE = text("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text")
WRITE_POSITION = text("SELECT pg_current_wal_insert_lsn()::text")


class Standby:
    """One hot standby pool and what this process knows of it."""

    def __init__(self, engine: Engine, *, max_lag: float) -> None:
        self.engine = engine
        self.max_lag = max_lag
        self.replayed = 0
        self._checked_at = -1e9
        self._left_out_until = 0.0
        # (when, position) of this process's writes the standby had not replayed when last seen.
        self._pending: deque[tuple[float, int]] = deque(maxlen=PENDING_WRITES)
        self._refreshing = threading.Lock()
        self.reads = 0

    def serves(self, position: int) -> bool:
        """Whether a read that must see `position` can use this standby now."""
        now = time.monotonic()
        if now < self._left_out_until:
            return False
        stale = now - self._checked_at
        if stale > REFRESH_EVERY or (position > self.replayed and stale > REFRESH_AT_MOST_EVERY):
            self._refresh(now)
            if now < self._left_out_until:
                return False
        return position <= self.replayed

    def noted_write(self, position: int) -> None:
        """A write of this process committed at `position`: the lag is measured against it."""
        now = time.monotonic()
        if self._pending and now - self._pending[-1][0] < PENDING_SPACING:
            # The entry keeps its first write's time: its age is that of the oldest write in it.
            since, held = self._pending[-1]
            self._pending[-1] = (since, max(held, position))
        else:
            self._pending.append((now, position))

    def failed(self, error: BaseException) -> None:
        """A read on the standby failed (a lost connection, a recovery conflict): leave it out."""
        self._leave_out(f"{type(error).__name__}: {error}".splitlines()[0])

    def _refresh(self, now: float) -> None:
        if not self._refreshing.acquire(blocking=False):
            return  # another thread is refreshing; the cached position still holds
        try:
            with self.engine.connect() as connection:
                in_recovery, replayed = connection.execute(_REPLAY_STATE).one()
        except Exception as error:
            self.failed(error)
            return
        finally:
            self._refreshing.release()
        self._checked_at = now
        if not in_recovery or replayed is None:
            # Promoted, or a primary behind the URL: it is no longer a copy of the primary.
            self._leave_out("not in recovery")
            return
        # Not the highest ever seen: after a failure the pool may have reached another standby.
        self.replayed = parse_lsn(replayed)
        while self._pending and self._pending[0][1] <= self.replayed:
            self._pending.popleft()
        if self._pending and now - self._pending[0][0] > self.max_lag:
            # Kept: until it replays them, the standby is found lagging at each new try.
            self._leave_out(f"lags by more than {self.max_lag:g}s")

    def _leave_out(self, why: str) -> None:
        if time.monotonic() >= self._left_out_until:
            log.warning("standby left out for %gs: %s", LEFT_OUT_FOR, why)
            # Its pooled connections go: with several hosts in DATABASE_READ_URL, the next ones
            # may reach another standby (after a failover, the old primary rejoined as one).
            self.engine.dispose()
        self._left_out_until = time.monotonic() + LEFT_OUT_FOR
        self._checked_at = -1e9


def write_position(connection: Any) -> int:
    """The primary's WAL position after what `connection` committed."""
    return parse_lsn(connection.execute(WRITE_POSITION).scalar_one())
