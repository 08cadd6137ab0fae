"""Several `taskapi serve` replicas on one machine, sharing one PostgreSQL database and one Redis.

tests/test_scaleout.py starts them. Each replica is one process (`--workers 1`, as each
Kubernetes pod runs), so SIGKILL takes the whole replica down at once, as an OOM kill takes a
pod. Each listens on a loopback port of its own and has its own metrics port and multiprocess
directory, as separate pods do; all share DATABASE_URL, REDIS_URL and JWT_SECRET.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from taskapi.config import env_names
from taskapi.ops.metrics import MULTIPROC_ENV
from tests.client_threads import ClientThreads
from tests.conftest import GENEROUS_LIMIT, JWT_SECRET
from tests.serving import ServerDidNotStart, free_port, wait_until_serving

# A Redis database number of these tests' own (tests/test_rate_limits.py uses 15); flushed.
REDIS_URL = "redis://127.0.0.1:6379/14"
START_TIMEOUT = 30.0


def require_redis() -> None:
    """Skip without a Redis at 127.0.0.1:6379; under CI=true, fail instead."""
    with socket.socket() as s:
        s.settimeout(1)
        if s.connect_ex(("127.0.0.1", 6379)) == 0:
            return
    message = "no Redis at 127.0.0.1:6379: the replicas share their rate limits through it"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true requires it)")
    pytest.skip(message)


def flush_redis() -> None:
    import redis

    with redis.Redis.from_url(REDIS_URL) as client:
        client.flushdb()


def taskapi_command() -> list[str]:
    """The `taskapi` command as installed, next to this interpreter."""
    script = Path(sys.executable).with_name("taskapi")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "taskapi"]


def environment(database_url: str, **settings: str) -> dict[str, str]:
    """What every replica (and `taskapi db upgrade`) runs with; `settings` override."""
    # Nothing of TaskAPI's own settings leaks in from the environment the tests run in.
    inherited = {k: v for k, v in os.environ.items() if k not in env_names() and k != MULTIPROC_ENV}
    return {
        **inherited,
        # Development, so that bcrypt can cost 4 (production refuses a cost under 12); the
        # same secret on every replica, as production requires.
        "TASKAPI_ENV": "development",
        "JWT_SECRET": JWT_SECRET,
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "BCRYPT_ROUNDS": "4",
        "VALIDATE_RESPONSES": "true",
        "LOG_LEVEL": "warning",
        "RATE_LIMIT_AUTH": GENEROUS_LIMIT,
        "RATE_LIMIT_AUTH_EMAIL": GENEROUS_LIMIT,
        "RATE_LIMIT_LOGIN_SLOWDOWN": GENEROUS_LIMIT,
        "RATE_LIMIT_DEFAULT": GENEROUS_LIMIT,
        # The Kubernetes ConfigMap's pool (deploy/k8s/base/config.env).
        "DB_MAX_OPEN_CONNS": "10",
        "DB_MAX_IDLE_CONNS": "10",
        **settings,
    }


class Replica:
    """One `taskapi serve --workers 1` process on a loopback port."""

    def __init__(self, name: str, workdir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.metrics_port = free_port()
        self.env = {
            **env,
            "METRICS_PORT": str(self.metrics_port),
            MULTIPROC_ENV: str(self.workdir / "metrics"),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._log = (self.workdir / "server.log").open("a")
        command = [*taskapi_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.process = subprocess.Popen(
            [*command, "--workers", "1"],
            cwd=self.workdir,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self) -> None:
        """Until /ready answers 200 (PostgreSQL and Redis reachable)."""
        assert self.process is not None
        log = self.workdir / "server.log"
        try:
            wait_until_serving(self.url, self.process, log, timeout=START_TIMEOUT, path="/ready")
        except ServerDidNotStart:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL: no drain, no shutdown hooks; returns once the process is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self._reap()

    def stop(self) -> None:
        """SIGTERM, the way an orchestrator stops it (development: no drain)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._reap()

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def _reap(self) -> None:
        if self.process is not None:
            self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


class Fleet:
    """`size` replicas on one database, each with an HTTP client of its own."""

    def __init__(self, database_url: str, workdir: Path, size: int = 3, **settings: str) -> None:
        self.env = environment(database_url, **settings)
        self.replicas = [Replica(f"replica-{i}", workdir, self.env) for i in range(size)]
        self.clients: list[httpx.Client] = []

    def __enter__(self) -> Fleet:
        try:
            for replica in self.replicas:  # all start at once; then wait for each
                replica.start()
            for replica in self.replicas:
                replica.wait_ready()
        except BaseException:
            self.__exit__()
            raise
        self.clients = [self._client(r) for r in self.replicas]
        return self

    def __exit__(self, *_: object) -> None:
        for client in self.clients:
            client.close()
        for replica in self.replicas:
            replica.stop()

    def __len__(self) -> int:
        return len(self.replicas)

    def restart(self, index: int) -> None:
        """A replacement for replica `index`, on the same port (as a new pod behind a Service)."""
        replica = self.replicas[index]
        replica.kill()
        replica.start()
        replica.wait_ready()
        self.clients[index].close()
        self.clients[index] = self._client(replica)

    @staticmethod
    def _client(replica: Replica) -> httpx.Client:
        return httpx.Client(base_url=replica.url, timeout=10)


@dataclass(frozen=True)
class Outcome:
    """One request of a load: where it went, when, and its answer (None: a socket failure)."""

    replica: int
    started: float
    ended: float
    status: int | None
    body: Any = None
    error: str = ""


class Load(ClientThreads):
    """Client threads sending `request(client, thread, n)` round-robin over the replicas.

    Thread `k` sends its `n`th request to replica `(k + n) % len(fleet)`, pausing `pause`
    seconds between requests (the machine's cores are shared: the load stays small). A
    request that fails at the socket is recorded with no status.
    """

    def __init__(
        self,
        fleet: Fleet,
        request: Callable[[httpx.Client, int, int], httpx.Response],
        *,
        threads: int = 3,
        pause: float = 0.005,
    ) -> None:
        super().__init__(threads=threads, pause=pause)
        self.urls = [r.url for r in fleet.replicas]
        self.request = request
        self.outcomes: list[Outcome] = []

    def wait_for(self, condition: Callable[[list[Outcome]], bool], timeout: float = 15) -> None:
        """Until `condition(outcomes so far)` holds; fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not condition(list(self.outcomes)):
            assert not self.failures, self.failures
            assert time.monotonic() < deadline, f"load condition not met in {timeout}s"
            time.sleep(0.02)

    def _run(self, k: int) -> None:
        clients = [httpx.Client(base_url=url, timeout=10) for url in self.urls]
        try:
            n = 0
            while not self.stopped:
                index = (k + n) % len(clients)
                started = time.monotonic()
                try:
                    response = self.request(clients[index], k, n)
                except httpx.TransportError as error:
                    outcome = Outcome(index, started, time.monotonic(), None, None, repr(error))
                else:
                    body = response.json() if response.content else None
                    outcome = Outcome(index, started, time.monotonic(), response.status_code, body)
                self.outcomes.append(outcome)
                n += 1
                self.rest()
        except BaseException as error:  # reported by __exit__ and wait_for
            self.failures.append(error)
        finally:
            for client in clients:
                client.close()
