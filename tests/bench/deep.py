"""`deep`: one user with 1,000,000 tasks, every sort key, the first page and pages deep inside.

The rows are inserted with one INSERT ... SELECT over generate_series, straight into the schema
that `taskapi db upgrade` created (taskapi/storage/schema.py, migrations/versions/): through
the API a million creates would take an hour. The requests go one at a time, so each latency is the
server's own and not a queue's.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import sqlalchemy as sa

from tests.bench import client, postgres
from tests.bench.report import latency_summary

SORT_KEYS = ("created_at", "updated_at", "due_date", "priority", "title")
PAGE_SIZE = 20

# created_at runs one second apart up to now, so it matches id order; updated_at is shuffled
# against it (7919 is prime to 86400), titles sort in no relation to either, and a quarter of the
# tasks have a due date, as in the seed.
INSERT_TASKS = sa.text(
    """
    INSERT INTO tasks (user_id, title, description, status, priority, due_date, version,
                       created_at, updated_at)
    SELECT :user_id,
           initcap(substr(md5(g::text), 1, 10)) || ' task ' || g,
           'Task ' || g || ' of the deep listing benchmark',
           (ARRAY['pending', 'in_progress', 'completed'])[1 + g % 3],
           (ARRAY['low', 'medium', 'high'])[1 + (g / 3) % 3],
           CASE WHEN g % 4 = 0 THEN now() + (g % 10000) * interval '1 hour' END,
           1,
           now() - (:rows - g) * interval '1 second',
           now() - (:rows - g) * interval '1 second'
                 + ((g::bigint * 7919) % 86400) * interval '1 second'
    FROM generate_series(1, :rows) AS g
    """
)


def insert_tasks(database_url: str, *, user_id: int, rows: int) -> float:
    """Insert `rows` tasks for `user_id`, then VACUUM ANALYZE; the seconds it took."""
    started = time.monotonic()
    database = postgres.engine(database_url)
    try:
        with database.begin() as conn:
            conn.execute(INSERT_TASKS, {"user_id": user_id, "rows": rows})
        # Fresh statistics and a visibility map, as a table that has lived a while would have.
        with database.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE tasks"))
    finally:
        database.dispose()
    return time.monotonic() - started


def middle_page(rows: int) -> int:
    """The offset page halfway through the set (25,000 for 1,000,000 tasks)."""
    return max(1, rows // PAGE_SIZE // 2)


class Pager:
    """Timed, sequential GETs of the task list with one token."""

    def __init__(self, api: httpx.Client, token: str) -> None:
        self.api = api
        self.headers = {"Authorization": f"Bearer {token}"}
        self.errors = 0

    def get(self, params: dict[str, Any]) -> tuple[float, dict[str, Any] | None]:
        """(milliseconds, the meta of the page, or None after a failure)."""
        started = time.perf_counter()
        try:
            response = self.api.get("/api/v1/tasks", params=params, headers=self.headers)
        except httpx.TransportError:
            self.errors += 1
            return (time.perf_counter() - started) * 1000, None
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            self.errors += 1
            return elapsed, None
        meta: dict[str, Any] = response.json()["meta"]
        return elapsed, meta

    def repeat(self, params: dict[str, Any], samples: int) -> list[float]:
        return [self.get(params)[0] for _ in range(samples)]

    def walk_cursors(self, start: str, samples: int) -> list[float]:
        """Follow next_cursor from `start`, back to `start` at the end of the set."""
        timings, cursor = [], start
        for _ in range(samples):
            elapsed, meta = self.get({"cursor": cursor, "limit": PAGE_SIZE})
            timings.append(elapsed)
            cursor = (meta or {}).get("next_cursor") or start
        return timings


def measure_sort(
    base_url: str, account: client.Account, sort: str, *, rows: int, samples: int
) -> dict[str, Any]:
    """Page 1, the middle offset page, and cursor pages after it, for one sort."""
    with client.api_client(base_url) as api:
        # A login per sort: all ten together can outlast a 15-minute token on 1,000,000 rows.
        pager = Pager(api, client.login(api, account))
        first = pager.repeat({"sort": sort, "limit": PAGE_SIZE}, samples)
        page = {"sort": sort, "limit": PAGE_SIZE, "page": middle_page(rows)}
        # Offset pages this deep are slow by design; a few samples give their median.
        middle = [pager.get(page) for _ in range(max(1, samples // 10))]
        cursor = next((meta["next_cursor"] for _, meta in middle if meta), None)
        walked = pager.walk_cursors(cursor, samples) if cursor else []
    return {
        "sort": sort,
        "first_page": latency_summary(first),
        "middle_page": latency_summary([elapsed for elapsed, _ in middle]),
        "cursor_pages": latency_summary(walked),
        "errors": pager.errors + (0 if cursor else 1),
    }


FEED_PAGE = 100
# A thousand changes after a client's last sync, in one transaction, spread over the tasks.
CHANGE_TASKS = sa.text(
    """
    UPDATE tasks SET title = title || ' (changed)', version = version + 1
    WHERE user_id = :user_id AND id % (:rows / 1000) = 0
    """
)


def measure_feed(
    base_url: str, database_url: str, account: client.Account, *, rows: int, samples: int
) -> dict[str, Any]:
    """Pages of a full sync from nothing, then the pages of a sync after 1,000 changes."""
    with client.api_client(base_url) as api:
        headers = {"Authorization": f"Bearer {client.login(api, account)}"}

        def page(params: dict[str, Any]) -> tuple[float, dict[str, Any]]:
            started = time.perf_counter()
            response = api.get("/api/v1/tasks/changes", params=params, headers=headers)
            elapsed = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            return elapsed, response.json()

        full: list[float] = []
        params: dict[str, Any] = {"limit": FEED_PAGE}
        for _ in range(samples):
            elapsed, body = page(params)
            full.append(elapsed)
            params = {"limit": FEED_PAGE, "since": body["meta"]["next_since"]}
        # Up to date: the end of the feed, in pages of 1,000 (not timed).
        params = {"limit": 1000}
        while True:
            _, body = page(params)
            params = {"limit": 1000, "since": body["meta"]["next_since"]}
            if not body["meta"]["has_more"]:
                break
        since = body["meta"]["next_since"]
        database = postgres.engine(database_url)
        try:
            with database.begin() as conn:
                conn.execute(CHANGE_TASKS, {"user_id": account.id, "rows": rows})
        finally:
            database.dispose()
        after: list[float] = []
        changed = 0
        params = {"limit": FEED_PAGE, "since": since}
        while True:
            elapsed, body = page(params)
            after.append(elapsed)
            changed += len(body["data"]["tasks"])
            params = {"limit": FEED_PAGE, "since": body["meta"]["next_since"]}
            if not body["meta"]["has_more"]:
                break
    return {
        "page_size": FEED_PAGE,
        "full_sync_pages": latency_summary(full),
        "after_changes": changed,
        "after_changes_pages": latency_summary(after),
    }


def run(base_url: str, database_url: str, *, rows: int, samples: int) -> dict[str, Any]:
    """The whole scenario on a server with an empty database."""
    with client.api_client(base_url) as api:
        account = client.register(
            api, client.Account("bench-deep@example.com", "bench-password-deep", "Bench Deep")
        )
    print(f"   inserting {rows:,} tasks with SQL", flush=True)
    insert_seconds = insert_tasks(database_url, user_id=account.id, rows=rows)
    sorts = []
    for key in SORT_KEYS:
        for sort in (key, f"-{key}"):
            print(f"   sort={sort}", flush=True)
            sorts.append(measure_sort(base_url, account, sort, rows=rows, samples=samples))
    print("   the change feed", flush=True)
    feed = measure_feed(base_url, database_url, account, rows=rows, samples=samples)
    return {
        "feed": feed,
        "rows": rows,
        "samples": samples,
        "middle_page": middle_page(rows),
        "insert_seconds": insert_seconds,
        "sorts": sorts,
    }
