"""What TaskAPI's own stack costs per request, without sockets: `python -m tests.bench.inprocess`.

    python -m tests.bench.inprocess [--requests 5000] [health,list,get,create,update]

Builds the app with create_app and production settings on DATABASE_URL (already migrated;
default: a fresh SQLite file, migrated here; DATABASE_READ_URL and REDIS_URL are passed on
too), runs its lifespan, registers a user with a few
tasks through the app, then awaits each scenario's request over and over on one event loop,
with no server, client or network in between, and prints the wall and CPU time per request:
middleware, Flask, the handler, SQLAlchemy and the database's round trips, but not uvicorn's
HTTP parsing or a client's share of the CPU. Repeatable to a few percent on a quiet machine,
so it shows what a change to the request path buys before wrk can; for where the time goes,
run it under `py-spy record -f raw -- python -m tests.bench.inprocess health`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop

from taskapi.app import create_app
from taskapi.config import Settings
from taskapi.storage import migrate

SCENARIOS = ("health", "list", "get", "sync", "create", "update")
WARMUP = 200
Request = tuple[str, str, bytes, list[tuple[bytes, bytes]], bytes]


def production_settings() -> Settings:
    values = {
        "TASKAPI_ENV": "production",
        "JWT_SECRET": secrets.token_hex(32),
        "ACCESS_LOG": "false",
        # One user sends every request: a budget it never meets, so the limiter still runs.
        "RATE_LIMIT_DEFAULT": "100000000/hour;1000000/second",
        **{
            k: v
            for k, v in os.environ.items()
            # OTEL_*: traces on, as docs/performance.md measures them; DATABASE_READ_URL and
            # REDIS_URL: reads on a standby.
            if k in ("DATABASE_URL", "DATABASE_READ_URL", "REDIS_URL")
            or k.startswith(("RATE_LIMIT_", "OTEL_"))
        },
    }
    if "DATABASE_URL" not in values:
        path = Path(tempfile.mkdtemp()) / "inprocess.db"
        values["DATABASE_URL"] = f"sqlite:///{path}"
        migrate.upgrade(Settings.from_env(values))
    return Settings.from_env(values)


class InProcessClient:
    """Awaits an ASGI app for one request at a time and collects its response."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def start(self) -> None:
        messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await messages.put({"type": "lifespan.startup"})
        started = asyncio.Event()

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.startup.complete":
                started.set()

        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._lifespan = asyncio.ensure_future(self.app(scope, messages.get, send))
        await started.wait()

    async def request(self, *request: Any) -> tuple[int, bytes]:
        method, path, query, headers, body = request
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query,
            "root_path": "",
            "headers": [(b"host", b"127.0.0.1:8080"), *headers]
            + ([(b"content-type", b"application/json")] if body else [])
            + [(b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8080),
        }
        delivered = False
        status = 0
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if delivered:
                await asyncio.Event().wait()  # the client stays connected
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            else:
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, b"".join(chunks)


async def scenarios(client: InProcessClient) -> dict[str, Request]:
    """The shared benchmark's five requests, as one fresh user with a few tasks."""
    account = {"email": f"{secrets.token_hex(6)}@example.com", "password": "password123"}
    await client.request(
        "POST", "/api/v1/auth/register", b"", [], json.dumps({**account, "name": "Bench"}).encode()
    )
    _, body = await client.request(
        "POST", "/api/v1/auth/login", b"", [], json.dumps(account).encode()
    )
    auth = [(b"authorization", b"Bearer " + json.loads(body)["data"]["token"].encode())]
    task_ids = []
    for i in range(30):
        _, body = await client.request("POST", "/api/v1/tasks", b"", auth, b'{"title":"t%d"}' % i)
        task_ids.append(json.loads(body)["data"]["id"])
    task = f"/api/v1/tasks/{task_ids[0]}"
    _, body = await client.request("GET", "/api/v1/tasks/changes", b"limit=1000", auth, b"")
    since = json.loads(body)["meta"]["next_since"].encode()
    return {
        "health": ("GET", "/health", b"", [], b""),
        "list": ("GET", "/api/v1/tasks", b"limit=20", auth, b""),
        "get": ("GET", task, b"", auth, b""),
        # A poll of the change feed with nothing new.
        "sync": ("GET", "/api/v1/tasks/changes", b"since=" + since, auth, b""),
        "create": ("POST", "/api/v1/tasks", b"", auth, b'{"title":"bench","priority":"low"}'),
        "update": (
            "PUT",
            task,
            b"",
            auth,
            b'{"title":"u","status":"in_progress","priority":"high"}',
        ),
    }


async def run(names: list[str], count: int) -> None:
    client = InProcessClient(create_app(production_settings()))
    await client.start()
    requests = await scenarios(client)
    for name in names:
        for _ in range(WARMUP):
            status, body = await client.request(*requests[name])
            if status >= 300:
                raise SystemExit(f"{name}: {status} {body[:200]!r}")
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(count):
            await client.request(*requests[name])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(
            f"{name:8} {wall / count * 1e6:8.1f} us wall, {cpu / count * 1e6:8.1f} us CPU a request"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="?", default=",".join(SCENARIOS))
    parser.add_argument("--requests", type=int, default=5000, help="per scenario")
    args = parser.parse_args()
    names = [n for n in args.scenarios.split(",") if n]
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        parser.error(
            f"unknown scenario {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}"
        )
    uvloop.run(run(names, args.requests))


if __name__ == "__main__":
    main()
