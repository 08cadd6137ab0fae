"""Reads from a hot standby (DATABASE_READ_URL), with read-your-writes.

A real primary and a real streaming standby (tests/replication.py). Pausing the standby's
replay makes it lag for as long as a test needs: an account's own writes must still be read
back, from the primary, while other accounts keep reading from the standby, and a standby that
lags beyond DB_READ_MAX_LAG, or is gone, is left out.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import redis
from sqlalchemy import make_url

from taskapi.config import ConfigError, Settings
from taskapi.storage import migrate, replicas
from tests.conftest import Api, base_settings, services_of
from tests.replication import ReplicatedPair, replicated_pair

pytestmark = [pytest.mark.postgres]

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def pair(postgres_server: str) -> Iterator[ReplicatedPair]:
    with replicated_pair() as made:
        yield made


@pytest.fixture
def settings(pair: ReplicatedPair) -> Iterator[Settings]:
    """A migrated database of its own on the primary, replicated; reads on the standby."""
    name = f"taskapi_replica_{uuid.uuid4().hex[:10]}"
    pair.primary.sql(f'CREATE DATABASE "{name}"')
    primary = base_settings(pair.primary.url(name))
    migrate.upgrade(primary)
    pair.wait_for_standby()
    yield replace(primary, database_read_url=pair.standby.url(name), db_read_max_lag=2.0)
    pair.resume_replay()
    pair.primary.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def shared_redis() -> Iterator[str]:
    """REDIS_URL, with positions left by other runs cleared (account ids repeat per database)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.skip(f"Redis at {REDIS_URL} is unreachable: {error}")

    def clear() -> None:
        for key in client.scan_iter("taskapi:wal:*"):
            client.delete(key)

    clear()
    yield REDIS_URL
    clear()
    client.close()


def settle(app: Any, pair: ReplicatedPair, timeout: float = 10) -> None:
    """Until `app` has seen its standby replay everything the primary has written."""
    pair.wait_for_standby()
    standby = services_of(app).db.standby
    assert standby is not None
    target = pair.primary_position()
    deadline = time.monotonic() + timeout
    # The first call starts the thread that asks the standby for its position.
    while not (standby.serves(0) and standby.replayed >= target):
        assert time.monotonic() < deadline, "the app never saw the standby catch up"
        time.sleep(0.01)


def standby_reads(app: Any) -> int:
    standby = services_of(app).db.standby
    assert standby is not None
    return standby.reads


def test_an_account_that_has_not_written_lately_reads_from_the_standby(make_app, settings, pair):
    app = make_app(settings)
    with app.test_client() as client:
        api = Api(client)
        auth = api.user()
        task = api.create_task(auth, title="Replicated")
        settle(app, pair)
        # Its last write is now replayed: every read of the account goes to the standby.
        before = standby_reads(app)
        for _ in range(5):
            assert client.get(f"/api/v1/tasks/{task['id']}", headers=auth).status_code == 200
            listed = client.get("/api/v1/tasks", headers=auth).json()["data"]
            assert [t["id"] for t in listed] == [task["id"]]
        # Two reads each: the token's account, then the task or the list.
        assert standby_reads(app) - before == 20
    metrics = services_of(app).metrics.render().decode()
    assert f'taskapi_db_reads_total{{server="standby"}} {float(standby_reads(app))}' in metrics
    assert 'taskapi_db_reads_total{server="primary"}' in metrics


def test_a_client_reads_its_own_writes_while_the_standby_lags(make_app, settings, pair):
    app = make_app(settings)
    with app.test_client() as client:
        api = Api(client)
        auth = api.user()
        pair.wait_for_standby()
        pair.pause_replay()
        created = api.create_task(auth, title="Written while the standby lags")
        before = standby_reads(app)
        # The standby has not replayed the write: the read-back comes from the primary.
        got = client.get(f"/api/v1/tasks/{created['id']}", headers=auth)
        assert got.status_code == 200, got.text
        assert got.json()["data"]["title"] == "Written while the standby lags"
        listed = client.get("/api/v1/tasks", headers=auth).json()["data"]
        assert [t["id"] for t in listed] == [created["id"]]
        patched = client.patch(
            f"/api/v1/tasks/{created['id']}", json={"status": "completed"}, headers=auth
        )
        assert patched.status_code == 200
        got = client.get(f"/api/v1/tasks/{created['id']}", headers=auth)
        assert got.json()["data"]["status"] == "completed"
        assert client.delete(f"/api/v1/tasks/{created['id']}", headers=auth).status_code == 200
        gone = client.get(f"/api/v1/tasks/{created['id']}", headers=auth)
        assert gone.status_code == 404
        assert standby_reads(app) == before
        # Once the standby replays the writes, the account reads from it again.
        pair.resume_replay()
        settle(app, pair)
        assert client.get("/api/v1/tasks", headers=auth).json()["data"] == []
        assert standby_reads(app) > before


def test_other_accounts_keep_reading_from_a_lagging_standby(make_app, settings, pair):
    app = make_app(settings)
    with app.test_client() as client:
        api = Api(client)
        reader, writer = api.user(), api.user()
        api.create_task(reader, title="Old news")
        settle(app, pair)
        pair.pause_replay()
        api.create_task(writer, title="Fresh")
        before = standby_reads(app)
        listed = client.get("/api/v1/tasks", headers=reader)
        assert [t["title"] for t in listed.json()["data"]] == ["Old news"]
        assert standby_reads(app) - before == 2


def test_a_standby_lagging_beyond_the_bound_is_left_out(make_app, settings, pair, monkeypatch):
    monkeypatch.setattr(replicas, "LEFT_OUT_FOR", 0.5)
    monkeypatch.setattr(replicas, "REFRESH_EVERY", 0.05)
    app = make_app(replace(settings, db_read_max_lag=0.3))
    with app.test_client() as client:
        api = Api(client)
        reader, writer = api.user(), api.user()
        settle(app, pair)
        pair.pause_replay()
        api.create_task(writer, title="Not yet replayed")
        _wait(0.6)
        before = standby_reads(app)
        assert client.get("/api/v1/tasks", headers=reader).status_code == 200
        assert standby_reads(app) == before  # left out: the write is older than the bound
        _wait(0.6)  # tried again, and found lagging still
        assert client.get("/api/v1/tasks", headers=reader).status_code == 200
        assert standby_reads(app) == before
        pair.resume_replay()
        pair.wait_for_standby()
        _wait(0.6)
        assert client.get("/api/v1/tasks", headers=reader).status_code == 200
        assert standby_reads(app) > before


def test_a_process_that_does_not_write_still_finds_the_standby_lagging(
    make_app, settings, pair, monkeypatch
):
    """It measures the lag against the primary's position too, asked once a second."""
    monkeypatch.setattr(replicas, "SAMPLE_PRIMARY_EVERY", 0.05)
    writer = make_app(settings)
    reader = make_app(replace(settings, db_read_max_lag=0.3))
    with writer.test_client() as first, reader.test_client() as second:
        api = Api(first)
        auth, other = api.user(), api.user()
        settle(reader, pair)
        pair.pause_replay()
        api.create_task(other, title="Through the writer only")
        _wait(0.8)
        before = standby_reads(reader)
        assert second.get("/api/v1/tasks", headers=auth).status_code == 200
        assert standby_reads(reader) == before


def test_an_idle_primary_does_not_make_the_standby_look_lagging(
    make_app, settings, pair, monkeypatch
):
    """Past a WAL segment switch, the insert position points after the next segment's header,
    which no standby replays while the primary stays idle: positions are where the flushed WAL
    ends."""
    monkeypatch.setattr(replicas, "SAMPLE_PRIMARY_EVERY", 0.05)
    app = make_app(replace(settings, db_read_max_lag=0.3))
    with app.test_client() as client:
        auth = Api(client).user()
        settle(app, pair)
        pair.primary.sql("SELECT pg_switch_wal()")
        _wait(0.8)
        before = standby_reads(app)
        assert client.get("/api/v1/tasks", headers=auth).status_code == 200
        assert standby_reads(app) > before


def test_a_stopped_standby_is_left_out_and_no_request_fails_with_500(make_app, settings, pair):
    app = make_app(settings)
    with app.test_client() as client:
        api = Api(client)
        auth = api.user()
        task = api.create_task(auth)
        settle(app, pair)
        assert client.get(f"/api/v1/tasks/{task['id']}", headers=auth).status_code == 200
        pair.stop_node(pair.standby)
        try:
            responses = [client.get(f"/api/v1/tasks/{task['id']}", headers=auth) for _ in range(10)]
        finally:
            pair.start_node(pair.standby)
        statuses = [r.status_code for r in responses]
        # A pooled connection that breaks mid-read fails that one read, as the primary's would;
        # from then on the standby is left out.
        assert statuses[1:] == [200] * 9, statuses
        assert statuses[0] == 200 or (
            statuses[0] == 503 and "Retry-After" in responses[0].headers
        ), statuses


def test_a_promoted_standby_is_left_out(make_app, postgres_server, monkeypatch):
    """Promoted, it is no copy of the primary any more: a split, not a lag."""
    monkeypatch.setattr(replicas, "REFRESH_EVERY", 0.02)
    with replicated_pair() as own:
        primary = base_settings(own.primary.url())
        migrate.upgrade(primary)
        own.wait_for_standby()
        app = make_app(replace(primary, database_read_url=own.standby.url()))
        with app.test_client() as client:
            reader = Api(client).user()
            settle(app, own)
            before = standby_reads(app)
            assert client.get("/api/v1/tasks", headers=reader).status_code == 200
            assert standby_reads(app) > before
            own.promote_standby()
            _wait(0.3)
            # The reader has not written since: only seeing the promotion keeps it off.
            before = standby_reads(app)
            assert client.get("/api/v1/tasks", headers=reader).status_code == 200
            assert standby_reads(app) == before


def test_a_standby_that_stops_answering_is_not_waited_for(make_app, settings, pair, monkeypatch):
    """Its position is asked by a thread of its own: once the answer is too old, reads go to
    the primary, and no request waits on the standby's silence."""
    monkeypatch.setattr(replicas, "STALE_AFTER", 0.2)
    app = make_app(settings)
    with app.test_client() as client:
        auth = Api(client).user()
        settle(app, pair)
        standby = services_of(app).db.standby
        standby._stopped.set()  # as if its question hung
        _wait(0.4)
        before = standby_reads(app)
        assert client.get("/api/v1/tasks", headers=auth).status_code == 200
        assert standby_reads(app) == before


def test_of_several_hosts_the_one_in_recovery_is_found(make_app, settings, pair, monkeypatch):
    """Whatever the order of the hosts: TaskAPI asks each server, not libpq's login report."""
    monkeypatch.setattr(replicas, "LEFT_OUT_FOR", 0.1)
    database = make_url(settings.database_url).database
    hosts = f"host=127.0.0.1:{pair.primary.port}&host=127.0.0.1:{pair.standby.port}"
    url = f"postgresql+psycopg2://postgres@/{database}?{hosts}&target_session_attrs=any"
    assert len(replicas.standby_urls(url)) == 2
    app = make_app(replace(settings, database_read_url=url))
    with app.test_client() as client:
        auth = Api(client).user()
        settle(app, pair)  # the primary, asked first, is left out; the standby is next
        before = standby_reads(app)
        assert client.get("/api/v1/tasks", headers=auth).status_code == 200
        assert standby_reads(app) > before
        standby = services_of(app).db.standby
        assert standby.engine.url.query["host"] == f"127.0.0.1:{pair.standby.port}"


def test_positions_hold_across_processes_through_redis(make_app, settings, pair, shared_redis):
    """A write through one process and the read through another, as behind a load balancer."""
    one = make_app(replace(settings, redis_url=shared_redis))
    other = make_app(replace(settings, redis_url=shared_redis))
    with one.test_client() as first, other.test_client() as second:
        auth = Api(first).user()
        pair.wait_for_standby()
        pair.pause_replay()
        created = Api(first).create_task(auth, title="Through the first")
        got = second.get(f"/api/v1/tasks/{created['id']}", headers=auth)
        assert got.status_code == 200, got.text
        listed = second.get("/api/v1/tasks", headers=auth).json()["data"]
        assert [t["id"] for t in listed] == [created["id"]]


def test_a_token_refused_by_the_standby_is_checked_on_the_primary(make_app, settings, pair):
    """An account the standby has not seen yet, with nothing to say so (here: a process that
    keeps positions to itself): the standby's refusal is not the last word."""
    writer = make_app(settings)
    reader = make_app(settings)
    with writer.test_client() as first, reader.test_client() as second:
        settle(reader, pair)
        pair.pause_replay()
        auth = Api(first).user()
        before = standby_reads(reader)
        response = second.get("/api/v1/tasks", headers=auth)
        assert response.status_code == 200, response.text
        assert standby_reads(reader) > before  # refused there first


def test_revocations_hold_at_once_while_the_standby_lags(make_app, settings, pair):
    app = make_app(settings)
    with app.test_client() as client:
        api = Api(client)
        auth = api.user()
        made = client.post(
            "/api/v1/auth/tokens", json={"name": "ci", "scopes": ["tasks:read"]}, headers=auth
        )
        assert made.status_code == 201, made.text
        token = {"Authorization": f"Bearer {made.json()['data']['token']}"}
        assert client.get("/api/v1/tasks", headers=token).status_code == 200
        pair.wait_for_standby()
        pair.pause_replay()
        revoked = client.delete(f"/api/v1/auth/tokens/{made.json()['data']['id']}", headers=auth)
        assert revoked.status_code == 204
        assert client.get("/api/v1/tasks", headers=token).status_code == 401
        changed = client.post(
            "/api/v1/auth/password",
            json={"current_password": "password123", "new_password": "another-password-1"},
            headers=auth,
        )
        assert changed.status_code == 200, changed.text
        assert client.get("/api/v1/tasks", headers=auth).status_code == 401


def test_the_setting_is_refused_where_it_cannot_work(tmp_path):
    with pytest.raises(ConfigError, match="PostgreSQL standby"):
        replace(
            base_settings(f"sqlite:///{tmp_path}/db.sqlite"),
            database_read_url="postgresql+psycopg2://db/x",
        )
    with pytest.raises(ConfigError, match="needs REDIS_URL"):
        replace(
            base_settings("postgresql+psycopg2://db/x"),
            database_read_url="postgresql+psycopg2://standby/x",
            workers=2,
        )
    read = Settings.from_env(
        {"DATABASE_URL": "postgres://db/x", "DATABASE_READ_URL": "postgres://standby/x"},
        dotenv=None,
    ).database_read_url
    assert read == "postgresql+psycopg2://standby/x"


def _wait(seconds: float) -> None:
    time.sleep(seconds)
