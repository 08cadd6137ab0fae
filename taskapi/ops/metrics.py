"""Prometheus metrics, right across uvicorn's worker processes.

With PROMETHEUS_MULTIPROC_DIR set (`taskapi serve` sets it, to a fresh directory, before any
worker starts), prometheus-client keeps each process's values in files there, and the
`/metrics` listener on METRICS_PORT (served by `taskapi serve` itself, not by the workers and
not on the API's port) adds them up. A worker that exits removes its live gauges. Without
that variable (tests, embedding) the values stay in the app's own registry.

Labels carry operationIds, statuses, pool and budget names: never user data.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from wsgiref import simple_server
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    make_wsgi_app,
    multiprocess,
)
from prometheus_client.exposition import ThreadingWSGIServer

if TYPE_CHECKING:
    from sqlalchemy import Engine

from taskapi.ops import metrics_directory
from taskapi.ops.metrics_directory import MULTIPROC_ENV

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The metrics one app records."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        gauges = {"registry": self.registry, "multiprocess_mode": "livesum"}
        self.requests = Counter(
            "taskapi_requests",
            "Requests answered, by operationId and status",
            ["operation", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "taskapi_request_duration_seconds",
            "Time from the request's arrival to its response, by operationId and status",
            ["operation", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.pool_in_use = Gauge(
            "taskapi_db_connections_in_use",
            "Database connections checked out of the pool",
            ["pool"],
            **gauges,  # type: ignore[arg-type]
        )
        # Beside the connections in use: a pool is exhausted when the two meet.
        self.pool_limit = Gauge(
            "taskapi_db_connections_max",
            "The most connections the pool opens",
            ["pool"],
            **gauges,  # type: ignore[arg-type]
        )
        self.db_reads = Counter(
            "taskapi_db_reads",
            "Connections lent for reads with a standby configured, by the server that served them",
            ["server"],
            registry=self.registry,
        )
        self.bcrypt_busy = Gauge(
            "taskapi_bcrypt_busy",
            "Requests holding a bcrypt slot",
            **gauges,  # type: ignore[arg-type]
        )
        self.bcrypt_waiting = Gauge(
            "taskapi_bcrypt_queue_depth",
            "Requests waiting for a bcrypt slot",
            **gauges,  # type: ignore[arg-type]
        )
        self.rate_limited = Counter(
            "taskapi_rate_limited",
            "Requests refused with a 429, by budget",
            ["budget"],
            registry=self.registry,
        )
        self.rate_limit_fallbacks = Counter(
            "taskapi_rate_limit_store_fallbacks",
            "Times the rate limiter fell back to per-process budgets as its store failed",
            registry=self.registry,
        )
        self.logins_slowed = Counter(
            "taskapi_logins_slowed",
            "Logins held back because their email was over RATE_LIMIT_LOGIN_SLOWDOWN",
            registry=self.registry,
        )
        self.login_failures = Counter(
            "taskapi_login_failures",
            "Logins refused for wrong credentials",
            registry=self.registry,
        )
        self.overloaded = Counter(
            "taskapi_bcrypt_refused",
            "Requests refused with a 503 because no bcrypt slot freed up",
            registry=self.registry,
        )

    def watch_pool(self, engine: Engine, pool: str, *, limit: int) -> None:
        """Track how many of `engine`'s `limit` connections are in use."""
        from sqlalchemy import event  # a worker's; `taskapi serve`'s supervisor never needs it

        self.pool_limit.labels(pool).set(limit)
        gauge = self.pool_in_use.labels(pool)
        event.listen(engine, "checkout", lambda *_: gauge.inc())
        event.listen(engine, "checkin", lambda *_: gauge.dec())

    def bcrypt(self, busy: int, waiting: int) -> None:
        self.bcrypt_busy.set(busy)
        self.bcrypt_waiting.set(waiting)

    def render(self) -> bytes:
        """This app's metrics in the Prometheus text format (for tests and embedding)."""
        return generate_latest(self.registry)


class _ServerHandler(simple_server.ServerHandler):
    server_software = ""  # wsgiref would send `Server: WSGIServer/0.2 CPython/3.11.7`


class _RequestHandler(simple_server.WSGIRequestHandler):
    """wsgiref's request handler, silent, and naming neither its software nor its version."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_response(self, code: int, message: str | None = None) -> None:
        # Only wsgiref's own errors (a malformed request) come here.
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def handle(self) -> None:
        # WSGIRequestHandler.handle, with the ServerHandler above.
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.send_error(414)
            return
        if not self.parse_request():
            return
        handler = _ServerHandler(
            self.rfile,
            self.wfile,  # type: ignore[arg-type]  # typeshed: BufferedIOBase, in fact a stream
            self.get_stderr(),
            self.get_environ(),
            multithread=False,
        )
        handler.request_handler = self  # type: ignore[attr-defined]
        handler.run(self.server.get_app())  # type: ignore[attr-defined]


def serve_metrics(host: str, port: int, registry: CollectorRegistry) -> WSGIServer:
    """A /metrics listener on a thread of this process: prometheus_client's exposition, on a
    wsgiref server that does not say what it is."""

    class Server(ThreadingWSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    httpd = simple_server.make_server(
        host, port, make_wsgi_app(registry), Server, handler_class=_RequestHandler
    )
    threading.Thread(target=httpd.serve_forever, name="metrics", daemon=True).start()
    return httpd


def multiprocess_registry() -> CollectorRegistry:
    """A registry that adds up every process's values from PROMETHEUS_MULTIPROC_DIR."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


@contextmanager
def worker_process() -> Iterator[None]:
    """Around a worker's life: on exit its live gauges leave the shared directory, and the
    directory goes too if this process made it (one worker)."""
    try:
        yield
    finally:
        if os.environ.get(MULTIPROC_ENV):
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
            metrics_directory.release()
