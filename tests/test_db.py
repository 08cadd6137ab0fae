"""Connections and transactions: what HTTP tests cannot reach directly."""

from __future__ import annotations

from dataclasses import replace

import pytest
import sqlalchemy as sa

from taskapi.db import Database
from taskapi.models import USERS, utcnow


def new_user(email):
    now = utcnow()
    return sa.insert(USERS).values(
        email=email, name="N", password_hash="x", created_at=now, updated_at=now
    )


def write_then_fail(db, email):
    with db.transaction() as s:
        s.execute(new_user(email))
        raise RuntimeError("after the write")


@pytest.fixture
def one_connection_db(settings):
    db = Database(replace(settings, db_max_open_conns=2, db_max_idle_conns=2))
    yield db
    db.dispose()


def test_a_failed_transaction_commits_nothing(one_connection_db):
    with pytest.raises(RuntimeError):
        write_then_fail(one_connection_db, "a@example.com")
    with one_connection_db.reading() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(USERS)) == 0


def insert_in_a_read_block(db):
    with db.reading() as c:
        c.execute(sa.insert(USERS).values(email="core@example.com", name="N", password_hash="x"))


def test_a_read_block_refuses_writes_on_both_databases(one_connection_db):
    # The connection itself refuses them, whatever code reaches it.
    with pytest.raises(sa.exc.DBAPIError, match=r"read-only|readonly"):
        insert_in_a_read_block(one_connection_db)
    with one_connection_db.reading() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(USERS)) == 0


def test_reading_leaves_the_pooled_connection_transactional(one_connection_db):
    with one_connection_db.reading() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(USERS)) == 0
    # The same (only) connection must roll back a failed write after serving a read.
    with pytest.raises(RuntimeError):
        write_then_fail(one_connection_db, "b@example.com")
    with one_connection_db.reading() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(USERS)) == 0


def test_reading_sees_committed_writes(one_connection_db):
    with one_connection_db.transaction() as s:
        s.execute(new_user("c@example.com"))
    with one_connection_db.reading() as s:
        assert s.scalar(sa.select(USERS.c.email)) == "c@example.com"


def test_sessions_return_their_connections(services, client, auth):
    db = services.db
    for _ in range(5):
        assert client.get("/api/v1/tasks", headers=auth).status_code == 200
        assert client.post("/api/v1/tasks", json={"title": "x"}, headers=auth).status_code == 201
    assert (db.engine.pool.checkedout(), db.read_engine.pool.checkedout()) == (0, 0)
