"""The WSGI bridge on its own: environ, buffering, threads, errors, and what stays off the loop."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from typing import Any

import pytest

from taskapi.web.framework.bridge import WSGIBridge, wsgi_environ

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def scope(path: str = "/hello", **extra: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "path": path,
        "root_path": "",
        "query_string": b"q=1",
        "headers": [
            (b"content-type", b"application/json"),
            (b"x-tag", b"a"),
            (b"x-tag", b"b"),
            (b"content-length", b"999"),
        ],
        "client": ("10.0.0.7", 5000),
        "server": ("127.0.0.1", 8080),
        **extra,
    }


def echo_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("201 Created", [("Content-Type", "text/plain"), ("X-Thread", "t")])
    return [
        environ["PATH_INFO"].encode(),
        b"|",
        body,
        b"|",
        threading.current_thread().name.encode(),
        b"|",
        REQUEST_ID.get().encode(),
    ]


async def call(bridge: WSGIBridge, request_scope: dict[str, Any], chunks: list[bytes]) -> list[Any]:
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await bridge(request_scope, receive, send)
    return sent


def test_environ_follows_pep_3333():
    environ = wsgi_environ(scope(root_path="/base", path="/base/hello"), b"{}")
    assert environ["SCRIPT_NAME"] == "/base"
    assert environ["PATH_INFO"] == "/hello"
    assert environ["QUERY_STRING"] == "q=1"
    assert environ["CONTENT_TYPE"] == "application/json"
    # The length of the body that arrived, not what the client claimed.
    assert environ["CONTENT_LENGTH"] == "2"
    assert environ["HTTP_X_TAG"] == "a,b"
    assert (environ["REMOTE_ADDR"], environ["SERVER_PORT"]) == ("10.0.0.7", "8080")
    assert environ["wsgi.input"].read() == b"{}"


def test_a_request_runs_on_the_loop_with_the_whole_body_and_a_buffered_response():
    bridge = WSGIBridge(echo_app, offload=lambda s: False)
    start, body = asyncio.run(call(bridge, scope(), [b'{"a"', b":1}"]))
    assert start == {
        "type": "http.response.start",
        "status": 201,
        "headers": [(b"content-type", b"text/plain"), (b"x-thread", b"t")],
    }
    path, received, thread, _ = body["body"].split(b"|")
    assert (path, received, thread) == (b"/hello", b'{"a":1}', b"MainThread")
    bridge.close()


def test_an_offloaded_request_runs_on_a_thread_with_the_requests_context():
    bridge = WSGIBridge(echo_app, offload=lambda s: s["path"] == "/slow")

    async def main() -> list[Any]:
        REQUEST_ID.set("req-42")
        return await call(bridge, scope("/slow"), [b"x"])

    _, body = asyncio.run(main())
    _, _, thread, request_id = body["body"].split(b"|")
    assert thread.startswith(b"wsgi")
    assert request_id == b"req-42"
    bridge.close()


def test_an_exception_reaches_the_caller_before_anything_is_sent():
    def failing(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise LookupError("handler failed")

    for offload in (False, True):
        bridge = WSGIBridge(failing, offload=lambda s, o=offload: o)
        sent: list[Any] = []

        async def send(message: dict[str, Any], sink: list[Any] = sent) -> None:
            sink.append(message)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        with pytest.raises(LookupError, match="handler failed"):
            asyncio.run(bridge(scope(), receive, send))
        assert sent == []
        bridge.close()


def test_a_client_that_leaves_mid_body_costs_no_handler_call():
    calls = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        calls.append(environ)
        start_response("200 OK", [])
        return [b""]

    bridge = WSGIBridge(app, offload=lambda s: False)
    chunks = [{"type": "http.request", "body": b"par", "more_body": True}]

    async def receive() -> dict[str, Any]:
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    sent: list[Any] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(bridge(scope(), receive, send))
    assert (calls, sent) == ([], [])
    bridge.close()


def test_a_slow_offloaded_request_does_not_stall_the_loop():
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/slow":
            time.sleep(0.5)  # as bcrypt would, without holding the GIL
        start_response("200 OK", [])
        return [environ["PATH_INFO"].encode()]

    bridge = WSGIBridge(app, offload=lambda s: s["path"] == "/slow")

    async def main() -> tuple[float, float]:
        started = time.monotonic()
        slow = asyncio.create_task(call(bridge, scope("/slow"), [b""]))
        await asyncio.sleep(0.01)
        for _ in range(20):
            await call(bridge, scope("/fast"), [b""])
        fast_done = time.monotonic() - started
        await slow
        return fast_done, time.monotonic() - started

    fast_done, slow_done = asyncio.run(main())
    assert fast_done < 0.25 < 0.5 <= slow_done
    bridge.close()


def test_http_only():
    bridge = WSGIBridge(echo_app, offload=lambda s: False)
    with pytest.raises(RuntimeError, match="HTTP only"):
        asyncio.run(bridge({"type": "websocket"}, None, None))  # type: ignore[arg-type]
    bridge.close()
