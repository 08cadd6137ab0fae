"""Reads from a hot standby, without a client ever missing its own write.

With DATABASE_READ_URL set, a request of an account reads from a standby when the standby has
replayed that account's last write, and from the primary otherwise (the way GitLab's database
load balancer does it):

- After a write commits, its connection asks the primary where its flushed WAL ends
  (`pg_current_wal_flush_lsn()`, WRITE_POSITION says why). The web layer keeps that position
  for the account, where every worker and replica sees it (storage/write_positions.py).
- A read of the account uses the standby only if the standby's replay position
  (`pg_last_wal_replay_lsn()`) is at least that far. A thread per process asks for the replay
  position every REFRESH_EVERY, so the check costs a request no round trip: an account that
  wrote within the last REFRESH_EVERY or so reads from the primary until the next answer.
- A standby that is not in recovery, lags by more than DB_READ_MAX_LAG, or fails is left out for
  a while; its reads go to the primary. Reads of requests that belong to no known account
  (registration, login, probes, housekeeping) always go to the primary.

Every operation is scoped to the caller's account, so no client reads what another account
wrote; what a standby can serve late is a change made outside the account's requests (the
purge of old tombstones), by at most DB_READ_MAX_LAG.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, make_url, text

log = logging.getLogger("taskapi.replicas")

# How often each process asks the standby how far it has replayed.
REFRESH_EVERY = 0.1
# How often it asks the primary how far it has written, to measure the lag by, beside its own
# writes: a process that has not written lately still finds a standby that stopped replaying.
SAMPLE_PRIMARY_EVERY = 1.0
# An answer older than this (the standby stopped answering) keeps reads off the standby.
STALE_AFTER = 1.0
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
# Where the WAL ends that a standby can have: a committed transaction's record is flushed before
# the commit returns, so the flush position covers it. The insert position does too, but it can
# lie beyond anything a standby receives while the primary is idle (past a page or segment
# header at a boundary, or past records no commit flushed): a position out of reach, and a
# standby taken for lagging. Only with synchronous_commit off does a commit return before its
# flush; the insert position is then the one that covers it.
WRITE_POSITION = text(
    "SELECT (CASE WHEN current_setting('synchronous_commit') = 'off'"
    " THEN pg_current_wal_insert_lsn() ELSE pg_current_wal_flush_lsn() END)::text"
)


class Standby:
    """One hot standby pool and what this process knows of it.

    A thread of its own asks the standby for its replay position every REFRESH_EVERY, so a
    request never waits on that question: it compares positions in memory. A standby that
    stops answering stalls only that thread, and once the answer is older than STALE_AFTER,
    reads go to the primary.
    """

    def __init__(
        self, engines: list[Engine], *, max_lag: float, primary_position: Callable[[], int]
    ) -> None:
        # One per host of DATABASE_READ_URL, tried in turn: the one in use until it fails.
        self.engines = engines
        self.engine = engines[0]
        self.max_lag = max_lag
        self._primary_position = primary_position
        self.replayed = 0
        self.reads = 0
        self._checked_at = -1e9
        self._left_out_until = 0.0
        # (when, position) of this process's writes the standby had not replayed when last seen.
        self._pending: deque[tuple[float, int]] = deque(maxlen=PENDING_WRITES)
        self._pending_lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self._stopped = threading.Event()

    def serves(self, position: int) -> bool:
        """Whether a read that must see `position` can use this standby now."""
        if self._watcher is None:
            self._watch()
        now = time.monotonic()
        if now < self._left_out_until or now - self._checked_at > STALE_AFTER:
            return False
        return position <= self.replayed

    def noted_write(self, position: int) -> None:
        """A write of this process committed at `position`: the lag is measured against it."""
        now = time.monotonic()
        with self._pending_lock:
            if self._pending and now - self._pending[-1][0] < PENDING_SPACING:
                # The entry keeps its first write's time: its age is its oldest write's.
                since, held = self._pending[-1]
                self._pending[-1] = (since, max(held, position))
            else:
                self._pending.append((now, position))

    def failed(self, error: BaseException) -> None:
        """A read on the standby failed (a lost connection, a recovery conflict): leave it out."""
        self._leave_out(f"{type(error).__name__}: {error}".splitlines()[0])

    def close(self) -> None:
        self._stopped.set()
        for engine in self.engines:
            engine.dispose()

    def _watch(self) -> None:
        # Started by the first read, in the process that serves: not in one that only
        # migrates, nor in a parent that forks its workers. Once, though two threads may ask.
        with self._pending_lock:
            if self._watcher is not None:
                return
            self._watcher = threading.Thread(
                target=self._keep_watching, name="standby", daemon=True
            )
        self._watcher.start()

    def _keep_watching(self) -> None:
        sampled = -1e9
        while not self._stopped.is_set():
            if time.monotonic() - sampled >= SAMPLE_PRIMARY_EVERY:
                sampled = time.monotonic()
                # A primary that does not answer is the write pool's to report, not ours.
                with contextlib.suppress(Exception):
                    self.noted_write(self._primary_position())
            if time.monotonic() >= self._left_out_until:
                self._refresh()
            self._stopped.wait(REFRESH_EVERY)

    def _refresh(self) -> None:
        asked = time.monotonic()
        try:
            with self.engine.connect() as connection:
                in_recovery, replayed = connection.execute(_REPLAY_STATE).one()
        except Exception as error:
            self.failed(error)
            return
        if not in_recovery or replayed is None:
            # Promoted, or a primary behind the URL: it is no longer a copy of the primary.
            self._leave_out("not in recovery")
            return
        # Not the highest ever seen: after a failure the pool may have reached another standby.
        self.replayed = parse_lsn(replayed)
        with self._pending_lock:
            while self._pending and self._pending[0][1] <= self.replayed:
                self._pending.popleft()
            oldest = self._pending[0][0] if self._pending else asked
        if asked - oldest > self.max_lag:
            # Kept: until it replays them, the standby is found lagging at each new try.
            self._leave_out(f"lags by more than {self.max_lag:g}s")
            return
        self._checked_at = asked

    def _leave_out(self, why: str) -> None:
        if time.monotonic() >= self._left_out_until:
            log.warning("standby left out for %gs: %s", LEFT_OUT_FOR, why)
            # Its pooled connections go, and the next try is the next host's: after a failover,
            # the old primary may be the standby now.
            left = self.engine
            self.engine = self.engines[(self.engines.index(left) + 1) % len(self.engines)]
            left.dispose()
        self._left_out_until = time.monotonic() + LEFT_OUT_FOR
        self._checked_at = -1e9


def standby_urls(url: str) -> list[str]:
    """One URL per host of a DATABASE_READ_URL. With several hosts TaskAPI picks the standby
    itself, asking each server whether it is in recovery: libpq's `target_session_attrs` goes
    by what the server reported at login, which a pooler in between (PgBouncer 1.18) replays
    from its first server connection, stale after a failover."""
    parsed = make_url(url)
    hosts = parsed.query.get("host")
    if not isinstance(hosts, tuple) or len(hosts) < 2:
        return [url]
    one_each = parsed.difference_update_query(["target_session_attrs"])
    return [
        one_each.update_query_dict({"host": host}).render_as_string(hide_password=False)
        for host in hosts
    ]


def write_position(connection: Any) -> int:
    """The primary's WAL position after what `connection` committed."""
    return parse_lsn(connection.execute(WRITE_POSITION).scalar_one())
