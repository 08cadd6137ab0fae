"""Expired rows are deleted on a timer, whether or not their owner ever comes back."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from taskapi.cli import main
from taskapi.ops import housekeeping
from taskapi.storage import migrate
from taskapi.storage.db import Database
from taskapi.storage.schema import (
    IDEMPOTENCY_KEYS,
    PERSONAL_ACCESS_TOKENS,
    REFRESH_TOKENS,
    REVOKED_ACCESS_TOKENS,
    utcnow,
)
from tests.conftest import JWT_SECRET, base_settings, services_of


def counts(db):
    with db.reading() as c:
        return {
            table.name: c.scalar(sa.select(sa.func.count()).select_from(table))
            for table in (
                REFRESH_TOKENS,
                IDEMPOTENCY_KEYS,
                REVOKED_ACCESS_TOKENS,
                PERSONAL_ACCESS_TOKENS,
            )
        }


@pytest.fixture
def abandoned(api, auth, services):
    """An account that refreshed, logged out, sent keyed creates and made a personal access
    token that expires at once, then never came back."""
    email = api.register("gone@example.com").json()["data"]["email"]
    session = api.login(email).json()["data"]
    token = session["refresh_token"]
    for _ in range(20):
        token = api.client.post("/api/v1/auth/refresh", json={"refresh_token": token}).json()[
            "data"
        ]["refresh_token"]
    pat = {"name": "one second", "scopes": ["tasks:read"], "expires_in": 1}
    assert api.client.post("/api/v1/auth/tokens", json=pat, headers=auth).status_code == 201
    keyed = {**auth, "Idempotency-Key": "k-1"}
    assert api.client.post("/api/v1/tasks", json={"title": "t"}, headers=keyed).status_code == 201
    logout = api.client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": token},
        headers={"Authorization": f"Bearer {session['token']}"},
    )
    assert logout.status_code == 204
    return services.db


def test_nothing_is_purged_before_it_expires(abandoned):
    before = counts(abandoned)
    assert before["refresh_tokens"] >= 21
    assert housekeeping.purge(abandoned) == dict.fromkeys(before, 0)
    assert counts(abandoned) == before


def test_a_revoked_session_is_purged_an_hour_after_its_logout(abandoned):
    # The logout revoked the 21 tokens of the session; the auth fixture's login stays.
    later = utcnow() + timedelta(hours=1, minutes=1)
    purged = housekeeping.purge(abandoned, now=later)
    assert purged == {
        "refresh_tokens": 21,
        "idempotency_keys": 0,
        "revoked_access_tokens": 1,
        "personal_access_tokens": 0,
    }
    assert counts(abandoned)["refresh_tokens"] == 1


def test_everything_is_purged_once_it_has_expired(abandoned, settings):
    much_later = utcnow() + timedelta(seconds=settings.refresh_token_ttl + 60)
    housekeeping.purge(abandoned, now=much_later)
    assert counts(abandoned) == dict.fromkeys(counts(abandoned), 0)


def test_purging_goes_in_batches(abandoned, monkeypatch):
    monkeypatch.setattr(housekeeping, "BATCH", 4)
    purged = housekeeping.purge(abandoned, now=utcnow() + timedelta(hours=2))
    assert purged is not None
    assert purged["refresh_tokens"] == 21


def test_every_server_process_purges_on_a_timer(make_app, settings):
    app = make_app(settings, purge_interval=0.05)
    db = services_of(app).db
    with app.test_client() as client:
        body = {"email": "timer@example.com", "password": "password123", "name": "Timer"}
        client.post("/api/v1/auth/register", json=body)
        login = client.post("/api/v1/auth/login", json=body).json()["data"]
        client.post(
            "/api/v1/auth/logout",
            json={"refresh_token": login["refresh_token"]},
            headers={"Authorization": f"Bearer {login['token']}"},
        )
        with db.transaction() as s:  # as if the logout were two hours old
            s.execute(sa.update(REFRESH_TOKENS).values(expires_at=utcnow() - timedelta(hours=1)))
        deadline = time.monotonic() + 5
        while counts(db)["refresh_tokens"] and time.monotonic() < deadline:
            time.sleep(0.05)
    assert counts(db)["refresh_tokens"] == 0


@pytest.mark.postgres
def test_one_process_purges_at_a_time_on_postgresql(create_postgres_database):
    url = create_postgres_database()
    migrate.upgrade(base_settings(url))
    db = Database(base_settings(url))
    try:
        with db.engine.connect() as other:
            other.execute(sa.select(sa.func.pg_advisory_lock(housekeeping.ADVISORY_LOCK)))
            assert housekeeping.purge(db) is None
            other.execute(sa.select(sa.func.pg_advisory_unlock(housekeeping.ADVISORY_LOCK)))
        assert housekeeping.purge(db) == dict.fromkeys(counts(db), 0)
    finally:
        db.dispose()


def test_the_command_purges_once(abandoned, settings, monkeypatch, capsys):
    with abandoned.transaction() as s:
        s.execute(sa.update(IDEMPOTENCY_KEYS).values(expires_at=utcnow() - timedelta(seconds=1)))
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("JWT_SECRET", JWT_SECRET)
    assert main(["db", "purge"]) == 0
    assert capsys.readouterr().out == (
        "expired rows deleted: refresh_tokens 0, idempotency_keys 1, revoked_access_tokens 0, "
        "personal_access_tokens 0, task_tombstones 0\n"
    )
