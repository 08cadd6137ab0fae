"""Fixed-window request counters, for the budget every authenticated request counts against.

The `limits` library counts the other budgets (auth, per email, per session): they see few
requests, and its moving windows are exact. Every request through it costs a task and a thread
hop in the process, and round trips to Redis per limit (docs/performance.md, "Why the code is
shaped this way"). Here a request costs a dictionary update per limit, or one pipelined round
trip to Redis for all of them. Windows are fixed, as GitHub's hourly budget is: up to twice a
limit can pass around a window's edge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from limits import RateLimitItem

# Slots of windows that ended are dropped this often (in hits), so idle keys cost nothing.
PRUNE_EVERY = 10_000
REDIS_PREFIX = "taskapi:window"


def _window(item: RateLimitItem, now: float) -> tuple[int, int]:
    period = item.get_expiry()
    return period, math.floor(now / period)


class LocalWindows:
    """Counters in this process."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], tuple[int, int]] = {}
        self._hits = 0

    async def hit(self, key: str, items: Sequence[RateLimitItem], now: float) -> list[int]:
        """Count one request of `key` in the current window of each item; the counts."""
        self._hits += 1
        if self._hits % PRUNE_EVERY == 0:
            self._prune(now)
        counts = []
        for item in items:
            period, window = _window(item, now)
            slot = (key, period)
            counted_window, count = self._counts.get(slot, (window, 0))
            count = count + 1 if counted_window == window else 1
            self._counts[slot] = (window, count)
            counts.append(count)
        return counts

    def _prune(self, now: float) -> None:
        self._counts = {
            (key, period): (window, count)
            for (key, period), (window, count) in self._counts.items()
            if window == math.floor(now / period)
        }


class RedisWindows:
    """Counters in Redis, shared by every process: one pipelined round trip a request."""

    def __init__(self, client: Any) -> None:
        self._client = client

    async def hit(self, key: str, items: Sequence[RateLimitItem], now: float) -> list[int]:
        pipeline = self._client.pipeline(transaction=False)
        for item in items:
            period, window = _window(item, now)
            name = f"{REDIS_PREFIX}:{key}:{period}:{window}"
            pipeline.incr(name)
            pipeline.expire(name, period + 1)
        results = await pipeline.execute()
        return [int(count) for count in results[0::2]]


def reset_at(item: RateLimitItem, now: float) -> float:
    """When the current window of `item` ends."""
    period, window = _window(item, now)
    return float((window + 1) * period)
