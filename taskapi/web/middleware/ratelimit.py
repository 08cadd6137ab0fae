"""Rate limits, with the `limits` library: per client IP, per user, and per password target.

Each operation counts against the budgets its policy names (taskapi/web/policies.py;
`RateLimitMiddleware` lists them), in Redis when REDIS_URL is set and in the process otherwise,
falling back to the process while Redis fails (`RateLimiter`). Over a limit: 429 with
Retry-After. Every response of a limited operation carries RateLimit-Limit, RateLimit-Remaining
and RateLimit-Reset for its tightest limit (draft-ietf-httpapi-ratelimit-headers, the widely
deployed header names).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskapi.config import parse_limits
from taskapi.domain.errors import DomainError
from taskapi.domain.users import normalize_email
from taskapi.web import context
from taskapi.web.middleware.ratelimit_windows import LocalWindows, RedisWindows, reset_at

log = logging.getLogger("taskapi.ratelimit")

FALLBACK_SECONDS = 30.0


class RateLimited(DomainError):
    code = "rate_limited"
    message = "Too many requests; retry later"


@dataclass(frozen=True)
class Budget:
    """The tightest of the limits a request counted against."""

    limit: int
    remaining: int
    reset_in: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_in),
        }


class RateLimiter:
    """Counts requests against budgets in a shared store, or in the process when it fails.

    Budgets live in Redis when REDIS_URL is set, so every worker and replica shares them, and in
    the process otherwise. If Redis fails, the limits fail open to per-process budgets for
    FALLBACK_SECONDS (logged, counted in the metrics) rather than refusing or letting everything
    through: an outage of the limiter's store is neither an outage of the API nor an open door.
    """

    def __init__(
        self,
        *,
        default: str,
        auth: str,
        auth_email: str,
        login_slowdown: str = "",
        slowdown_seconds: float = 0.0,
        redis_url: str = "",
        on_fallback: Callable[[], None] = lambda: None,
        on_rejected: Callable[[str], None] = lambda budget: None,
        on_slowed: Callable[[], None] = lambda: None,
    ) -> None:
        self.default = parse_limits(default)
        self.auth = parse_limits(auth)
        self.auth_email = parse_limits(auth_email)
        self.login_slowdown = parse_limits(login_slowdown)
        self.slowdown_seconds = slowdown_seconds
        self._on_slowed = on_slowed
        self.local = MovingWindowRateLimiter(MemoryStorage())
        self.shared = self.local
        self.local_windows = LocalWindows()
        self.shared_windows: LocalWindows | RedisWindows = self.local_windows
        self._pool: Any = None
        if redis_url:
            import redis.asyncio  # only a deployment with REDIS_URL needs it loaded

            # Our own pool, so that close() can release its connections.
            self._pool = redis.asyncio.ConnectionPool.from_url(
                redis_url, socket_timeout=0.5, socket_connect_timeout=0.5
            )
            storage = RedisStorage(
                "async+" + redis_url, implementation="redispy", connection_pool=self._pool
            )
            self.shared = MovingWindowRateLimiter(storage)
            self.shared_windows = RedisWindows(redis.asyncio.Redis(connection_pool=self._pool))
        self._fallback_until = 0.0
        self._on_fallback = on_fallback
        self._on_rejected = on_rejected

    async def count(self, budget: str, items: Sequence[RateLimitItem], key: str) -> Budget:
        """Count one request against `items` for `key`; raises RateLimited over any of them."""
        if budget == "default":
            hits = await self._hit_windows(items, key)
        else:
            hits = [await self._hit(item, key) for item in items]
        tightest: Budget | None = None
        for item, (allowed, resets_at, remaining) in zip(items, hits, strict=True):
            reset_in = max(1, math.ceil(resets_at - time.time()))
            counted = Budget(item.amount, remaining, reset_in)
            if tightest is None or counted.remaining < tightest.remaining:
                tightest = counted
            if not allowed:
                self._on_rejected(budget)
                raise RateLimited(
                    f"rate limit of {item.amount} per {item.multiples} {item.GRANULARITY.name} "
                    f"exceeded; retry in {reset_in} seconds",
                    headers={"Retry-After": str(reset_in), **counted.headers()},
                )
        assert tightest is not None  # noqa: S101  # callers pass at least one item
        return tightest

    async def slow_down(self, items: Sequence[RateLimitItem], key: str) -> None:
        """Count one request against `items` for `key`; over any of them, wait a while."""
        for item in items:
            allowed, _, _ = await self._hit(item, key)
            if not allowed:
                self._on_slowed()
                await asyncio.sleep(self.slowdown_seconds)
                return

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.disconnect()

    async def _hit_windows(
        self, items: Sequence[RateLimitItem], key: str
    ) -> list[tuple[bool, float, int]]:
        windows = self.shared_windows if self._shared_usable() else self.local_windows
        now = time.time()
        try:
            counts = await windows.hit(key, items, now)
        except Exception as error:
            if windows is self.local_windows:
                raise
            self._fall_back(error)
            return await self._hit_windows(items, key)
        return [
            (count <= item.amount, reset_at(item, now), max(0, item.amount - count))
            for item, count in zip(items, counts, strict=True)
        ]

    def _shared_usable(self) -> bool:
        return time.monotonic() >= self._fallback_until

    def _fall_back(self, error: Exception) -> None:
        log.warning(
            "rate limit store unavailable (%s); per-process limits for %ds",
            type(error).__name__,
            FALLBACK_SECONDS,
        )
        self._on_fallback()
        self._fallback_until = time.monotonic() + FALLBACK_SECONDS

    async def _hit(self, item: RateLimitItem, key: str) -> tuple[bool, float, int]:
        limiter = self.shared if self._shared_usable() else self.local
        try:
            allowed = await limiter.hit(item, key)
            stats = await limiter.get_window_stats(item, key)
        except Exception as error:
            if limiter is self.local:
                raise
            self._fall_back(error)
            return await self._hit(item, key)
        return allowed, stats.reset_time, stats.remaining


class RateLimitMiddleware:
    """Applies each operation's budget (after bearerAuth, so the user is known).

    - `auth` (register, login, refresh, password change, account deletion): RATE_LIMIT_AUTH per
      client IP.
    - Password attempts at one account from one client: RATE_LIMIT_AUTH_EMAIL per client IP and
      email named in the body (register and login, each on budgets of its own), or per login
      session of the token (password change, account deletion). A thief with a stolen token
      guesses at that rate at most, and the owner, from another address or a new login, is not
      held up.
    - Logins of one email from all clients together: beyond RATE_LIMIT_LOGIN_SLOWDOWN, each waits
      LOGIN_SLOWDOWN_SECONDS before its password is checked. It slows a guesser spread over many
      addresses and never refuses, so nobody can lock an account's owner out (OWASP
      Authentication Cheat Sheet, "Account Lockout").
    - `default`: RATE_LIMIT_DEFAULT per user on authenticated operations (the vouched `user`, so
      nobody can spend someone else's budget), per client IP on anonymous ones. Every request
      counts against it, so it is counted in fixed windows (ratelimit_windows.py), cheaply.
    - `none`: probes and docs.
    """

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        policy = context.policy(scope) if scope["type"] == "http" else None
        if policy is None or policy.rate_limit == "none":
            await self.app(scope, receive, send)
            return
        counts: list[tuple[str, Sequence[RateLimitItem], str]] = []
        client = client_ip(scope)
        caller = context.caller(scope)
        slowed_email = None
        if policy.rate_limit == "auth":
            counts.append(("auth", self.limiter.auth, f"auth:{client}"))
            if policy.per_email:
                receive, email = await _email_in_body(receive)
                if email:
                    operation = context.operation_id(scope)
                    key = f"{operation}:{client}:{email}"
                    counts.append(("auth_email", self.limiter.auth_email, key))
                    slowed_email = email if operation == "login" else None
            if policy.per_session and caller is not None:
                session = caller.claims.get("sid") or caller.claims.get("jti")
                key = f"password:{caller.user}:{session}"
                counts.append(("auth_email", self.limiter.auth_email, key))
        elif self.limiter.default:
            key = f"user:{caller.user}" if caller is not None else f"ip:{client}"
            counts.append(("default", self.limiter.default, key))
        budgets = [
            await self.limiter.count(budget, items, key) for budget, items, key in counts if items
        ]
        if slowed_email is not None and self.limiter.login_slowdown:
            await self.limiter.slow_down(self.limiter.login_slowdown, f"login:{slowed_email}")
        if not budgets:
            await self.app(scope, receive, send)
            return
        # For the response, error or not: RequestMiddleware (outermost) writes the headers.
        context.of(scope).budget = min(budgets, key=lambda b: b.remaining)
        await self.app(scope, receive, send)


def client_ip(scope: Scope) -> str:
    """The client's address (with TRUSTED_PROXIES, the one X-Forwarded-For names)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def _email_in_body(receive: Receive) -> tuple[Receive, str | None]:
    """The normalized `email` of a JSON body, and a receive that replays the body."""
    messages: list[Message] = []
    more = True
    while more:
        message = await receive()
        messages.append(message)
        more = message.get("type") == "http.request" and message.get("more_body", False)
    body = b"".join(m.get("body", b"") for m in messages)
    email: Any = None
    # A malformed body is validation's to answer; only the IP budget counts it.
    with contextlib.suppress(ValueError, AttributeError, RecursionError):
        email = json.loads(body).get("email")

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return replay, normalize_email(email) if isinstance(email, str) else None
