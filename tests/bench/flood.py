"""`login-flood`: what other requests feel while logins arrive at a fixed rate.

Every login costs a bcrypt check (cost 12: a few hundred milliseconds of CPU), right password
or wrong, so a stream of them can starve the rest of the API. Logins are sent open-loop, on a
clock and each on a thread of its own, as independent clients would send them: a slow answer
does not slow the stream down. Meanwhile one client times GET /health and GET /api/v1/tasks in
turn, first without the flood (quiet), then during it.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import httpx

from tests.bench import client
from tests.bench.report import latency_summary

LOGIN_TIMEOUT = 10.0
PROBE_TIMEOUT = 10.0
# Enough threads that logins queue in the server, not in this client.
MAX_LOGINS_IN_FLIGHT = 256
STATUS_CLASSES = ("200", "401", "429", "503", "other 5xx", "other", "no answer")


def status_class(status: int | None) -> str:
    if status is None:
        return "no answer"
    if str(status) in STATUS_CLASSES:
        return str(status)
    return "other 5xx" if 500 <= status < 600 else "other"


class Answer(NamedTuple):
    """One login's answer: its status (None: none came), how long it took, its problem code."""

    status: int | None
    elapsed_ms: float
    code: str | None = None


class Probe:
    """Times GET /health and a task list page, one request at a time, in turn."""

    PATHS = ("/health", "/api/v1/tasks?limit=20")

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {token}"}

    def run(self, seconds: float) -> dict[str, dict[str, Any]]:
        timings: dict[str, list[float]] = {path: [] for path in self.PATHS}
        errors = dict.fromkeys(self.PATHS, 0)
        deadline = time.monotonic() + seconds
        with httpx.Client(base_url=self.base_url, timeout=PROBE_TIMEOUT) as api:
            while time.monotonic() < deadline:
                for path in self.PATHS:
                    elapsed, ok = self._time(api, path)
                    timings[path].append(elapsed)
                    errors[path] += not ok
        return {
            path: {**latency_summary(timings[path]), "errors": errors[path]} for path in self.PATHS
        }

    def _time(self, api: httpx.Client, path: str) -> tuple[float, bool]:
        started = time.perf_counter()
        try:
            ok = api.get(path, headers=self.headers).status_code == 200
        except httpx.TransportError:
            ok = False
        return (time.perf_counter() - started) * 1000, ok


class LoginFlood:
    """`rate` logins a second for `seconds` from a background thread, half of them wrong."""

    def __init__(
        self, base_url: str, account: client.Account, *, rate: float, seconds: float
    ) -> None:
        self.account = account
        self.rate = rate
        self.total = round(rate * seconds)
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        limits = httpx.Limits(max_connections=MAX_LOGINS_IN_FLIGHT)
        self._api = httpx.Client(base_url=base_url, timeout=LOGIN_TIMEOUT, limits=limits)
        self._pool = ThreadPoolExecutor(MAX_LOGINS_IN_FLIGHT)
        self._thread = threading.Thread(target=self._send_on_schedule, daemon=True)
        self.sent = 0

    def __enter__(self) -> LoginFlood:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._pool.shutdown(wait=True)  # the logins in flight get their answers
        self._api.close()

    def _send_on_schedule(self) -> None:
        started = time.monotonic()
        while self.sent < self.total:
            # The n-th login leaves at n / rate seconds, however long earlier ones take.
            delay = started + self.sent / self.rate - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            self._pool.submit(self._login, self.sent % 2 == 0)
            self.sent += 1

    def _login(self, right_password: bool) -> None:
        password = self.account.password if right_password else "wrong-password-123"
        body = {"email": self.account.email, "password": password}
        started = time.perf_counter()
        status: int | None = None
        code: str | None = None
        try:
            response = self._api.post("/api/v1/auth/login", json=body)
            status = response.status_code
            if response.headers.get("content-type") == "application/problem+json":
                code = response.json().get("code")
        except httpx.TransportError:
            pass
        with self._lock:
            self.answers.append(Answer(status, (time.perf_counter() - started) * 1000, code))

    def summary(self) -> dict[str, Any]:
        by_status = dict.fromkeys(STATUS_CLASSES, 0)
        for answer in self.answers:
            by_status[status_class(answer.status)] += 1
        return {
            "sent": self.sent,
            "by_status": by_status,
            "latency": latency_summary([answer.elapsed_ms for answer in self.answers]),
        }


def run(base_url: str, account: client.Account, *, rate: float, seconds: float) -> dict[str, Any]:
    """Probe quietly, then under the flood; the probes' latencies and the logins' answers."""
    with client.api_client(base_url) as api:
        token = client.login(api, account)
    probe = Probe(base_url, token)
    quiet = probe.run(seconds)
    with LoginFlood(base_url, account, rate=rate, seconds=seconds) as flood:
        during = probe.run(seconds)
    return {
        "rate_per_s": rate,
        "seconds": seconds,
        "probes": {"quiet": quiet, "flood": during},
        "logins": flood.summary(),
    }
