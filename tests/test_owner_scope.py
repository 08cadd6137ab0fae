"""Every statement a task operation sends to `tasks`, `task_counts` or `idempotency_keys` names
its owner.

Each such statement carries a top-level `user_id = <the caller's id>` condition (for an
INSERT, the user_id column with the caller's id), whatever the filters, sort, cursor or
precondition. Besides keeping users apart, that is what a distributed PostgreSQL needs to
send a statement to the one shard that holds the owner's rows (Citus with those tables
distributed by user_id; docs/deploying.md, "Beyond one PostgreSQL"). The statements are
recorded as the app sends them, through both pools, and parsed here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from taskapi.domain.listing import SORTABLE
from taskapi.resources import load_spec
from taskapi.storage.db import Database
from taskapi.web.context import Services
from taskapi.web.routing import spec_operations

SCOPED_TABLES = ("tasks", "task_counts", "idempotency_keys")
TABLE_REFERENCE = re.compile(r'\b(?:FROM|JOIN|UPDATE|INTO)\s+"?(\w+)"?', re.I)
INSERT = re.compile(r'\s*INSERT\s+INTO\s+"?(\w+)"?\s*\(([^)]*)\)', re.I)
WHERE = re.compile(r"\bWHERE\b", re.I)
WHERE_ENDS = re.compile(
    r"\b(?:ORDER\s+BY|GROUP\s+BY|HAVING|LIMIT|OFFSET|RETURNING|FOR\s+UPDATE)\b", re.I
)
AND, OR = re.compile(r"\bAND\b", re.I), re.compile(r"\bOR\b", re.I)
OWNER = re.compile(r'(?:"?(\w+)"?\.)?"?user_id"?\s*=\s*(%\((\w+)\)s|\?)')
MASK = "#"


@dataclass(frozen=True)
class Statement:
    operation: str
    owner: int
    sql: str
    parameters: Any


def masked(sql: str, *, parentheses: bool) -> str:
    """`sql`, same length, with quoted text (and everything in parentheses, if asked) masked."""
    out, depth, quote = [], 0, ""
    for ch in sql:
        if quote:
            quote = "" if ch == quote else quote
            out.append(MASK)
        elif ch in "'\"":
            quote = ch
            out.append(MASK)
        elif parentheses and ch in "()":
            depth += 1 if ch == "(" else -1
            out.append(MASK)
        else:
            out.append(MASK if depth else ch)
    return "".join(out)


def scoped_tables(sql: str) -> set[str]:
    """The scoped tables `sql` reads or writes."""
    return {name.lower() for name in TABLE_REFERENCE.findall(sql)} & set(SCOPED_TABLES)


def rows_of(parameters: Any) -> list[Any]:
    return list(parameters) if isinstance(parameters, list) else [parameters]


def value_at(sql: str, placeholder: re.Match[str], row: Any) -> Any:
    """The value bound to `placeholder` (a `%(name)s` or a `?`) in one row of parameters."""
    if placeholder.group(3):
        return row[placeholder.group(3)]
    return row[masked(sql, parentheses=False)[: placeholder.start(2)].count("?")]


def unscoped(statement: Statement) -> str | None:
    """Why `statement` is not confined to its owner's rows of a scoped table, or None."""
    sql, owner = statement.sql, statement.owner
    tables = scoped_tables(sql)
    if not tables:
        return None
    top = masked(sql, parentheses=True)
    if scoped_tables(top) != tables:
        return "a scoped table inside parentheses (a subquery or CTE): this check cannot vouch"
    if len(tables) > 1:
        return f"more than one scoped table in one statement: {sorted(tables)}"
    (table,) = tables
    insert = INSERT.match(sql)
    if insert:
        columns = [c.strip().strip('"') for c in insert.group(2).split(",")]
        if "user_id" not in columns:
            return "an INSERT without the user_id column"
        values = []
        for row in rows_of(statement.parameters):
            if isinstance(row, dict):
                values += [v for k, v in row.items() if re.fullmatch(r"user_id(__\d+)?", k)]
            else:
                values += list(row[columns.index("user_id") :: len(columns)])
        return None if values and set(values) == {owner} else f"user_id values {values}"
    where = WHERE.search(top)
    if where is None:
        return "no WHERE clause"
    end = WHERE_ENDS.search(top, where.end())
    stop = end.start() if end else len(top)
    if OR.search(top, where.end(), stop):
        return "an OR at the top of the WHERE clause"
    bounds = [where.end(), *(m.start() for m in AND.finditer(top, where.end(), stop))]
    for start, finish in zip(bounds, [*bounds[1:], stop], strict=True):
        start += 3 if top[start : start + 3].upper() == "AND" else 0
        segment = sql[start:finish]
        start += len(segment) - len(segment.lstrip())
        finish -= len(segment) - len(segment.rstrip())
        condition = OWNER.fullmatch(sql, start, finish)
        if condition and condition.group(1) in (None, table):
            values = {value_at(sql, condition, row) for row in rows_of(statement.parameters)}
            return None if values == {owner} else f"user_id bound to {values}, not {owner}"
    return f"no top-level `{table}.user_id = ?` condition"


# The change feed reads tasks and tombstones in one statement, each in a subquery of its own
# (SQLite) or in the function task_changes() (PostgreSQL), which this parser cannot vouch
# for at the top level. Each branch is scoped by the owner, and the owner is what a shard
# would route by (a Citus function distributed by its first argument): checked by value.
FEED = "getTaskChanges"


def reads_the_feed(sql: str) -> bool:
    return "task_changes(" in sql or "task_tombstones" in sql or bool(scoped_tables(sql))


def feed_scoped(statement: Statement) -> bool:
    """Every user_id in the feed's statement is bound to its owner, and so is the function's
    first argument."""
    sql, row = statement.sql, rows_of(statement.parameters)[0]
    if "task_changes(" in sql:
        return bool(row["owner_id"] == statement.owner)
    owners = [value_at(sql, m, row) for m in OWNER.finditer(sql)]
    return bool(owners) and set(owners) == {statement.owner}


class Recorder:
    """The statements the app sends on both pools, each tagged with the request's caller."""

    def __init__(self, db: Database) -> None:
        self.statements: list[Statement] = []
        # Answers other than the expected ones, checked after the statements.
        self.unexpected: list[str] = []
        self._caller: tuple[str, int] | None = None
        for engine in (db.engine, db.read_engine):
            sa.event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, sql: str, parameters: Any, *_: Any) -> None:
        if self._caller is not None:
            self.statements.append(Statement(*self._caller, sql, parameters))

    def call(self, operation: str, owner: int, send: Callable[[], Any], status: int) -> Any:
        self._caller = (operation, owner)
        try:
            response = send()
        finally:
            self._caller = None
        if response.status_code != status:
            self.unexpected.append(f"{operation}: {response.status_code}, not {status}")
        return response


def task_operations() -> set[str]:
    return {op for op, (_, _, o) in spec_operations(load_spec()).items() if "tasks" in o["tags"]}


def every_task_operation(
    api: Any, record: Recorder, me: dict[str, str], owner: int, foreign: int | None
) -> int:
    """Each task operation, with every filter, sort, cursor and precondition variant, and
    on `foreign` (another user's task) when given; returns the id of a task it keeps."""
    client = api.client

    def do(operation: str, method: str, url: str, status: int, **kwargs: Any) -> Any:
        kwargs["headers"] = {**me, **kwargs.get("headers", {})}
        send = lambda: client.request(method, url, **kwargs)  # noqa: E731
        return record.call(operation, owner, send, status)

    batch = [
        {"title": "Write the report", "priority": "high", "due_date": "2026-12-31T17:00:00Z"},
        {"title": "Buy milk", "priority": "low", "status": "completed"},
        {"title": "100% done_ish", "description": "odd characters", "status": "in_progress"},
        {"title": "Plan", "due_date": "2026-06-01T09:00:00Z"},
        {"title": "Review", "priority": "high"},
    ]
    created = do("createTaskBatch", "POST", "/api/v1/tasks/batch", 201, json={"tasks": batch})
    kept = created.json()["data"][0]
    keyed = {"headers": {"Idempotency-Key": "batch-1"}, "json": {"tasks": batch[:2]}}
    do("createTaskBatch", "POST", "/api/v1/tasks/batch", 201, **keyed)
    do("createTaskBatch", "POST", "/api/v1/tasks/batch", 201, **keyed)  # replayed
    task = do("createTask", "POST", "/api/v1/tasks", 201, json={"title": "T"}).json()["data"]
    keyed = {"headers": {"Idempotency-Key": "one-1"}, "json": {"title": "Keyed"}}
    do("createTask", "POST", "/api/v1/tasks", 201, **keyed)
    do("createTask", "POST", "/api/v1/tasks", 201, **keyed)  # replayed
    do("createTask", "POST", "/api/v1/tasks", 422, headers=keyed["headers"], json={"title": "X"})

    filters = [
        "status=pending",
        "priority=high",
        "q=report",
        "q=100%25_",
        "due_before=2026-07-01T00:00:00Z",
        "due_after=2026-07-01T00:00:00Z",
        "created_before=2030-01-01T00:00:00Z",
        "created_after=2020-01-01T00:00:00Z",
        "status=pending&priority=high&q=r&due_after=2020-01-01T00:00:00Z"
        "&due_before=2030-01-01T00:00:00Z&created_after=2020-01-01T00:00:00Z"
        "&created_before=2030-01-01T00:00:00Z",
    ]
    for query in ["", "page=2&limit=3", "page=9", *filters]:
        do("listTasks", "GET", f"/api/v1/tasks?{query}", 200)
    do("listTasks", "HEAD", "/api/v1/tasks?status=completed", 200)
    for sort in [*SORTABLE, *(f"-{key}" for key in SORTABLE)]:
        cursor = do("listTasks", "GET", f"/api/v1/tasks?sort={sort}&limit=3", 200)
        cursor = cursor.json()["meta"]["next_cursor"]
        while cursor:  # every page, so due_date reaches the tasks without one
            page = do("listTasks", "GET", f"/api/v1/tasks?limit=3&cursor={cursor}", 200)
            cursor = page.json()["meta"]["next_cursor"]
    do("listTasks", "GET", "/api/v1/tasks?limit=2&status=pending&q=e&sort=title", 200)
    since = do("getTaskChanges", "GET", "/api/v1/tasks/changes?limit=2", 200)
    while since.json()["meta"]["has_more"]:
        token = since.json()["meta"]["next_since"]
        since = do("getTaskChanges", "GET", f"/api/v1/tasks/changes?limit=2&since={token}", 200)
    do("getTaskStats", "GET", "/api/v1/tasks/stats", 200)  # one of the tasks is overdue
    do("getTaskStats", "HEAD", "/api/v1/tasks/stats", 200)

    url = f"/api/v1/tasks/{task['id']}"
    etag = do("getTask", "GET", url, 200).headers["etag"]
    do("getTask", "GET", url, 304, headers={"If-None-Match": etag})
    do("getTask", "HEAD", url, 200)
    do("getTask", "GET", "/api/v1/tasks/999999", 404)
    stale = {"If-Match": f'"{task["id"]}-999"'}
    body = {"title": "Replaced", "status": "completed"}
    do("updateTask", "PUT", url, 200, json=body)
    do("updateTask", "PUT", url, 412, json=body, headers=stale)
    etag = do("updateTask", "PUT", url, 200, json=body, headers={"If-Match": "*"}).headers["etag"]
    etag = do("updateTask", "PUT", url, 200, json=body, headers={"If-Match": etag}).headers["etag"]
    do("updateTask", "PUT", "/api/v1/tasks/999999", 404, json=body)
    do("patchTask", "PATCH", url, 200, json={"priority": "low", "due_date": None})
    do("patchTask", "PATCH", url, 200, json={})  # an empty patch reads instead of writing
    do("patchTask", "PATCH", url, 412, json={}, headers=stale)
    do("patchTask", "PATCH", url, 412, json={"title": "Nope"}, headers=stale)
    etag = do("patchTask", "PATCH", url, 200, json={"title": "P"}).headers["etag"]
    do("patchTask", "PATCH", url, 200, json={"title": "Q"}, headers={"If-Match": etag})
    do("patchTask", "PATCH", "/api/v1/tasks/999999", 404, json={"title": "Gone"})
    do("deleteTask", "DELETE", url, 412, headers=stale)
    do("deleteTask", "DELETE", url, 200, headers={"If-Match": "*"})
    do("deleteTask", "DELETE", url, 404)
    other = do("createTask", "POST", "/api/v1/tasks", 201, json={"title": "D"}).json()["data"]
    do("deleteTask", "DELETE", f"/api/v1/tasks/{other['id']}", 200)
    if foreign is not None:  # someone else's task is missing, as far as the caller can tell
        theirs = f"/api/v1/tasks/{foreign}"
        do("getTask", "GET", theirs, 404)
        do("updateTask", "PUT", theirs, 404, json=body)
        do("updateTask", "PUT", theirs, 404, json=body, headers={"If-Match": f'"{foreign}-1"'})
        do("patchTask", "PATCH", theirs, 404, json={"title": "Mine"})
        do("patchTask", "PATCH", theirs, 404, json={})
        do("deleteTask", "DELETE", theirs, 404, headers={"If-Match": f'"{foreign}-1"'})
        do("deleteTask", "DELETE", theirs, 404)
    return int(kept["id"])


@pytest.fixture
def record(services: Services) -> Recorder:
    return Recorder(services.db)


def test_every_task_statement_is_scoped_by_its_owner(api, record):
    foreign = None
    # Two users, the second also trying the first one's task: a user_id bound to anyone but
    # the caller shows.
    for email in ("jane@example.com", "john@example.com"):
        headers = api.user(email)
        owner = api.client.get("/api/v1/auth/me", headers=headers).json()["data"]["id"]
        foreign = every_task_operation(api, record, headers, owner, foreign)

    checked = [s for s in record.statements if scoped_tables(s.sql) and s.operation != FEED]
    reasons = [f"{s.operation}: {why}\n  {s.sql}" for s in checked if (why := unscoped(s))]
    assert not reasons, "\n".join(reasons)
    assert record.unexpected == []
    feed = [s for s in record.statements if s.operation == FEED and reads_the_feed(s.sql)]
    assert feed
    assert [s.sql for s in feed if not feed_scoped(s)] == []
    # Every task operation ran, and reached the tasks table, in every variant above.
    reached = {s.operation for s in checked if "tasks" in scoped_tables(s.sql)} | {FEED}
    assert reached == task_operations()
    assert {s.operation for s in checked if "task_counts" in scoped_tables(s.sql)} == {"listTasks"}


@pytest.mark.parametrize(
    ("sql", "parameters", "why"),
    [
        ("SELECT tasks.id FROM tasks WHERE tasks.id = ? AND tasks.user_id = ?", (1, 7), None),
        ("SELECT id FROM tasks WHERE user_id = %(u)s LIMIT 1", {"u": 7}, None),
        ("SELECT 1 FROM tasks WHERE tasks.title <> '?' AND tasks.user_id = ?", (7,), None),
        ("INSERT INTO tasks (user_id, title) VALUES (?, ?), (?, ?)", (7, "a", 7, "b"), None),
        ("SELECT users.id FROM users WHERE users.email = ?", ("a@b.c",), None),
        ("SELECT tasks.id FROM tasks WHERE tasks.id = ? AND tasks.user_id = ?", (1, 8), "bound"),
        ("SELECT tasks.id FROM tasks WHERE tasks.id = ?", (1,), "no top-level"),
        ("SELECT count(*) FROM tasks", (), "no WHERE"),
        ("SELECT * FROM tasks WHERE tasks.user_id = ? OR tasks.id = ?", (7, 1), "an OR"),
        ("SELECT * FROM tasks WHERE (tasks.user_id = ? OR 1 = 1)", (7,), "no top-level"),
        ("SELECT * FROM tasks WHERE tasks.user_id >= ?", (7,), "no top-level"),
        ("SELECT tasks.id FROM tasks JOIN x ON x.id = tasks.id WHERE x.user_id = ?", (7,), "no"),
        ("SELECT 1 FROM users WHERE EXISTS (SELECT 1 FROM tasks WHERE user_id = ?)", (7,), "sub"),
        ("INSERT INTO tasks (title) VALUES (?)", ("a",), "without the user_id column"),
        ("INSERT INTO tasks (user_id, title) VALUES (%(user_id)s, %(t)s)", {"user_id": 8}, "8"),
        ("DELETE FROM idempotency_keys WHERE idempotency_keys.expires_at <= ?", (0,), "no top"),
    ],
)
def test_the_check_refuses_what_a_shard_could_not_route(sql, parameters, why):
    found = unscoped(Statement("test", 7, sql, parameters))
    if why is None:
        assert found is None
    else:
        assert why in (found or ""), found
