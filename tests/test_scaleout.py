"""Three replicas on one PostgreSQL and one Redis behave as one service.

Each replica is `taskapi serve --workers 1` on a loopback port of its own (tests/fleet.py),
all with the same DATABASE_URL, REDIS_URL and JWT_SECRET: what the Kubernetes Deployment runs,
one pod per process, on one machine. Every guarantee below is one clients get from a single
process; these tests check they still hold when consecutive requests land on different
replicas, when one replica runs the migrations, and when one is killed.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from prometheus_client.parser import text_string_to_metric_families

from taskapi.resources import migrations_path
from tests.change_feed_load import check_sync_under_writers
from tests.conftest import PASSWORD, assert_problem
from tests.fleet import (
    Fleet,
    Load,
    Outcome,
    environment,
    flush_redis,
    require_redis,
    taskapi_command,
)

pytestmark = [pytest.mark.scaleout, pytest.mark.live, pytest.mark.postgres]


@pytest.fixture(scope="module")
def figures(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """Lines to print after the module's tests: what was sent, killed and found."""
    lines: list[str] = []
    yield lines
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is None or capture is None or not lines:
        return
    with capture.global_and_fixture_disabled():  # past pytest's capture, as `-s` would be
        reporter.write_sep("-", "scale-out: 3 replicas, one PostgreSQL, one Redis")
        for line in lines:
            reporter.write_line(line)


@pytest.fixture(scope="module")
def database(create_postgres_database: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh PostgreSQL database, migrated by `taskapi db upgrade` as a release does."""
    require_redis()
    url: str = create_postgres_database()
    result = subprocess.run(
        [*taskapi_command(), "db", "upgrade"],
        cwd=tmp_path_factory.mktemp("migrate"),
        env=environment(url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return url


@pytest.fixture(scope="module")
def sql(database: str) -> Iterator[sa.Engine]:
    """Direct SQL on the replicas' database, to check what they committed."""
    engine = sa.create_engine(database, poolclass=sa.NullPool)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def fleet(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    flush_redis()
    with Fleet(database, tmp_path_factory.mktemp("fleet")) as replicas:
        yield replicas


@dataclass(frozen=True)
class Session:
    email: str
    user_id: int
    token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def sign_up(fleet: Fleet, *, via: int = 0, login_via: int | None = None) -> Session:
    """Register through replica `via`, log in through another one."""
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    body = {"email": email, "password": PASSWORD, "name": "Replica User"}
    registered = fleet.clients[via].post("/api/v1/auth/register", json=body)
    assert registered.status_code == 201, registered.text
    logged_in = login(fleet, email, via=(via + 1) % len(fleet) if login_via is None else login_via)
    assert logged_in.status_code == 200, logged_in.text
    return session_of(logged_in)


def login(fleet: Fleet, email: str, *, via: int) -> httpx.Response:
    body = {"email": email, "password": PASSWORD}
    return fleet.clients[via].post("/api/v1/auth/login", json=body)


def session_of(response: httpx.Response) -> Session:
    data = response.json()["data"]
    return Session(data["user"]["email"], data["user"]["id"], data["token"], data["refresh_token"])


def refresh(fleet: Fleet, token: str, *, via: int) -> httpx.Response:
    return fleet.clients[via].post("/api/v1/auth/refresh", json={"refresh_token": token})


def test_an_account_made_through_one_replica_is_everyones(fleet):
    session = sign_up(fleet, via=0, login_via=1)
    assert login(fleet, session.email, via=2).status_code == 200
    created = fleet.clients[1].post("/api/v1/tasks", json={"title": "one"}, headers=session.headers)
    assert created.status_code == 201
    for client in fleet.clients:
        listed = client.get("/api/v1/tasks", headers=session.headers).json()
        assert [t["id"] for t in listed["data"]] == [created.json()["data"]["id"]]
    # The email is unique across replicas too: three sign-ups at once, one on each, one wins.
    body = {
        "email": f"race-{uuid.uuid4().hex[:8]}@example.com",
        "password": PASSWORD,
        "name": "Racer",
    }
    with ThreadPoolExecutor(max_workers=len(fleet)) as pool:
        answers = list(
            pool.map(lambda c: c.post("/api/v1/auth/register", json=body), fleet.clients)
        )
    assert sorted(a.status_code for a in answers) == [201, 409, 409]


def test_a_used_refresh_token_is_refused_everywhere_and_its_reuse_ends_the_session(fleet):
    """A theft played across replicas: the owner refreshes through one, the thief replays the
    same refresh token through the others; both lose access everywhere at once."""
    session = sign_up(fleet)
    renewed = refresh(fleet, session.refresh_token, via=0)
    assert renewed.status_code == 200
    successor = session_of(renewed)
    for client in fleet.clients:
        assert client.get("/api/v1/auth/me", headers=successor.headers).status_code == 200
    # The used token is refused by the other replicas; presenting it is a replay...
    for via in (1, 2):
        assert_problem(refresh(fleet, session.refresh_token, via=via), 401, "invalid_refresh_token")
    # ...which ends the whole session on every replica: its refresh tokens, and its access
    # tokens, the owner's new one and the first one alike, without waiting for them to expire.
    for via, client in enumerate(fleet.clients):
        assert_problem(refresh(fleet, successor.refresh_token, via=via), 401)
        for ended in (successor, session):
            assert_problem(client.get("/api/v1/auth/me", headers=ended.headers), 401)


def test_a_logout_through_one_replica_is_honoured_by_all(fleet):
    session = sign_up(fleet)
    for client in fleet.clients:
        assert client.get("/api/v1/auth/me", headers=session.headers).status_code == 200
    body = {"refresh_token": session.refresh_token}
    logout = fleet.clients[1].post("/api/v1/auth/logout", json=body, headers=session.headers)
    assert logout.status_code == 204
    for via, client in enumerate(fleet.clients):
        assert_problem(client.get("/api/v1/auth/me", headers=session.headers), 401, "invalid_token")
        assert_problem(refresh(fleet, session.refresh_token, via=via), 401)


def test_a_personal_access_token_revoked_through_one_replica_is_refused_by_all(fleet):
    session = sign_up(fleet)
    grant = {"name": "script", "scopes": ["tasks:read"]}
    created = fleet.clients[0].post("/api/v1/auth/tokens", json=grant, headers=session.headers)
    assert created.status_code == 201
    token = {"Authorization": f"Bearer {created.json()['data']['token']}"}
    for client in fleet.clients:
        assert client.get("/api/v1/tasks", headers=token).status_code == 200
    revoke = fleet.clients[2].delete(
        f"/api/v1/auth/tokens/{created.json()['data']['id']}", headers=session.headers
    )
    assert revoke.status_code == 204
    for client in fleet.clients:
        assert_problem(client.get("/api/v1/tasks", headers=token), 401, "invalid_token")


def test_an_idempotency_key_retried_on_another_replica_replays(fleet, sql):
    session = sign_up(fleet)
    key = {"Idempotency-Key": str(uuid.uuid4()), **session.headers}
    body = {"title": "Pay the invoice"}
    first = fleet.clients[0].post("/api/v1/tasks", json=body, headers=key)
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    for client in fleet.clients[1:]:
        retry = client.post("/api/v1/tasks", json=body, headers=key)
        assert retry.status_code == 201
        assert retry.headers["idempotent-replayed"] == "true"
        assert retry.json() == first.json()
        assert retry.headers["location"] == first.headers["location"]
        assert retry.headers["etag"] == first.headers["etag"]
    assert_problem(
        fleet.clients[2].post("/api/v1/tasks", json={"title": "other"}, headers=key), 422
    )

    # The same key sent to all three at once: one runs it, the others replay it or are told
    # it is still running (409); never a second task.
    racing = {"Idempotency-Key": str(uuid.uuid4()), **session.headers}
    start = threading.Barrier(len(fleet))

    def send(client: httpx.Client) -> httpx.Response:
        start.wait()
        return client.post("/api/v1/tasks", json={"title": "Raced"}, headers=racing)

    with ThreadPoolExecutor(max_workers=len(fleet)) as pool:
        answers = list(pool.map(send, fleet.clients))
    ran = [a for a in answers if a.status_code == 201 and "idempotent-replayed" not in a.headers]
    assert len(ran) == 1, [(a.status_code, a.text) for a in answers]
    assert all(a.status_code in (201, 409) for a in answers)
    with sql.connect() as conn:
        titles = conn.execute(
            sa.text("SELECT title FROM tasks WHERE user_id = :u"), {"u": session.user_id}
        ).scalars()
        assert sorted(titles) == ["Pay the invoice", "Raced"]


def login_statuses(fleet: Fleet, emails: list[str], *, spread: bool) -> list[tuple[int, str]]:
    """Wrong-password logins, all to replica 0 or round-robin; (status, RateLimit-Remaining)."""
    flush_redis()  # each run starts from full budgets
    answers = []
    for n, email in enumerate(emails):
        client = fleet.clients[n % len(fleet) if spread else 0]
        response = client.post(
            "/api/v1/auth/login", json={"email": email, "password": "wrong-1234"}
        )
        answers.append((response.status_code, response.headers["ratelimit-remaining"]))
    return answers


def rate_limited_count(metrics: str) -> int:
    """The 429s a replica's /metrics listener reports."""
    for family in text_string_to_metric_families(metrics):
        if family.name == "taskapi_rate_limited":
            return int(sum(s.value for s in family.samples if s.name.endswith("_total")))
    return 0


def test_the_rate_limit_is_one_budget_across_replicas(database, tmp_path, figures):
    # Per-process budgets would let round-robin through three times as many: 9 logins
    # spread over 3 replicas are 3 each, under the IP budget of 6; 6 for one email are 2 each.
    with Fleet(
        database, tmp_path, RATE_LIMIT_AUTH="6/minute", RATE_LIMIT_AUTH_EMAIL="3/minute"
    ) as limited:
        per_ip = [f"nobody{n}@example.com" for n in range(9)]
        to_one = login_statuses(limited, per_ip, spread=False)
        spread = login_statuses(limited, per_ip, spread=True)
        assert [status for status, _ in to_one] == [401] * 6 + [429] * 3
        assert spread == to_one

        per_email = ["jane@example.com"] * 6
        to_one_email = login_statuses(limited, per_email, spread=False)
        spread_email = login_statuses(limited, per_email, spread=True)
        assert [status for status, _ in to_one_email] == [401] * 3 + [429] * 3
        assert spread_email == to_one_email

        # Metrics stay per process: each replica counted the 429s it answered itself.
        counted = [rate_limited_count(r.metrics()) for r in limited.replicas]
    assert counted == [3 + 1 + 3 + 1, 1 + 1, 1 + 1]
    figures.append(
        f"rate limit: 9 logins (IP budget 6) and 6 for one email (budget 3), to one replica "
        f"and round-robin: first 429 at #7 and #4 both ways; 429s counted per replica {counted}"
    )


def test_db_upgrade_while_replicas_serve_breaks_no_request(fleet, database, sql, tmp_path, figures):
    session = sign_up(fleet)
    task = fleet.clients[0].post("/api/v1/tasks", json={"title": "shared"}, headers=session.headers)
    url = task.headers["location"]

    def mixed(client: httpx.Client, k: int, n: int) -> httpx.Response:
        step = n % 4
        if step == 0:
            return client.post(
                "/api/v1/tasks", json={"title": f"u{k}-{n}"}, headers=session.headers
            )
        if step == 1:
            return client.get(url, headers=session.headers)
        if step == 2:
            return client.patch(url, json={"priority": "high"}, headers=session.headers)
        return client.get("/api/v1/tasks?limit=5", headers=session.headers)

    with Load(fleet, mixed) as load:
        load.wait_for(lambda outcomes: len(outcomes) >= 30)
        began = time.monotonic()
        upgrade = subprocess.run(
            [*taskapi_command(), "db", "upgrade"],
            cwd=tmp_path,
            env=environment(database),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        finished = time.monotonic()
        load.wait_for(lambda outcomes: sum(o.started > finished for o in outcomes) >= 30)
    assert upgrade.returncode == 0, upgrade.stderr
    during = [o for o in load.outcomes if o.ended > began and o.started < finished]
    assert len(during) >= 10
    failed = [o for o in load.outcomes if o.status is None or not 200 <= o.status < 300]
    assert failed == []
    head = ScriptDirectory(str(migrations_path())).get_current_head()
    with sql.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == head
    figures.append(
        f"db upgrade under load: {len(load.outcomes)} requests, {len(during)} while "
        f"`taskapi db upgrade` ran ({finished - began:.1f} s), non-2xx or socket errors: "
        f"{len(failed)}"
    )


def test_a_replica_killed_mid_load_loses_no_acknowledged_write(fleet, sql, figures):
    sessions = [sign_up(fleet, via=k) for k in range(len(fleet))]  # one account per client
    victim = 1

    def create(client: httpx.Client, k: int, n: int) -> httpx.Response:
        body = {"title": f"load {k}-{n}"}
        return client.post("/api/v1/tasks", json=body, headers=sessions[k].headers)

    def acknowledged_by(replica: int, outcomes: list[Outcome]) -> int:
        return sum(o.replica == replica and o.status == 201 for o in outcomes)

    with Load(fleet, create) as load:
        load.wait_for(lambda outcomes: acknowledged_by(victim, outcomes) >= 20)
        fleet.replicas[victim].kill()
        killed_at = time.monotonic()  # the process is gone: nothing started later reaches it
        load.wait_for(
            lambda outcomes: (
                sum(o.started > killed_at and o.replica == victim for o in outcomes) >= 20
            )
        )
    outcomes = load.outcomes
    at_victim = [o for o in outcomes if o.replica == victim]
    after_kill = [o for o in at_victim if o.started > killed_at]
    cut_off = [o for o in at_victim if o.started <= killed_at and o.status is None]
    # A killed replica answers nothing: requests to it fail at the socket, never with a status.
    assert all(o.status is None for o in after_kill)
    assert all(o.status in (201, None) for o in at_victim)
    # The others never stopped answering.
    survivors = [o for o in outcomes if o.replica != victim]
    assert Counter(o.status for o in survivors) == {201: len(survivors)}

    acknowledged = {o.body["data"]["id"]: o.body["data"]["title"] for o in outcomes if o.status}
    with sql.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT id, title FROM tasks WHERE user_id = ANY(:users)"),
            {"users": [s.user_id for s in sessions]},
        ).all()
    found = dict(rows)
    missing = {i for i in acknowledged if found.get(i) != acknowledged[i]}
    assert missing == set()
    # Rows nobody was told about can only be the requests the kill cut off mid-flight.
    unacknowledged = set(found) - set(acknowledged)
    assert len(unacknowledged) <= len(cut_off)

    # A replacement on the same port serves every acknowledged write.
    fleet.restart(victim)
    listed = sum(
        fleet.clients[victim]
        .get("/api/v1/tasks?limit=1", headers=s.headers)
        .json()["meta"]["total_count"]
        for s in sessions
    )
    assert listed == len(found)
    figures.append(
        f"SIGKILL mid-load: {len(outcomes)} creates over 3 replicas, 1 replica killed; "
        f"acknowledged {len(acknowledged)} (by the killed one before the kill: "
        f"{acknowledged_by(victim, outcomes)}), found {len(acknowledged) - len(missing)} of "
        f"them, committed but unacknowledged {len(unacknowledged)}; socket failures at the "
        f"killed replica {len(after_kill) + len(cut_off)} ({len(cut_off)} cut off mid-flight), "
        f"non-201 from the others 0 of {len(survivors)}"
    )


def test_a_client_syncing_through_every_replica_misses_no_write_made_through_any(fleet):
    """The change feed's guarantee (tests/test_changes_live.py) with the writers spread over
    the replicas and the syncing client asking each replica in turn."""
    check_sync_under_writers([str(client.base_url).rstrip("/") for client in fleet.clients])
