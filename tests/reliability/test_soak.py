"""A soak: many clients mixing reads and writes for a fixed time, then every write accounted for.

CLIENTS threads, two to a user, so that the two race on the same tasks, send a mix of
creates, PUTs, PATCHes, DELETEs, lists and reads for SECONDS seconds over loopback. Every
write the server acknowledged (201 for a create, 200 for the others) is recorded and checked
afterwards in the database itself, not through the API; meanwhile the workers' resident
memory is sampled.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.bench.report import percentile
from tests.reliability.harness import CHEAP_LOGINS, Traffic, rss_mb, worker_pids

pytestmark = [pytest.mark.reliability, pytest.mark.live]

CLIENTS = 16
SECONDS = 15.0
WARM_UP = 3.0
SAMPLE_EVERY = 1.0
PASSWORD = "soak-password"
# Resident memory may grow this much from the end of the warm-up to the end of the soak.
RSS_GROWTH_BOUND = 0.30
STATUSES = ("pending", "in_progress", "completed")


class Ledger:
    """What the server acknowledged, per task: its creation, its updates by version, its end."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.created: dict[int, dict[str, Any]] = {}
        self.updated: dict[int, dict[int, dict[str, Any]]] = defaultdict(dict)
        self.deleted: set[int] = set()
        self.live: dict[int, list[int]] = defaultdict(list)  # task ids per user, not deleted

    def pick(self, user: int, rng: random.Random) -> int | None:
        with self.lock:
            ids = self.live[user]
            return rng.choice(ids) if ids else None

    def create(self, user: int, task: dict[str, Any]) -> None:
        with self.lock:
            self.created[task["id"]] = task
            self.live[user].append(task["id"])

    def update(self, task: dict[str, Any], etag: str) -> None:
        version = int(etag.strip('"').rsplit("-", 1)[1])
        with self.lock:
            self.updated[task["id"]][version] = task

    def delete(self, user: int, task_id: int) -> None:
        with self.lock:
            self.deleted.add(task_id)
            if task_id in self.live[user]:
                self.live[user].remove(task_id)


def test_a_soak_loses_no_acknowledged_write_and_keeps_memory_flat(database, make_server, figures):
    server = make_server(**CHEAP_LOGINS)
    users = CLIENTS // 2
    tokens = []
    with httpx.Client(base_url=server.base_url, timeout=10) as api:
        for u in range(users):
            account = {"email": f"soak{u}@example.com", "password": PASSWORD, "name": "Soak"}
            assert api.post("/api/v1/auth/register", json=account).status_code == 201
            tokens.append(api.post("/api/v1/auth/login", json=account).json()["data"]["token"])
    ledger = Ledger()
    unexpected: list[str] = []

    def request(http: httpx.Client, k: int, n: int) -> httpx.Response:
        user, rng = k // 2, random.Random(k * 100_003 + n)
        auth = {"Authorization": f"Bearer {tokens[user]}"}
        kind, task_id = n % 10, ledger.pick(user, rng)
        if kind < 2 or task_id is None:
            body = {"title": f"soak {k}-{n}", "priority": rng.choice(["low", "medium", "high"])}
            response = http.post("/api/v1/tasks", json=body, headers=auth)
            if response.status_code == 201:
                ledger.create(user, response.json()["data"])
        elif kind < 4:
            body = {"title": f"put {k}-{n}", "status": rng.choice(STATUSES), "priority": "high"}
            response = http.put(f"/api/v1/tasks/{task_id}", json=body, headers=auth)
            if response.status_code == 200:
                ledger.update(response.json()["data"], response.headers["etag"])
        elif kind == 4:
            body = {"status": rng.choice(STATUSES), "description": f"patch {k}-{n}"}
            response = http.patch(f"/api/v1/tasks/{task_id}", json=body, headers=auth)
            if response.status_code == 200:
                ledger.update(response.json()["data"], response.headers["etag"])
        elif kind == 5:
            response = http.delete(f"/api/v1/tasks/{task_id}", headers=auth)
            if response.status_code == 200:  # the seed API's answer, with a message
                ledger.delete(user, task_id)
        elif kind < 8:
            response = http.get("/api/v1/tasks?limit=20&sort=-created_at", headers=auth)
        else:
            response = http.get(f"/api/v1/tasks/{task_id}", headers=auth)
        # A 404 is the partner thread's DELETE having come first; anything else is a finding.
        if response.status_code not in (200, 201, 404):
            unexpected.append(f"{response.request.method} {response.status_code} {response.text}")
        return response

    workers = worker_pids(server)
    samples: dict[int, list[float]] = {pid: [] for pid in workers}
    started = time.monotonic()
    with Traffic(server.base_url, request, threads=CLIENTS) as traffic:
        warm_sample = int(WARM_UP / SAMPLE_EVERY)
        while time.monotonic() - started < SECONDS:
            for pid in workers:
                samples[pid].append(rss_mb(pid))
            time.sleep(SAMPLE_EVERY)
    elapsed = time.monotonic() - started
    for pid in workers:
        samples[pid].append(rss_mb(pid))

    with sa.create_engine(database, poolclass=sa.NullPool).connect() as conn:
        query = sa.text("SELECT id, title, status, description, version FROM tasks")
        rows = {row.id: row for row in conn.execute(query)}
    missing = [i for i in ledger.created if i not in ledger.deleted and i not in rows]
    undeleted = [i for i in ledger.deleted if i in rows]
    behind = [
        (task_id, f"holds {row.title!r}, created as {ledger.created[task_id]['title']!r}")
        for task_id, row in rows.items()
        if task_id in ledger.created
        and row.version == 1
        and row.title != ledger.created[task_id]["title"]
    ]
    for task_id, versions in ledger.updated.items():
        row = rows.get(task_id)
        if row is None:
            if task_id not in ledger.deleted:
                behind.append((task_id, "gone"))
            continue
        newest = max(versions)
        if row.version < newest:
            behind.append((task_id, f"version {row.version} < acknowledged {newest}"))
        elif row.version in versions:
            acked = versions[row.version]
            stored = (row.title, row.status, row.description)
            if stored != (acked["title"], acked["status"], acked["description"]):
                behind.append((task_id, f"version {row.version} holds {stored}, not {acked}"))
    exchanges = traffic.exchanges
    statuses = Counter(e.status for e in exchanges)
    five_xx = sum(1 for e in exchanges if e.status is not None and e.status >= 500)
    p99 = percentile([e.seconds * 1000 for e in exchanges], 0.99)
    growth = {
        pid: (values[-1] - values[warm_sample]) / values[warm_sample]
        for pid, values in samples.items()
    }
    figures(
        f"soak: {CLIENTS} clients ({users} users) for {elapsed:.0f} s, {len(exchanges)} requests "
        f"({len(exchanges) / elapsed:.0f}/s, p99 {p99:.0f} ms): "
        + ", ".join(f"{s} x{c}" for s, c in sorted(statuses.items(), key=str))
        + f"; acknowledged {len(ledger.created)} creates, "
        f"{sum(len(v) for v in ledger.updated.values())} updates, {len(ledger.deleted)} deletes; "
        f"5xx {five_xx}, writes lost {len(missing) + len(undeleted) + len(behind)}; worker RSS MiB "
        + "; ".join(
            f"[{' '.join(f'{v:.0f}' for v in values)}] ({growth[pid]:+.1%} after warm-up)"
            for pid, values in samples.items()
        )
    )

    assert len(exchanges) > CLIENTS * SECONDS, "the soak barely ran"
    assert five_xx == 0, statuses
    assert statuses[None] == 0, [e for e in exchanges if e.status is None][:5]
    assert not unexpected, unexpected[:5]
    assert not missing, missing
    assert not undeleted, undeleted
    assert not behind, behind
    for acknowledged in (ledger.created, ledger.updated, ledger.deleted):
        assert acknowledged, "a kind of write never happened"
    assert worker_pids(server) == workers, "a worker was restarted"
    for pid, rate in growth.items():
        assert rate < RSS_GROWTH_BOUND, (pid, samples[pid])
