"""One account's expensive lists must not stall the rest of the API.

An account with 100,000 tasks sends deep, searching list requests (`page=999&q=w`, each a scan
of all its tasks) from four clients at once, while a probe times GET /health and a plain list
page in turn. Such lists run on a thread (taskapi/web/policies.py, `heavy_list`), so the worker's
event loop goes on serving everyone else; on the loop, /health stalled 0.7-1.8 s behind them.
"""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
import sqlalchemy as sa

from tests.bench import client, flood
from tests.client_threads import ClientThreads

pytestmark = [pytest.mark.reliability, pytest.mark.live]

TASKS = 100_000
HEAVY = "/api/v1/tasks?page=999&q=w&limit=100"
SECONDS = 6.0
# On the loop these lists held /health back to a p99 of 170 ms here (0.7-1.8 s in the attack
# run); on a thread, 12 ms.
HEALTH_P99_BOUND_MS = 100


class HeavyLists(ClientThreads):
    def __init__(self, base_url: str, token: str, threads: int) -> None:
        super().__init__(threads=threads, pause=0)
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.statuses: Counter[int] = Counter()
        self.elapsed: list[float] = []

    def _run(self, k: int) -> None:
        try:
            with httpx.Client(base_url=self.base_url, timeout=30) as api:
                while not self.stopped:
                    response = api.get(HEAVY, headers=self.headers)
                    self.statuses[response.status_code] += 1
                    self.elapsed.append(response.elapsed.total_seconds() * 1000)
        except BaseException as error:  # reported by ClientThreads at the end
            self.failures.append(error)


def test_deep_searching_lists_of_a_big_account_do_not_stall_the_api(make_server, database, figures):
    server = make_server()
    with client.api_client(server.base_url) as api:
        account = client.register(api, client.Account("big@example.com", "big-password", "Big"))
        token = client.login(api, account)
    engine = sa.create_engine(database)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO tasks (user_id, title, description, status, priority, version,"
                " created_at, updated_at)"
                " SELECT u.id, 'task ' || n, 'words ' || n, 'pending', 'medium', 1, now(), now()"
                " FROM generate_series(1, :n) AS n, users u WHERE u.email = 'big@example.com'"
            ),
            {"n": TASKS},
        )
        conn.execute(sa.text("ANALYZE tasks"))
    engine.dispose()
    probe = flood.Probe(server.base_url, token)
    quiet = probe.run(2.0)
    with HeavyLists(server.base_url, token, threads=4) as heavy:
        during = probe.run(SECONDS)
    health = during["/health"]
    lists = sorted(heavy.elapsed)
    figures(
        f"heavy lists: 4 clients of one account with {TASKS:,} tasks sending {HEAVY} for "
        f"{SECONDS:g} s: {sum(heavy.statuses.values())} answered "
        f"({', '.join(f'{k} x{v}' for k, v in sorted(heavy.statuses.items()))}), each "
        f"p50 {lists[len(lists) // 2]:.0f} ms; /health p99 {quiet['/health']['p99_ms']:.1f} ms "
        f"quiet, {health['p99_ms']:.1f} ms (max {health['max_ms']:.1f}) during "
        f"(bound {HEALTH_P99_BOUND_MS}); GET /api/v1/tasks?limit=20 p99 "
        f"{during['/api/v1/tasks?limit=20']['p99_ms']:.1f} ms during"
    )
    assert set(heavy.statuses) == {200}, heavy.statuses
    assert health["errors"] == 0
    assert health["p99_ms"] < HEALTH_P99_BOUND_MS
