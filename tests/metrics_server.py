"""`taskapi serve` on SQLite with a /metrics listener, as the tests that read what it exports
(test_metrics_serving, test_prometheus, test_tracing) start it: in its own session, its log
in the test's directory, stopped with SIGTERM at the end."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import JWT_SECRET
from tests.serving import free_port, wait_until_serving


@contextmanager
def served(
    workdir: Path, workers: int, **settings: str
) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    """`taskapi serve --workers N` on SQLite, with a /metrics listener and `settings` in its
    environment; (API URL, metrics URL, the process)."""
    port, metrics_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        # Production keeps bcrypt's cost at 12 or more: one registration's worth.
        **({} if settings.get("TASKAPI_ENV") == "production" else {"BCRYPT_ROUNDS": "4"}),
        "LOG_LEVEL": "warning",
        # No load balancer here to wait for.
        "SHUTDOWN_DRAIN_SECONDS": "0",
        **settings,
        "DATABASE_URL": f"sqlite:///{workdir / 'taskapi.db'}",
        "JWT_SECRET": JWT_SECRET,
        "METRICS_PORT": str(metrics_port),
        # Where a server makes its multiprocess directory: this test's, to find it again.
        "TMPDIR": str(workdir),
    }
    log = workdir / "server.log"
    with log.open("a") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "taskapi",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base, process, log, timeout=60)
        yield base, f"http://127.0.0.1:{metrics_port}/metrics", process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


def samples(metrics_url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(metrics_url, timeout=10).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
