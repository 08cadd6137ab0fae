"""Readiness: whether this process can serve traffic now.

It can when the database answers, Redis too when REDIS_URL is set, and it is not draining
after SIGTERM. Redis gets CHECK_TIMEOUT seconds, the database DB_CONNECT_TIMEOUT to connect;
the probe runs on a thread (its policy in taskapi/web/policies.py), so a dependency that hangs
delays only the probe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from taskapi.ops import lifecycle
from taskapi.storage.db import Database

CHECK_TIMEOUT = 1.0

DatabaseState = Literal["ok", "unavailable"]
RedisState = Literal["ok", "unavailable", "not configured"]


@dataclass(frozen=True)
class Checks:
    database: DatabaseState
    redis: RedisState
    shutting_down: bool

    @property
    def ready(self) -> bool:
        return self.database == "ok" and self.redis != "unavailable" and not self.shutting_down

    @property
    def failing(self) -> list[str]:
        failed = [name for name in ("database", "redis") if getattr(self, name) == "unavailable"]
        return failed + (["shutting down"] if self.shutting_down else [])


class Readiness:
    """Checks the database and Redis for /ready."""

    def __init__(self, db: Database, redis_url: str) -> None:
        self.db = db
        self.redis_url = redis_url
        self._redis: Any = None

    def check(self) -> Checks:
        return Checks(
            database=self._database(),
            redis=self._redis_state(),
            shutting_down=lifecycle.draining(),
        )

    def _database(self) -> DatabaseState:
        try:
            # Bounded by DB_CONNECT_TIMEOUT, or the connection's TCP timeout if it hangs.
            with self.db.reading() as c:
                c.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError:
            return "unavailable"
        return "ok"

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()

    def _redis_state(self) -> RedisState:
        if not self.redis_url:
            return "not configured"
        import redis  # only a deployment with REDIS_URL needs it loaded

        if self._redis is None:
            self._redis = redis.Redis.from_url(
                self.redis_url, socket_timeout=CHECK_TIMEOUT, socket_connect_timeout=CHECK_TIMEOUT
            )
        try:
            self._redis.ping()
        except redis.RedisError:
            return "unavailable"
        return "ok"
