"""The reliability suite's tools: `taskapi serve` as production runs it, load, /proc.

`serving()` starts `taskapi serve --workers 2` in a session of its own (tests/bench/target.py)
with production settings unless a test says otherwise, and waits for /ready. `Traffic` runs
client threads that send requests over and over and keeps every answer.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from taskapi.config import env_names
from taskapi.ops.metrics import MULTIPROC_ENV
from tests.bench import target
from tests.client_threads import ClientThreads
from tests.conftest import GENEROUS_LIMIT, JWT_SECRET
from tests.serving import free_port, wait_until_serving

TASKAPI = Path(sys.executable).with_name("taskapi")
READY_TIMEOUT = 30.0
REQUEST_TIMEOUT = 15.0


def server_env(database_url: str, **settings: str) -> dict[str, str]:
    """Production settings on loopback, with the rate limits out of the way; `settings` win.

    Production means bcrypt cost 12, JSON logs, no response validation, the bcrypt slots and
    queue at their defaults. The limits would stop a flood from one address long before
    bcrypt does; the suite measures what is left when the flood comes from many.
    """
    inherited = {k: v for k, v in os.environ.items() if k not in env_names() and k != MULTIPROC_ENV}
    return {
        **inherited,
        "TASKAPI_ENV": "production",
        "JWT_SECRET": JWT_SECRET,
        "DATABASE_URL": database_url,
        "BCRYPT_ROUNDS": "12",
        "METRICS_PORT": str(free_port()),
        "LOG_LEVEL": "warning",
        "RATE_LIMIT_AUTH": GENEROUS_LIMIT,
        "RATE_LIMIT_AUTH_EMAIL": GENEROUS_LIMIT,
        "RATE_LIMIT_LOGIN_SLOWDOWN": GENEROUS_LIMIT,
        "RATE_LIMIT_DEFAULT": GENEROUS_LIMIT,
        # Stopping a server at the end of a test needs no drain; the shutdown test sets one.
        "SHUTDOWN_DRAIN_SECONDS": "0",
        **settings,
    }


# Development, only so that bcrypt may cost 4 where logins are setup, not what is measured;
# everything else as in production.
CHEAP_LOGINS = {
    "TASKAPI_ENV": "development",
    "BCRYPT_ROUNDS": "4",
    "LOG_FORMAT": "json",
    "VALIDATE_RESPONSES": "false",
}


@dataclass
class Server(target.Target):
    """A running `taskapi serve`, and where its /metrics are."""

    metrics_url: str = ""


@contextmanager
def serving(database_url: str, workdir: Path, **settings: str) -> Iterator[Server]:
    """`taskapi serve --workers 2` on `database_url`, once /ready answers 200."""
    port = free_port()
    command = f"exec {shlex.quote(str(TASKAPI))} serve --host 127.0.0.1 --port {port} --workers 2"
    env = server_env(database_url, **settings)
    log = workdir / "server.log"
    with target.running(command, env=env, cwd=workdir, log=log, port=port) as running:
        metrics = f"http://127.0.0.1:{env['METRICS_PORT']}/metrics"
        server = Server(running.process, running.base_url, running.log, metrics)
        wait_until_serving(
            server.base_url, server.process, server.log, timeout=READY_TIMEOUT, path="/ready"
        )
        yield server


def worker_pids(server: target.Target) -> list[int]:
    """The uvicorn workers: the serve process's children that multiprocessing spawned."""
    pids = []
    for stat in target.session_processes(server.session):
        try:
            status = Path(f"/proc/{stat.pid}/status").read_text()
            cmdline = Path(f"/proc/{stat.pid}/cmdline").read_bytes()
        except OSError:
            continue
        parent = int(next(line for line in status.splitlines() if line.startswith("PPid:"))[5:])
        if parent == server.process.pid and b"spawn_main" in cmdline:
            pids.append(stat.pid)
    return sorted(pids)


def rss_mb(pid: int) -> float:
    """VmRSS of a process, in MiB (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    line = next((line for line in status.splitlines() if line.startswith("VmRSS:")), "")
    return int(line.split()[1]) / 1024 if line else 0.0


@dataclass(frozen=True)
class Exchange:
    """One request of a load: its method and path, when, and its answer (status None: none came)."""

    what: str
    started: float
    ended: float
    status: int | None
    retry_after: str | None = None
    content_type: str | None = None
    body: Any = None
    error: str = ""

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def code(self) -> str | None:
        """The problem's code, for a problem answer."""
        return self.body.get("code") if isinstance(self.body, dict) else None


# What a load's client sends next; it may raise httpx.TransportError.
Request = Callable[[httpx.Client, int, int], httpx.Response]


class Traffic(ClientThreads):
    """Client threads, each calling `request(client, thread, n)` over and over until stopped.

    Every answer is kept as an Exchange, in the order they came; a request that fails at the
    socket is one with no status. An exception other than httpx's fails the test at exit.
    """

    def __init__(
        self, base_url: str, request: Request, *, threads: int, pause: float = 0.0
    ) -> None:
        super().__init__(threads=threads, pause=pause)
        self.base_url = base_url
        self.request = request
        self.exchanges: list[Exchange] = []

    def _run(self, k: int) -> None:
        with httpx.Client(base_url=self.base_url, timeout=REQUEST_TIMEOUT) as http:
            n = 0
            while not self.stopped:
                started = time.monotonic()
                try:
                    response = self.request(http, k, n)
                except httpx.TransportError as error:
                    what = _what(error.request)
                    self.exchanges.append(
                        Exchange(what, started, time.monotonic(), None, error=repr(error))
                    )
                except BaseException as error:
                    self.failures.append(error)
                    return
                else:
                    self.exchanges.append(_exchange(started, response))
                n += 1
                self.rest()


def _what(request: httpx.Request) -> str:
    return f"{request.method} {request.url.path}"


def _exchange(started: float, response: httpx.Response) -> Exchange:
    content_type = response.headers.get("content-type")
    body = response.json() if content_type and "json" in content_type else None
    return Exchange(
        _what(response.request),
        started,
        time.monotonic(),
        response.status_code,
        response.headers.get("retry-after"),
        content_type,
        body,
    )
