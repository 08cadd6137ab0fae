"""Connections and transactions: what HTTP tests cannot reach directly."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import psycopg2.extensions
import pytest
import sqlalchemy as sa

from taskapi.storage.db import Database, SecondWrite
from taskapi.storage.schema import USERS, utcnow


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


def in_transaction(dbapi_connection) -> bool:
    """Whether the driver has a transaction open, so a COMMIT or ROLLBACK is still to come."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        return dbapi_connection.in_transaction
    return dbapi_connection.info.transaction_status != psycopg2.extensions.TRANSACTION_STATUS_IDLE


def test_a_single_write_commits_as_it_runs(one_connection_db):
    with one_connection_db.single_write() as s:
        s.execute(new_user("d@example.com"))
        assert not in_transaction(s.connection.dbapi_connection)
        with one_connection_db.reading() as c:
            assert c.scalar(sa.select(USERS.c.email)) == "d@example.com"


def write_twice(db, first, second):
    with db.single_write() as s:
        s.execute(new_user(first))
        s.scalar(sa.select(sa.func.count()).select_from(USERS))  # reads may follow
        s.execute(new_user(second))


def test_a_single_write_refuses_a_second_write(one_connection_db):
    with pytest.raises(SecondWrite):
        write_twice(one_connection_db, "e@example.com", "f@example.com")
    with one_connection_db.reading() as c:
        assert c.scalars(sa.select(USERS.c.email)).all() == ["e@example.com"]


def write_then_lose_the_connection(block, lose):
    with block() as s:
        s.execute(new_user("k@example.com"))
        lose(s)
        s.scalar(sa.select(sa.func.count()).select_from(USERS))


def terminate_the_backend(connection):
    pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    with sa.create_engine(connection.engine.url, poolclass=sa.NullPool).connect() as other:
        other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def disconnect_as_sqlalchemy_does(connection):
    # What SQLAlchemy does when a statement finds its connection gone: invalidate, then raise.
    connection.invalidate()
    raise sa.exc.OperationalError("SELECT ...", {}, sqlite3.OperationalError("disk I/O error"))


@pytest.mark.parametrize("block", ["single_write", "transaction"])
def test_a_write_that_loses_its_connection_raises_the_drivers_error(one_connection_db, block):
    # A lost connection must reach the error handlers as the database's error (a 503), not as
    # SQLAlchemy's complaint about the dead connection's unfinished transaction (a 500).
    sqlite = one_connection_db.dialect == "sqlite"
    lose = disconnect_as_sqlalchemy_does if sqlite else terminate_the_backend
    with pytest.raises(sa.exc.OperationalError):
        write_then_lose_the_connection(getattr(one_connection_db, block), lose)
    with one_connection_db.single_write() as s:  # the pool hands out a working connection
        s.execute(new_user("m@example.com"))
    with one_connection_db.reading() as c:
        emails = c.scalars(sa.select(USERS.c.email).order_by(USERS.c.email)).all()
    assert emails == (
        ["m@example.com"] if block == "transaction" else ["k@example.com", "m@example.com"]
    )


def test_production_pools_listen_to_no_statement(settings):
    # Any statement-level listener makes SQLAlchemy dispatch events around every statement.
    db = Database(replace(settings, env="production", bcrypt_rounds=12))
    statement_events = (
        "before_execute",
        "after_execute",
        "before_cursor_execute",
        "after_cursor_execute",
    )
    try:
        for engine in (db.engine, db.read_engine):
            for name in statement_events:
                assert not getattr(engine.dispatch, name), name
    finally:
        db.dispose()


def test_the_write_pool_switches_between_single_writes_and_transactions(one_connection_db):
    # One pooled connection serves both, in either order.
    with one_connection_db.single_write() as s:
        s.execute(new_user("g@example.com"))
    with pytest.raises(RuntimeError):
        write_then_fail(one_connection_db, "h@example.com")
    with one_connection_db.transaction() as s:
        s.execute(new_user("i@example.com"))
        assert in_transaction(s.connection.dbapi_connection)
    with one_connection_db.single_write() as s:
        s.execute(new_user("j@example.com"))
        assert not in_transaction(s.connection.dbapi_connection)
    with one_connection_db.reading() as c:
        emails = c.scalars(sa.select(USERS.c.email).order_by(USERS.c.email)).all()
    assert emails == ["g@example.com", "i@example.com", "j@example.com"]


class OpenTransactions:
    """Records, after each statement on the write pool, whether a transaction is left open."""

    def __init__(self, engine) -> None:
        self.seen: list[tuple[str, bool]] = []
        sa.event.listen(engine, "after_cursor_execute", self._record)

    def _record(self, conn, _cursor, statement, *_args) -> None:
        self.seen.append(
            (statement.split(None, 1)[0], in_transaction(conn.connection.dbapi_connection))
        )


@pytest.mark.parametrize("operation", ["create", "update", "patch", "delete"])
def test_a_task_write_costs_no_begin_or_commit(services, api, auth, operation):
    # One statement is atomic by itself; BEGIN and COMMIT around it were two more round trips.
    url = f"/api/v1/tasks/{api.create_task(auth)['id']}"
    calls = {
        "create": lambda: api.client.post("/api/v1/tasks", json={"title": "t"}, headers=auth),
        "update": lambda: api.client.put(url, json={"title": "t"}, headers=auth),
        "patch": lambda: api.client.patch(url, json={"priority": "low"}, headers=auth),
        "delete": lambda: api.client.delete(url, headers=auth),
    }
    statements = OpenTransactions(services.db.engine)
    assert calls[operation]().status_code in (200, 201)
    assert [verb for verb, _ in statements.seen] == [
        {"create": "INSERT", "delete": "DELETE"}.get(operation, "UPDATE")
    ]
    assert not any(open_ for _, open_ in statements.seen)


def test_an_idempotent_create_still_runs_in_transactions(services, api, auth):
    statements = OpenTransactions(services.db.engine)
    headers = {**auth, "Idempotency-Key": "k-1"}
    assert api.client.post("/api/v1/tasks", json={"title": "t"}, headers=headers).status_code == 201
    # (SQLite's driver opens the transaction at the first write, not at a read before it.)
    writes = [open_ for verb, open_ in statements.seen if verb != "SELECT"]
    assert len(writes) >= 2
    assert all(writes)


def test_sessions_return_their_connections(services, client, auth):
    db = services.db
    for _ in range(5):
        assert client.get("/api/v1/tasks", headers=auth).status_code == 200
        assert client.post("/api/v1/tasks", json={"title": "x"}, headers=auth).status_code == 201
    assert (db.engine.pool.checkedout(), db.read_engine.pool.checkedout()) == (0, 0)
