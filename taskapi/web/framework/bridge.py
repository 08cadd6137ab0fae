"""An ASGI-to-WSGI bridge that runs each request on the event loop, or on a thread if it blocks.

Connexion's FlaskApp hands every request to a2wsgi, which runs the WSGI app on a pool of 10
threads and crosses between the loop and that pool for every ASGI message. Behind Connexion,
a request body has already been read and bounded by the time it reaches the WSGI app, and the
responses are small, so this bridge buffers both: it reads the body, calls the WSGI app once
and sends the whole response. Requests that may block for long (CPU-heavy work, waits) are
marked by `offload(scope)` and run on a thread of the bridge's own pool, with the request's
context variables; all others run directly on the loop, where they cost no thread switch.

Exceptions from the WSGI app propagate to the ASGI caller before any response is sent, so
exception-handling middleware sees them as it would an ASGI app's.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.types import Receive, Scope, Send

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Response = tuple[int, list[tuple[bytes, bytes]], bytes]


class WSGIBridge:
    """Serve `app` (WSGI) to ASGI HTTP requests; `offload(scope)` picks those run on a thread."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        offload: Callable[[Scope], bool],
        threads: int = 8,
    ) -> None:
        self.app = app
        self.offload = offload
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="wsgi")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise RuntimeError(f"WSGIBridge serves HTTP only, not {scope['type']!r}")
        body = await read_body(receive)
        if body is None:
            return  # the client left; nobody would read the response
        environ = wsgi_environ(scope, body)
        if self.offload(scope):
            context = contextvars.copy_context()
            loop = asyncio.get_running_loop()
            status, headers, body = await loop.run_in_executor(
                self.executor, context.run, self.call, environ
            )
        else:
            status, headers, body = self.call(environ)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def call(self, environ: dict[str, Any]) -> Response:
        """Run the WSGI app for `environ`; its status, headers and whole body."""
        started: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            if exc_info is not None and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, headers]
            return _no_write

        chunks = self.app(environ, start_response)
        try:
            body = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        status, headers = started
        return int(status[:3]), raw_headers(headers), body

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def raw_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """WSGI's (name, value) strings as ASGI's lower-cased latin-1 byte pairs."""
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


def _no_write(data: bytes) -> None:
    raise RuntimeError("this bridge buffers responses; return the body instead of write()")


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None if the client disconnected before sending it all.

    An upstream middleware bounds its size and the time it may take.
    """
    chunks = []
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def wsgi_environ(scope: Scope, body: bytes) -> dict[str, Any]:
    """The PEP 3333 environ for an ASGI HTTP scope and its body."""
    root_path: str = scope.get("root_path", "")
    path: str = scope["path"]
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    server_name, server_port = scope.get("server") or ("localhost", 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": root_path.encode("utf-8").decode("latin-1"),
        "PATH_INFO": path.encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope["query_string"].decode("latin-1"),
        "SERVER_NAME": server_name,
        "SERVER_PORT": str(server_port or 0),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "asgi.scope": scope,
    }
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"], port = client
        environ["REMOTE_PORT"] = str(port)
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        if name == "CONTENT_LENGTH":
            continue  # the body above is exactly what arrived
        if name != "CONTENT_TYPE":
            name = "HTTP_" + name
        value = raw_value.decode("latin-1")
        environ[name] = f"{environ[name]},{value}" if name in environ else value
    return environ
