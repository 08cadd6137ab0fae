"""Refused tokens count against the client IP's budget.

A request whose token is refused never reaches RateLimitMiddleware, which runs after the spec's
security so that it knows the caller. Without this, a client could present made-up tokens as
fast as it can send them, each costing a database read. Each refused token counts against
RATE_LIMIT_DEFAULT for the client's IP (the budget its anonymous requests spend too). Over it,
the 429 comes with `Retry-After`, and until then this process refuses that IP's requests that
carry a token before looking it up; its other requests go on.
"""

from __future__ import annotations

import math
import time

from connexion.exceptions import OAuthProblem
from starlette.types import ASGIApp, Receive, Scope, Send

from taskapi.web.middleware.ratelimit import RateLimited, RateLimiter, client_ip

# Past this many refused addresses, the ones whose wait is over are forgotten.
PRUNE_ABOVE = 10_000


class AuthFailureLimitMiddleware:
    """Counts each refused token against its client IP's default budget (outside security)."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter
        self._refused_until: dict[str, float] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.limiter.default or not _presents_a_token(scope):
            await self.app(scope, receive, send)
            return
        client = client_ip(scope)
        self._refuse_while_over(client)
        try:
            await self.app(scope, receive, send)
        except OAuthProblem:
            await self._count_refusal(client)
            raise

    def _refuse_while_over(self, client: str) -> None:
        until = self._refused_until.get(client)
        if until is None:
            return
        wait = until - time.time()
        if wait <= 0:
            del self._refused_until[client]
            return
        raise RateLimited(
            "too many requests with invalid tokens from this address; retry in "
            f"{math.ceil(wait)} seconds",
            headers={"Retry-After": str(math.ceil(wait))},
        )

    async def _count_refusal(self, client: str) -> None:
        try:
            await self.limiter.count("default", self.limiter.default, f"ip:{client}")
        except RateLimited as over:
            if len(self._refused_until) > PRUNE_ABOVE:
                now = time.time()
                self._refused_until = {
                    ip: until for ip, until in self._refused_until.items() if until > now
                }
            self._refused_until[client] = time.time() + int(over.headers["Retry-After"])
            raise


def _presents_a_token(scope: Scope) -> bool:
    return any(name == b"authorization" for name, _ in scope["headers"])
