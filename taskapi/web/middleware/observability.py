"""Around every request: its id, its access log line and its metrics.

The outermost middleware, so it sees every response, Connexion's bare 500 included:
- X-Request-ID: the client's when it is well-formed (so a caller can follow a request
  through its own logs and ours), else a new one; echoed on the response and set for every
  log line of the request (taskapi/ops/logs.py).
- One access line per request on `taskapi.access`: method, the operation's path template
  (never the raw path, which holds ids), operationId, status, duration, user id, request id.
- taskapi_requests and taskapi_request_duration_seconds by operationId and status.
- The RateLimit-* headers of the request's tightest budget (ratelimit.py, beside this), on
  error responses too, which Connexion's exception middleware writes outside the limiter.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Mapping

from prometheus_client.metrics import Counter, Histogram
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskapi.ops.logs import REQUEST_ID
from taskapi.web import context
from taskapi.web.context import Services

access = logging.getLogger("taskapi.access")

CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
UNROUTED = "none"


class RequestMiddleware:
    """Request ids, the access log and the request metrics."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        services: Services,
        access_log: bool,
        templates: Mapping[str, str],
    ) -> None:
        self.app = app
        self.services = services
        self.metrics = services.metrics
        self.access_log = access_log
        self.templates = templates
        # The metric children by (operationId, status): prometheus_client's labels() takes a
        # lock and checks its arguments on every call.
        self._children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        # An id must be unique, not secret: 128 random bits, without a system call for each.
        request_id = (
            given if CLIENT_REQUEST_ID.fullmatch(given) else f"{random.getrandbits(128):032x}"
        )
        token = REQUEST_ID.set(request_id)
        request = context.begin(scope, self.services)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers.append("X-Request-ID", request_id)  # nothing inside sets it
                if request.budget is not None:
                    headers.update(request.budget.headers())
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            operation = context.operation_id(scope) or UNROUTED
            requests, latency = self._metrics_of(operation, str(status))
            requests.inc()
            latency.observe(elapsed)
            if self.access_log:
                self._log(scope, operation, status, elapsed)
            REQUEST_ID.reset(token)

    def _metrics_of(self, operation: str, status: str) -> tuple[Counter, Histogram]:
        children = self._children.get((operation, status))
        if children is None:
            children = (
                self.metrics.requests.labels(operation, status),
                self.metrics.latency.labels(operation, status),
            )
            self._children[(operation, status)] = children
        return children

    def _log(self, scope: Scope, operation: str, status: int, elapsed: float) -> None:
        path = self.templates.get(operation, "-")
        caller = context.caller(scope)
        user = caller.user if caller is not None else None
        client = scope.get("client")
        access.info(
            "%s %s %d %.1fms",
            scope["method"],
            path,
            status,
            elapsed * 1000,
            extra={
                "method": scope["method"],
                "path": path,
                "operation": operation,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
                "user_id": user,
                "client": client[0] if client else None,
            },
        )
