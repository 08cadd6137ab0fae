"""The HTTP layer bounds what a client holds before its request reaches the app.

Against a live `taskapi serve` (uvicorn on httptools): a header block over MAX_HEADER_BYTES or
MAX_HEADERS is a 431, one slower than HEADER_TIMEOUT a 408, a connection beyond
MAX_CONNECTIONS a 503; each closes the connection, and none costs the server memory.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from taskapi.storage import migrate
from tests.conftest import base_settings, serving
from tests.serving import free_port

pytestmark = pytest.mark.live

HEADER_TIMEOUT = 1.0
MAX_CONNECTIONS = 8
MAX_HEADER_BYTES = 16_384


METRICS_PORT = free_port()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("http-limits")
    url = f"sqlite:///{workdir / 'taskapi.db'}"
    migrate.upgrade(base_settings(url))
    with serving(
        url,
        workdir,
        HEADER_TIMEOUT=str(HEADER_TIMEOUT),
        MAX_CONNECTIONS=str(MAX_CONNECTIONS),
        METRICS_PORT=str(METRICS_PORT),
    ) as base:
        yield base


def connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """The status, headers and body of the response on `sock`, read until it closes."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def assert_refused(status: int, headers: dict[str, str], body: bytes, code: str, expected: int):
    assert status == expected
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    problem = json.loads(body)
    assert problem["code"] == code
    assert problem["status"] == expected
    assert problem["success"] is False


def server_rss_kib(base: str) -> int:
    """Resident memory of the server's processes (its process group), in KiB."""
    port = base.rsplit(":", 1)[1]
    leader = subprocess.run(
        ["pgrep", "-f", f"taskapi serve --port {port}"], capture_output=True, text=True
    ).stdout.split()[0]
    children = subprocess.run(
        ["pgrep", "-P", leader], capture_output=True, text=True
    ).stdout.split()
    out = subprocess.run(
        ["ps", "-o", "rss=", "-p", ",".join([leader, *children])], capture_output=True, text=True
    ).stdout
    return sum(int(v) for v in out.split())


def test_a_header_that_never_ends_is_cut_off_at_the_limit(server):
    """Ten clients each streaming a 40 MB header: 431s, and the server does not grow."""
    before = server_rss_kib(server)
    chunk = b"a" * 65536
    for _ in range(10):
        with connect(server) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Big: ")
            sent = 0
            try:
                while sent < 40 * 2**20:
                    sock.sendall(chunk)
                    sent += len(chunk)
            except (ConnectionResetError, BrokenPipeError):
                pass
            assert_refused(*answer(sock), "headers_too_large", 431)
    grown = server_rss_kib(server) - before
    assert grown < 20 * 1024, f"the server grew by {grown} KiB"


def test_a_complete_header_block_over_the_limit_is_431(server):
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n")
        assert_refused(*answer(sock), "headers_too_large", 431)


def test_too_many_header_fields_is_431(server):
    fields = b"".join(b"X-F%d: 1\r\n" % i for i in range(101))
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n" + fields + b"\r\n")
        assert_refused(*answer(sock), "headers_too_large", 431)


def test_headers_within_the_limits_are_served_even_in_pieces(server):
    """15 KiB of headers in 99 fields, sent a few bytes at a time, is an ordinary request."""
    fields = b"".join(b"X-F%d: %s\r\n" % (i, b"v" * 140) for i in range(98))
    request = b"GET /health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n" + fields + b"\r\n"
    assert len(request) < MAX_HEADER_BYTES
    with connect(server) as sock:
        for start in range(0, len(request), 4096):
            sock.sendall(request[start : start + 4096])
            time.sleep(0.01)
        status, _, body = answer(sock)
    assert status == 200
    assert json.loads(body)["status"] == "healthy"


def test_a_half_sent_header_block_is_closed_after_the_header_timeout(server):
    """Slowloris: 200 connections stop mid-headers; each gets a 408 once HEADER_TIMEOUT has
    passed, and a new client is served meanwhile."""
    held = []
    try:
        for _ in range(200):
            sock = connect(server)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n")
            held.append(sock)
    except ConnectionError:
        pass  # beyond MAX_CONNECTIONS: refused, which the next test covers
    started = time.monotonic()
    assert httpx.get(f"{server}/health", timeout=5).status_code in (200, 503)
    statuses = []
    for sock in held:
        statuses.append(answer(sock)[0])
        sock.close()
    waited = time.monotonic() - started
    assert 408 in statuses
    assert set(statuses) <= {408, 503}
    assert waited < HEADER_TIMEOUT + 5
    assert httpx.get(f"{server}/health", timeout=5).status_code == 200


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(server):
    with connect(server) as sock:
        started = time.monotonic()
        status, headers, body = answer(sock)
        assert_refused(status, headers, body, "request_timeout", 408)
        assert HEADER_TIMEOUT - 0.1 <= time.monotonic() - started < HEADER_TIMEOUT + 2


def test_a_slow_second_request_on_a_kept_alive_connection_gets_a_408(server):
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n")  # and nothing more
        status, headers, body = answer(sock)
    assert_refused(status, headers, body, "request_timeout", 408)


def test_the_header_deadline_leaves_idle_keep_alive_and_slow_bodies_alone(server):
    """HEADER_TIMEOUT bounds headers only: a pause between two requests on a kept-alive
    connection, or a body slower than it (REQUEST_BODY_TIMEOUT bounds those), is fine."""
    body = b'{"email": "slow@example.com", "password": "password123", "name": "Slow"}'
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        time.sleep(HEADER_TIMEOUT + 0.5)
        sock.sendall(
            b"POST /api/v1/auth/register HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        time.sleep(HEADER_TIMEOUT + 0.5)
        sock.sendall(body)
        status, _, response = answer(sock)
    assert status == 201, response


def test_connections_beyond_the_limit_are_refused_with_503(server):
    """Each of the 2 workers holds at most MAX_CONNECTIONS; more are answered 503 at once."""
    held = [connect(server) for _ in range(4 * MAX_CONNECTIONS)]
    try:
        refused = 0
        for sock in held:
            sock.settimeout(0.5)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            if data.startswith(b"HTTP/1.1 503"):
                assert b"retry-after: 1" in data
                assert b'"code":"overloaded"' in data
                refused += 1
        assert refused >= 2 * MAX_CONNECTIONS
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.5)
    assert httpx.get(f"{server}/health", timeout=5).status_code == 200


def test_limits_are_settings(tmp_path: Path):
    from taskapi.config import Settings

    settings = Settings.from_env(
        {
            "MAX_HEADER_BYTES": "32768",
            "MAX_HEADERS": "50",
            "HEADER_TIMEOUT": "5",
            "MAX_CONNECTIONS": "64",
        },
        dotenv=None,
    )
    assert (settings.max_header_bytes, settings.max_headers) == (32768, 50)
    assert (settings.header_timeout, settings.max_connections) == (5.0, 64)


def test_a_chunked_request_body_is_accepted_by_the_live_server(server):
    """Transfer-Encoding: chunked, as streaming clients send it: no Content-Length."""
    body = b'{"email": "chunked@example.com", "password": "password123", "name": "Chunky"}'
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:20], body[20:]))
    with connect(server) as sock:
        sock.sendall(
            b"POST /api/v1/auth/register HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + chunked
            + b"0\r\n\r\n"
        )
        status, _, response = answer(sock)
    assert status == 201, response
    assert json.loads(response)["data"]["email"] == "chunked@example.com"


def test_the_metrics_listener_does_not_say_what_software_it_runs(server):
    httpx.get(f"{server}/health", timeout=5)
    response = httpx.get(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5)
    assert response.status_code == 200
    assert "server" not in response.headers
    assert "taskapi_requests_total" in response.text
    with socket.create_connection(("127.0.0.1", METRICS_PORT), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
        status, headers, _ = answer(sock)
    assert status == 431
    assert "server" not in headers
