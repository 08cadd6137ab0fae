"""Only the spec's paths are answered, each operation has a policy, and requests stay lean."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from taskapi.resources import load_spec
from taskapi.web.context import runs_on_thread
from taskapi.web.policies import POLICIES
from taskapi.web.routing import spec_operations
from tests.conftest import assert_problem

WEB = Path(__file__).resolve().parent.parent / "taskapi" / "web"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "//health"),
        ("GET", "//api/v1/tasks"),
        ("POST", "//api/v1/auth/register"),
        ("GET", "/api//v1/tasks"),
        ("GET", "/api/v1/tasks/"),
        ("GET", "/health/"),
        ("GET", "/api/v1/tasks/1/"),
        # A regex's `$` also matches before a final newline: these must not match the route
        # without it, nor slip past the security step into a handler.
        ("GET", "/health%0A"),
        ("GET", "/api/v1/tasks%0A"),
        ("DELETE", "/api/v1/tasks/1%0A"),
        ("GET", "/problems/not_found%0A"),
        ("GET", "/problems/W%C3%B2%0A"),
    ],
)
def test_paths_the_spec_does_not_define_are_404_and_never_redirect(api, auth, method, path):
    response = api.client.request(
        method, path, headers={**auth, "Host": "evil.example"}, follow_redirects=False
    )
    assert_problem(response, 404, "not_found")
    assert "location" not in response.headers


def test_a_near_miss_path_runs_no_handler(api):
    response = api.client.post(
        "//api/v1/auth/register",
        json={"email": "sneaky@example.com", "password": "password123", "name": "Sneaky"},
    )
    assert_problem(response, 404, "not_found")
    assert_problem(api.login("sneaky@example.com"), 401, "invalid_credentials")


def test_a_path_ending_in_a_newline_is_not_routed_around_the_security_step(api):
    assert_problem(api.client.get("/api/v1/tasks%0A"), 404, "not_found")
    assert_problem(api.client.get("/api/v1/auth/me%0A"), 404, "not_found")


def test_every_operation_has_exactly_one_policy():
    assert set(POLICIES) == set(spec_operations(load_spec()))


def test_bcrypt_operations_run_on_a_thread():
    for operation, policy in POLICIES.items():
        if policy.bcrypt:
            assert policy.on_thread, operation


@pytest.mark.parametrize(
    ("query", "heavy"),
    [
        ("", False),
        ("limit=20", False),
        ("status=pending&priority=high&sort=-priority&limit=100&page=11", False),
        ("cursor=abc&limit=100", False),
        ("page=12&limit=100", True),
        ("q=report", True),
        ("due_before=2026-01-01T00:00:00Z", True),
        ("created_after=2026-01-01T00:00:00Z&limit=5", True),
        ("page=x", False),
    ],
)
def test_a_list_that_scans_runs_on_a_thread(query, heavy):
    """A search, a date filter or a deep offset would stall the worker's loop (finding: deep
    `page=999&q=w` lists held /health back 0.7-1.8 s); the index-range lists stay on it."""
    scope = {
        "query_string": query.encode(),
        "extensions": {"connexion_routing": {"operation_id": "listTasks"}},
    }
    assert runs_on_thread(scope) is heavy


def test_only_the_security_step_checks_the_account():
    # Handlers get `user` from bearerAuth (web/caller.py) and cannot forget the check.
    modules = list(WEB.rglob("*.py"))
    assert len(modules) > 20
    checking = [m.relative_to(WEB).as_posix() for m in modules if "owner_of" in m.read_text()]
    assert checking == ["caller.py"]


class Statements:
    """Counts the SQL statements the app sends, on both of its pools."""

    def __init__(self, db) -> None:
        self.counts: Counter[str] = Counter()
        self.engines = [db.engine, db.read_engine]
        for engine in self.engines:
            sa.event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, _conn, _cursor, statement, *_args) -> None:
        self.counts[statement.split(None, 1)[0].upper()] += 1

    def during(self, call) -> int:
        self.counts.clear()
        call()
        return sum(self.counts.values())


@pytest.mark.parametrize(
    ("operation", "most"),
    [
        ("list", 3),
        ("get", 2),
        ("stats", 2),
        # A poll of the change feed with nothing new: the account check and one read.
        ("changes", 2),
        ("create", 2),
        ("update", 2),
        ("patch", 2),
        ("delete", 2),
    ],
)
def test_statements_per_operation_including_the_account_check(services, api, auth, operation, most):
    task = api.create_task(auth)
    url = f"/api/v1/tasks/{task['id']}"
    body = {"title": "t", "status": "completed"}
    calls = {
        "list": lambda: api.client.get("/api/v1/tasks", headers=auth),
        "get": lambda: api.client.get(url, headers=auth),
        "stats": lambda: api.client.get("/api/v1/tasks/stats", headers=auth),
        "changes": lambda: api.client.get(
            "/api/v1/tasks/changes", params={"since": since}, headers=auth
        ),
        "create": lambda: api.client.post("/api/v1/tasks", json=body, headers=auth),
        "update": lambda: api.client.put(url, json=body, headers=auth),
        "patch": lambda: api.client.patch(url, json={"priority": "low"}, headers=auth),
        "delete": lambda: api.client.delete(url, headers=auth),
    }
    since = api.client.get("/api/v1/tasks/changes", headers=auth).json()["meta"]["next_since"]
    statements = Statements(services.db)
    responses = []
    assert statements.during(lambda: responses.append(calls[operation]())) <= most
    assert responses[0].status_code in (200, 201), responses[0].text
