"""uvicorn, subclassed: bounds on what a client holds, the supervisor's socket, the drain.

1. `BoundedHttpToolsProtocol`: uvicorn's httptools protocol buffers a request line and its
   headers without limit and keeps every connection it accepts, waiting for the headers of one
   that sent half a block, or nothing, until the client goes (what a header flood cost:
   docs/reliability.md, "Abuse resistance, round two"); this one enforces `ConnectionLimits`.
2. `Supervisor`: uvicorn's supervisor of worker processes, letting go of the listening socket
   on SIGTERM.
3. `drain_on_sigterm`: SHUTDOWN_DRAIN_SECONDS of serving with /ready at 503 before uvicorn's
   own SIGTERM handler stops the server.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from taskapi.ops import lifecycle
from taskapi.web import problem_types
from taskapi.web.problem_types import problem_bytes

log = logging.getLogger("taskapi.server")
drain_log = logging.getLogger("taskapi.lifecycle")

HEADERS_END = b"\r\n\r\n"
# How long a refused connection is kept open for its answer to reach the client.
LINGER_SECONDS = 1.0


@dataclass(frozen=True)
class ConnectionLimits:
    """What one connection may hold before its request reaches the app, and how many a
    worker keeps.

    - the request line and headers may hold at most `max_header_bytes`, and at most
      `max_headers` header fields: 431 beyond either, and the connection is closed;
    - they must arrive within `header_timeout` seconds of the connection opening, or of the
      first byte of a later request on it: 408 and closed otherwise (uvicorn's keep-alive
      timeout still closes a connection that sits idle between requests);
    - a worker holds at most `max_connections` connections: the ones beyond get a 503 and are
      closed at once, before they can cost anything.

    Each refusal is a problem document (RFC 9457) like every other error of the API, written
    straight to the socket: the request never reaches the app.
    """

    max_header_bytes: int
    max_headers: int
    header_timeout: float
    max_connections: int


class ServerConfig(uvicorn.Config):
    """uvicorn's Config, carrying the limits to every worker (it is pickled for each)."""

    def __init__(self, app: Any, *, limits: ConnectionLimits, **options: Any) -> None:
        super().__init__(app, http=BoundedHttpToolsProtocol, **options)
        self.connection_limits = limits


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that enforces ConnectionLimits."""

    def __init__(self, config: ServerConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.limits: ConnectionLimits = config.connection_limits
        self._awaiting_headers = True
        # Bytes received while the header block was incomplete, and bytes of the fields the
        # parser has handed over: each at most max_header_bytes.
        self._received = 0
        self._parsed = 0
        self._fields = 0
        self._tail = b""
        self._begun = False
        self._header_deadline: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            log.warning("connection refused: %d open", len(self.connections) - 1)
            self._refuse(503, "overloaded", "the server holds too many connections; retry shortly")
            return
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._awaiting_headers:
            # Until the blank line that ends them, everything received is request line and
            # headers, which the parser would otherwise keep growing in memory.
            window = self._tail + data
            if HEADERS_END not in window:
                self._received += len(data)
                if self._received > self.limits.max_header_bytes:
                    self._headers_too_large()
                    return
                self._tail = window[-(len(HEADERS_END) - 1) :]
        super().data_received(data)
        # A later request that began but whose headers did not arrive whole in this read gets
        # a deadline (most arrive whole, and cost no timer).
        if self._begun and self._awaiting_headers and self._header_deadline is None:
            self._arm_header_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun = True

    def on_url(self, url: bytes) -> None:
        self._parsed += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # A header block that arrived whole in one read was not counted above: it is here.
        self._fields += 1
        self._parsed += len(name) + len(value) + 4
        if self._fields > self.limits.max_headers or self._parsed > self.limits.max_header_bytes:
            self._headers_too_large()
            raise _Refused()
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._disarm_header_deadline()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # What follows on this connection is the next request's line and headers.
        self._awaiting_headers = True
        self._begun = False
        self._received = self._parsed = self._fields = 0
        self._tail = b""

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # the parser error raised to stop it after a refusal
            super().send_400_response(msg)

    def _arm_header_deadline(self) -> None:
        self._header_deadline = self.loop.call_later(
            self.limits.header_timeout, self._header_timeout
        )

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _header_timeout(self) -> None:
        self._header_deadline = None
        if self._awaiting_headers and not self.transport.is_closing():
            self._refuse(
                408,
                "request_timeout",
                f"request headers: did not arrive within {self.limits.header_timeout:g} seconds",
            )

    def _headers_too_large(self) -> None:
        self._refuse(
            431,
            "headers_too_large",
            f"request line and headers: at most {self.limits.max_header_bytes} bytes "
            f"and {self.limits.max_headers} fields",
        )

    def _refuse(self, status: int, code: str, detail: str) -> None:
        """Answer `status` with a problem document and close the connection."""
        self._refused = True
        self._disarm_header_deadline()
        problem = problem_types.BY_CODE[code]
        body = problem_bytes(problem, detail)
        headers = [
            f"HTTP/1.1 {status} {problem.title}",
            "content-type: application/problem+json",
            f"content-length: {len(body)}",
            "x-content-type-options: nosniff",
            *(["retry-after: 1"] if status == 503 else []),
            "connection: close",
        ]
        head = "\r\n".join(headers) + "\r\n\r\n"
        self.transport.write(head.encode("latin-1") + body)
        # Closing with unread input would reset the connection, and the client might lose the
        # answer before reading it: stop writing, discard what still arrives, close shortly.
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()


class _Refused(Exception):
    """Stops the parser after a refusal (uvicorn reads it as a parser error)."""


class Supervisor(Multiprocess):
    """uvicorn's supervisor of the worker processes, letting go of the socket on SIGTERM.

    The workers were handed copies of the listening socket. Each keeps serving on its own
    copy while it drains and closes it when it stops listening. If this process still held
    its copy, the kernel would go on accepting connections that no process reads, to reset
    them only when it exits, up to SHUTDOWN_GRACE_SECONDS later; without it, the last
    worker to close its copy closes the socket, and new connections are refused at once.
    """

    def handle_term(self) -> None:
        for sock in self.sockets:
            sock.close()
        super().handle_term()


def drain_on_sigterm(seconds: float) -> None:
    """Put the drain (ops/lifecycle.py) in front of the running server's SIGTERM handler,
    uvicorn's, which would stop at once."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        return  # no drain asked for, or not the process's server (a test client)
    stop = signal.getsignal(signal.SIGTERM)
    if not callable(stop):
        return
    loop = asyncio.get_running_loop()

    def on_sigterm(signum: int, frame: Any) -> None:
        if lifecycle.draining():
            return
        lifecycle.begin_draining()
        drain_log.info("SIGTERM: draining for %gs before stopping", seconds)
        loop.call_soon_threadsafe(loop.call_later, seconds, stop, signum, None)

    signal.signal(signal.SIGTERM, on_sigterm)
