"""bcrypt admission: a process checks at most as many passwords at once as it has cores for.

A bcrypt check holds a core for a long time (docs/performance.md, "Why the code is shaped this
way"), so a burst of logins beyond what the cores can hash only grows a queue: every login gets
slower, and so does everything else the process serves. Operations whose policy says `bcrypt`
(taskapi/web/policies.py) take a slot here before they start; up to BCRYPT_QUEUE more wait for
one, on the event loop (costing no thread) for at most BCRYPT_MAX_WAIT seconds; the rest are
answered 503 with Retry-After at once, before any hashing.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from taskapi.domain.errors import DomainError
from taskapi.web import context

RETRY_AFTER_SECONDS = "1"


class Overloaded(DomainError):
    code = "overloaded"
    message = "the server is busy checking passwords; retry shortly"

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": RETRY_AFTER_SECONDS})


def available_cores() -> int:
    """CPU cores this process may use: its affinity, capped by a cgroup CPU quota if any."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cores = min(cores, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return cores


def default_slots(workers: int) -> int:
    """Slots per process when BCRYPT_CONCURRENCY is 0: the cores shared among the workers."""
    return max(1, available_cores() // max(1, workers))


class Admission:
    """`slots` at once, `queue` more waiting up to `max_wait` seconds, the rest refused.

    Runs on the event loop only; a freed slot is handed straight to the longest waiter.
    """

    def __init__(
        self,
        slots: int,
        queue: int,
        max_wait: float,
        on_change: Callable[[int, int], None] = lambda busy, waiting: None,
        on_refused: Callable[[], None] = lambda: None,
        wait_span: Callable[[], AbstractContextManager[Any]] = nullcontext,
    ) -> None:
        self.slots = slots
        self.queue = queue
        self.max_wait = max_wait
        self.busy = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._on_change = on_change
        self._on_refused = on_refused
        # Around each wait for a slot, however short: a span when traces are on.
        self.wait_span = wait_span

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> None:
        """Take a slot, waiting for one if the queue has room. Raises Overloaded."""
        if self.busy < self.slots:
            self.busy += 1
            self._on_change(self.busy, self.waiting)
            return
        if self.waiting >= self.queue:
            self._on_refused()
            raise Overloaded()
        handed = asyncio.get_running_loop().create_future()
        self._waiters.append(handed)
        self._on_change(self.busy, self.waiting)
        try:
            await asyncio.wait_for(handed, self.max_wait)
        except TimeoutError:
            self._on_refused()
            raise Overloaded() from None
        finally:
            if handed in self._waiters:
                self._waiters.remove(handed)
            self._on_change(self.busy, self.waiting)

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on; `busy` stays as it is
                return
        self.busy -= 1
        self._on_change(self.busy, self.waiting)


class AdmissionMiddleware:
    """Holds a bcrypt slot around each request of an operation that checks a password."""

    def __init__(self, app: ASGIApp, admission: Admission) -> None:
        self.app = app
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        policy = context.policy(scope) if scope["type"] == "http" else None
        if policy is None or not policy.bcrypt:
            await self.app(scope, receive, send)
            return
        with self.admission.wait_span():
            await self.admission.acquire()
        try:
            await self.app(scope, receive, send)
        finally:
            self.admission.release()
