"""PostgreSQL stopped under load and started again: 503s while it is down, never a 500.

The suite's own cluster is stopped with `pg_ctl stop -m fast` (every session ended at once,
mid-statement for some) while three clients read, one creates tasks and one polls /ready and
/health, then started again DOWN_SECONDS later. The same server processes must answer every
request of the outage with a 503 problem carrying Retry-After, within a bounded time, report
not ready, and serve again soon after PostgreSQL is back, without a restart.
"""

from __future__ import annotations

import time
from collections import Counter

import httpx
import pytest
import sqlalchemy as sa

from tests.reliability.harness import CHEAP_LOGINS, Traffic, worker_pids

pytestmark = [pytest.mark.reliability, pytest.mark.live]

BEFORE_SECONDS = 1.5
DOWN_SECONDS = 4.0
AFTER_SECONDS = 1.5
# DB_CONNECT_TIMEOUT (3 s) bounds a connection attempt to a database that does not answer;
# loopback refuses at once, so this is a loose bound.
ANSWER_BOUND = 3.0 + 2.0
# From `pg_ctl start` returning to the first read served, and to the last refused one.
RECOVERY_BOUND = 5.0
PASSWORD = "outage-password"


def test_a_database_outage_is_503_with_retry_after_and_heals_by_itself(
    cluster, database, make_server, figures
):
    server = make_server(**CHEAP_LOGINS)
    with httpx.Client(base_url=server.base_url, timeout=10) as api:
        account = {"email": "outage@example.com", "password": PASSWORD, "name": "Outage"}
        assert api.post("/api/v1/auth/register", json=account).status_code == 201
        token = api.post("/api/v1/auth/login", json=account).json()["data"]["token"]
        auth = {"Authorization": f"Bearer {token}"}
        ids = [
            api.post("/api/v1/tasks", json={"title": f"t{i}"}, headers=auth).json()["data"]["id"]
            for i in range(10)
        ]
    workers = worker_pids(server)

    def read(http: httpx.Client, k: int, n: int) -> httpx.Response:
        if n % 2:
            return http.get(f"/api/v1/tasks/{ids[(k + n) % len(ids)]}", headers=auth)
        return http.get("/api/v1/tasks?limit=20", headers=auth)

    def write(http: httpx.Client, k: int, n: int) -> httpx.Response:
        return http.post("/api/v1/tasks", json={"title": f"outage {n}"}, headers=auth)

    def probe(http: httpx.Client, k: int, n: int) -> httpx.Response:
        return http.get("/ready" if n % 2 else "/health")

    base = server.base_url
    with (
        Traffic(base, read, threads=3, pause=0.005) as reads,
        Traffic(base, write, threads=1, pause=0.02) as writes,
        Traffic(base, probe, threads=1, pause=0.05) as probes,
    ):
        time.sleep(BEFORE_SECONDS)
        stopping = time.monotonic()
        try:
            cluster.stop("fast")
            down = time.monotonic()
            time.sleep(DOWN_SECONDS)
        finally:
            starting = time.monotonic()
            cluster.start()
        up = time.monotonic()
        deadline = up + RECOVERY_BOUND + AFTER_SECONDS
        while not any(e.started > up and e.status == 200 for e in reads.exchanges):
            assert time.monotonic() < deadline, "no read was served after PostgreSQL came back"
            time.sleep(0.05)
        time.sleep(AFTER_SECONDS)
    every = reads.exchanges + writes.exchanges + probes.exchanges

    in_outage = [e for e in every if e.started >= down and e.ended <= starting]
    refused = [e for e in every if e.status == 503]
    first_served = min(e.ended for e in reads.exchanges if e.started > up and e.status == 200)
    last_refused = max(refused, key=lambda e: e.ended)
    readiness = [e for e in probes.exchanges if e.what == "GET /ready"]
    statuses = Counter(e.status for e in every)
    acknowledged = [e.body["data"]["id"] for e in writes.exchanges if e.status == 201]
    with sa.create_engine(database, poolclass=sa.NullPool).connect() as conn:
        stored = set(conn.scalars(sa.text("SELECT id FROM tasks")))
    lost = [i for i in acknowledged if i not in stored]
    slowest = max(every, key=lambda e: e.seconds)
    figures(
        f"database outage: {len(every)} requests, 1 fault (`pg_ctl stop -m fast`, "
        f"{up - stopping:.1f} s from stop to started again); statuses "
        + ", ".join(f"{s} x{c}" for s, c in sorted(statuses.items(), key=str))
        + f"; {len(in_outage)} while down, 503: {sum(e.status == 503 for e in in_outage)} "
        f"(the others GET /health, 200); "
        f"slowest answer {slowest.seconds * 1000:.0f} ms ({slowest.what}, {slowest.status}); "
        f"first read served {(first_served - up) * 1000:.0f} ms after PostgreSQL was back, "
        f"last 503 {(last_refused.ended - up) * 1000:.0f} ms after ({last_refused.what}); "
        f"{len(acknowledged)} creates acknowledged, {len(lost)} lost"
    )

    # Never a 500, nor any answer but success or 503; every request answered.
    assert set(statuses) <= {200, 201, 503}, statuses
    assert len(in_outage) > 20, "the outage was not felt"
    for e in refused:
        assert e.content_type == "application/problem+json", e
        assert int(e.retry_after or 0) > 0, e
        assert e.code in ("database_unavailable", "not_ready"), e
    assert all(e.status == 503 for e in in_outage if e.what != "GET /health")
    assert slowest.seconds < ANSWER_BOUND, slowest
    # Liveness stays 200 throughout; readiness follows the database.
    assert {e.status for e in probes.exchanges if e.what == "GET /health"} == {200}
    assert any(e.status == 503 for e in readiness if e in in_outage)
    assert readiness[-1].status == 200, readiness[-1]
    # Recovery, in the same processes.
    assert first_served - up < RECOVERY_BOUND
    assert last_refused.ended - up < RECOVERY_BOUND, last_refused
    assert worker_pids(server) == workers, "a worker was restarted"
    assert not lost, lost

    # Restarted while nobody asked: the pooled connections are stale (used less than
    # db.PING_AFTER_IDLE ago, so not pinged), and each worker's pool finds out on its next
    # use, a 503; the pool is then replaced, and serves from fresh connections.
    cluster.stop("fast")
    cluster.start()
    answers = [httpx.get(f"{base}/api/v1/tasks", headers=auth, timeout=10) for _ in range(20)]
    after_idle = [r.status_code for r in answers]
    figures(f"database restarted while idle: the next 20 reads (new connections) {after_idle}")
    assert set(after_idle) <= {200, 503}, after_idle
    assert after_idle.count(503) <= len(workers), after_idle
    assert after_idle[-1] == 200, after_idle
    for response in answers:
        if response.status_code == 503:
            assert response.headers["retry-after"], response.headers
            assert response.json()["code"] == "database_unavailable", response.text
