"""Concurrent writers and a syncing client, for the change feed's guarantee against live servers.

A client that syncs without `since`, then keeps polling with each `next_since` (following
`has_more`) and applies each page in order, holds exactly what GET /api/v1/tasks lists once the
writers stop, however many requests wrote the account's tasks at once. Eight writers create,
batch-create, replace, patch and delete one account's tasks (some with Idempotency-Keys, sent
twice) for a few seconds on `taskapi serve --workers 2`, while a ninth client syncs.

Stamps in the order writes begin, not the order they commit, lose changes here: with
`since` = the largest stamp seen, a write that began first and committed last is skipped.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from typing import Any

import httpx

from tests.conftest import PASSWORD

WRITERS = 8
SECONDS = 4.0


def account(base: str) -> dict[str, str]:
    body = {
        "email": f"sync-{uuid.uuid4().hex[:10]}@example.com",
        "password": PASSWORD,
        "name": "Syncer",
    }
    httpx.post(f"{base}/api/v1/auth/register", json=body, timeout=30).raise_for_status()
    token = httpx.post(f"{base}/api/v1/auth/login", json=body, timeout=30).json()["data"]["token"]
    return {"Authorization": f"Bearer {token}"}


class Writer(threading.Thread):
    def __init__(self, base: str, auth: dict[str, str], known: list[int], stop: threading.Event):
        super().__init__(daemon=True)
        self.http = httpx.Client(base_url=base, headers=auth, timeout=30)
        self.known, self.stop, self.random = known, stop, random.Random()
        self.writes = 0
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                response = self.write()
            except httpx.HTTPError as error:
                self.failures.append(repr(error))
                continue
            self.writes += 1
            if response.status_code >= 500 or response.status_code in (400, 401, 429):
                self.failures.append(f"{response.request.method} {response.status_code}")

    def write(self) -> httpx.Response:
        choice = self.random.random()
        target = self.random.choice(self.known) if self.known else None
        if target is None or choice < 0.3:
            headers = {"Idempotency-Key": uuid.uuid4().hex} if choice < 0.1 else {}
            body = {"title": f"t{self.random.randrange(10**6)}"}
            response = self.http.post("/api/v1/tasks", json=body, headers=headers)
            if headers:  # the retry a lost response would cause: a replay, no new task
                response = self.http.post("/api/v1/tasks", json=body, headers=headers)
            if response.status_code == 201:
                self.known.append(response.json()["data"]["id"])
            return response
        if choice < 0.4:
            tasks = [{"title": f"b{i}"} for i in range(self.random.randint(1, 5))]
            response = self.http.post("/api/v1/tasks/batch", json={"tasks": tasks})
            if response.status_code == 201:
                self.known.extend(t["id"] for t in response.json()["data"])
            return response
        if choice < 0.6:
            body = {"title": f"put{self.random.randrange(10**6)}", "priority": "high"}
            return self.http.put(f"/api/v1/tasks/{target}", json=body)
        if choice < 0.85:
            return self.http.patch(
                f"/api/v1/tasks/{target}",
                json={"status": self.random.choice(["pending", "in_progress", "completed"])},
                headers={"Content-Type": "application/merge-patch+json"},
            )
        return self.http.delete(f"/api/v1/tasks/{target}")


class Syncer(threading.Thread):
    """A client keeping its copy: pages applied in order, polls until told to stop. Given
    several servers, it asks each in turn, as a client behind a load balancer would."""

    def __init__(self, bases: list[str], auth: dict[str, str], stop: threading.Event):
        super().__init__(daemon=True)
        self.clients = [httpx.Client(base_url=b, headers=auth, timeout=30) for b in bases]
        self.stop = stop
        self.copy: dict[int, dict[str, Any]] = {}
        self.since: str | None = None
        self.pages = 0
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.catch_up()
            except httpx.HTTPError as error:
                self.failures.append(repr(error))
                return

    def catch_up(self) -> None:
        while True:
            params = {"limit": 7, **({"since": self.since} if self.since else {})}
            http = self.clients[self.pages % len(self.clients)]
            response = http.get("/api/v1/tasks/changes", params=params)
            response.raise_for_status()
            body = response.json()
            for task in body["data"]["tasks"]:
                self.copy[task["id"]] = task
            for gone in body["data"]["deleted"]:
                self.copy.pop(gone["id"], None)
            self.since = body["meta"]["next_since"]
            self.pages += 1
            if not body["meta"]["has_more"]:
                return


def listed(base: str, auth: dict[str, str]) -> dict[int, dict[str, Any]]:
    """Every task the list shows, by cursor."""
    tasks: dict[int, dict[str, Any]] = {}
    params: dict[str, Any] = {"limit": 100}
    with httpx.Client(base_url=base, headers=auth, timeout=30) as http:
        while True:
            body = http.get("/api/v1/tasks", params=params).json()
            tasks |= {t["id"]: t for t in body["data"]}
            if not body["meta"]["next_cursor"]:
                return tasks
            params = {"limit": 100, "cursor": body["meta"]["next_cursor"]}


def check_sync_under_writers(bases: list[str]) -> None:
    """WRITERS writers spread over `bases`, a syncer asking each in turn; then compare."""
    live_server = bases[0]
    auth = account(live_server)
    known: list[int] = []
    stop_writing, stop_syncing = threading.Event(), threading.Event()
    writers = [Writer(bases[i % len(bases)], auth, known, stop_writing) for i in range(WRITERS)]
    syncer = Syncer(bases, auth, stop_syncing)
    syncer.start()
    for writer in writers:
        writer.start()
    time.sleep(SECONDS)
    stop_writing.set()
    for writer in writers:
        writer.join()
    stop_syncing.set()
    syncer.join()
    syncer.catch_up()  # the poll after the writers stopped
    for client in [*(w.http for w in writers), *syncer.clients]:
        client.close()
    expected = listed(live_server, auth)
    writes = sum(w.writes for w in writers)
    failures = [f for w in [*writers, syncer] for f in w.failures]
    run = (
        f"{WRITERS} writers: {writes} writes in {SECONDS:g} s, {syncer.pages} pages synced, "
        f"{len(expected)} tasks at the end"
    )
    assert not failures, failures[:10]
    assert writes > 100, run
    missing = sorted(set(expected) - set(syncer.copy))
    stale = sorted(set(syncer.copy) - set(expected))
    differ = sorted(i for i in set(expected) & set(syncer.copy) if expected[i] != syncer.copy[i])
    assert (missing, stale, differ) == ([], [], []), f"the synced copy is not the list ({run})"
