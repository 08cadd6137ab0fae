"""Each account's last write, as a WAL position, for read-your-writes (storage/replicas.py).

In Redis when REDIS_URL is set, so that a write through one worker or replica holds for a read
through any other; in the process otherwise (Settings refuses several workers without Redis).
A position is kept for `keep_for` (30 s, or ten times DB_READ_MAX_LAG if longer) after the
account's last write: by then a standby that has not replayed it lags by more than
DB_READ_MAX_LAG, which each process measures, and is left out anyway.

While Redis fails, `load` answers "unknown", and the request reads from the primary: an outage
of Redis costs the standby's help, never a client's own write.
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("taskapi.replicas")

REDIS_PREFIX = "taskapi:wal"
# Positions outlive any lag a standby is still used at (WritePositions.keep_for).
KEEP_AT_LEAST = 30.0

# Keeps the highest position: two writes of one account through two replicas may store theirs
# in either order. Positions are 16 hex digits, so comparing the strings compares the LSNs.
_KEEP_HIGHEST = """
local held = redis.call('GET', KEYS[1])
if not held or held < ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
"""

UNKNOWN = -1  # the position could not be read: reads must go to the primary


class WritePositions:
    """Accounts' last write positions; 0 for an account that has not written lately."""

    def __init__(self, redis_url: str = "", *, max_lag: float = 0.0) -> None:
        self.keep_for = max(KEEP_AT_LEAST, 10 * max_lag)
        self._local: dict[int, tuple[int, float]] = {}
        self._redis: Any = None
        self._keep_highest: Any = None
        if redis_url:
            import redis.asyncio  # only a deployment with a standby and Redis needs it loaded

            self._redis = redis.asyncio.Redis.from_url(
                redis_url, socket_timeout=0.5, socket_connect_timeout=0.5
            )
            self._keep_highest = self._redis.register_script(_KEEP_HIGHEST)

    async def load(self, account: int) -> int:
        """The account's last write position, 0 for none lately, UNKNOWN if it cannot be read."""
        if self._redis is None:
            position, until = self._local.get(account, (0, 0.0))
            return position if time.monotonic() < until else 0
        try:
            held = await self._redis.get(f"{REDIS_PREFIX}:{account}")
        except Exception as error:
            log.warning("write positions unreadable (%s); reads go to the primary", error)
            return UNKNOWN
        return 0 if held is None else int(held, 16)

    async def store(self, account: int, position: int) -> None:
        """Remember that `account` wrote up to `position` (kept if higher than the one held)."""
        if self._redis is None:
            held, _ = self._local.get(account, (0, 0.0))
            self._local[account] = (max(held, position), time.monotonic() + self.keep_for)
            if len(self._local) > 100_000:
                self._prune()
            return
        await self._keep_highest(
            keys=[f"{REDIS_PREFIX}:{account}"],
            args=[f"{position:016x}", int(self.keep_for * 1000)],
        )

    def _prune(self) -> None:
        now = time.monotonic()
        self._local = {k: v for k, v in self._local.items() if v[1] > now}

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
