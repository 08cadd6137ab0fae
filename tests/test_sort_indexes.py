"""Every sort of the task list reads its index: no sort of the owner's tasks, on either database.

The timings are the benchmark's (`make bench BENCH_ARGS='--scenarios deep'`); this is the
untimed guard behind them. The list runs through HTTP on a few thousand tasks, and the plan of
each statement it sent is asked of the database: page 1, and cursors on either side of
due_date's NULLs, must each be an index scan in the sort's order, a cursor starting at its
position in the index rather than filtering its way there.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from taskapi.domain.listing import SORTABLE
from taskapi.storage.schema import TASK_PRIORITIES, TASK_STATUSES, TASKS
from tests.conftest import services_of

ROWS = 3000
SORTS = [*SORTABLE, *(f"-{key}" for key in SORTABLE)]
# Where the cursors start: among the tasks with a due date (a quarter of them), and after.
CURSOR_PAGES = (10, 100)
INDEX_OF = {
    "created_at": "ix_tasks_user_id_created_at_id",
    "updated_at": "ix_tasks_user_id_updated_at_id",
    "due_date": "ix_tasks_user_id_due_date_id",
    "-due_date": "ix_tasks_user_id_due_date_desc_id",
    "priority": "ix_tasks_user_id_priority_id",
    "title": "ix_tasks_user_id_title_id",
}


def seed(db, owner_id):
    """ROWS tasks, the deep benchmark's mix in small: sort keys unrelated to each other."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "user_id": owner_id,
            "title": f"{(g * 7919) % ROWS:05d} task {g}",
            "description": "",
            "status": TASK_STATUSES[g % 3],
            "priority": TASK_PRIORITIES[(g // 3) % 3],
            "due_date": start + timedelta(hours=g % 500) if g % 4 == 0 else None,
            "created_at": start + timedelta(seconds=g),
            "updated_at": start + timedelta(seconds=(g * 7919) % 86400),
        }
        for g in range(1, ROWS + 1)
    ]
    with db.transaction() as s:
        s.execute(sa.insert(TASKS), rows)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")


class Recorder:
    """The list statements (SELECT ... FROM tasks ... ORDER BY) the app sends, with parameters."""

    def __init__(self, engine):
        self.engine = engine
        self.statements = []
        sa.event.listen(engine, "before_cursor_execute", self._record)

    def stop(self):
        sa.event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(self, _conn, _cursor, statement, parameters, *_):
        if "FROM tasks" in statement and "ORDER BY" in statement:
            self.statements.append((statement, parameters))


def postgresql_plan(conn, statement, parameters):
    """The plan's nodes, depth first, as dicts."""
    plan = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters).scalar()
    plan = json.loads(plan) if isinstance(plan, str) else plan
    nodes, stack = [], [plan[0]["Plan"]]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node.get("Plans", []))
    return nodes


def check_postgresql(conn, statement, parameters, index, cursor):
    nodes = postgresql_plan(conn, statement, parameters)
    kinds = [node["Node Type"] for node in nodes]
    assert not {"Sort", "Incremental Sort"} & set(kinds), kinds
    scans = [node for node in nodes if "Relation Name" in node]
    assert [scan["Node Type"] for scan in scans] == ["Index Scan"], kinds
    assert scans[0]["Index Name"] == index
    if cursor:  # the cursor's position is where the scan starts, not a filter along the way
        assert "ROW(" in scans[0]["Index Cond"], scans[0]
        assert "Filter" not in scans[0], scans[0]


def check_sqlite(conn, statement, parameters, index, cursor):
    details = [
        row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
    ]
    assert not any("TEMP B-TREE" in detail for detail in details), details
    assert any(f"USING INDEX {index} (user_id=?" in detail for detail in details), details
    if cursor:  # a range from the cursor's key, not the owner's whole range
        assert any(f"USING INDEX {index} (user_id=? AND " in d for d in details), details


def list_page(api, headers, **params):
    response = api.client.get("/api/v1/tasks", params={"limit": 20, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def plans_of_one_sort(api, auth, db, sort):
    """Checks the plans of page 1 and of the cursors for `sort`."""
    cursors = [list_page(api, auth, sort=sort, page=p)["meta"]["next_cursor"] for p in CURSOR_PAGES]
    recorder = Recorder(db.read_engine)
    first = list_page(api, auth, sort=sort)
    for cursor in cursors:
        assert len(list_page(api, auth, cursor=cursor)["data"]) == 20
    recorder.stop()
    assert first["meta"]["total_count"] == ROWS
    assert len(recorder.statements) == 1 + len(cursors)

    index = INDEX_OF.get(sort, INDEX_OF[sort.removeprefix("-")])
    check = check_postgresql if db.dialect == "postgresql" else check_sqlite
    with db.read_engine.connect() as conn:
        for position, (statement, parameters) in enumerate(recorder.statements):
            check(conn, statement, parameters, index, cursor=position > 0)


def test_every_sort_reads_its_index_for_page_one_and_cursors(app, api, auth):
    db = services_of(app).db
    seed(db, api.client.get("/api/v1/auth/me", headers=auth).json()["data"]["id"])
    failures = {}
    for sort in SORTS:  # one seeding for all ten: each failure is named by its sort
        try:
            plans_of_one_sort(api, auth, db, sort)
        except AssertionError as failure:
            failures[sort] = str(failure)
    assert failures == {}
