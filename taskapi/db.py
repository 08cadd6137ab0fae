"""Engines, and the one place where transactions commit or roll back.

Two pools per process. Writes go through `transaction()`: a connection in BEGIN ... COMMIT, or
ROLLBACK on any error. Requests that write nothing use `reading()`: a plain connection, which
is read-only for real (PostgreSQL: `default_transaction_read_only`; SQLite: `PRAGMA
query_only`) and in autocommit mode, so a read costs no BEGIN and COMMIT round trips. Under
READ COMMITTED (PostgreSQL's default) a transaction gives separate statements no common
snapshot anyway, so reads lose nothing by skipping it. Both load rows, not ORM objects:
TaskAPI uses SQLAlchemy's Core only, and a worker never imports its ORM.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc

from taskapi.config import Settings


def make_engine(settings: Settings, *, read_only: bool = False) -> Engine:
    """An engine for `settings.database_url`: the write pool, or the read-only one."""
    url = settings.database_url
    if settings.is_sqlite and (":memory:" in url or url.rstrip("/") == "sqlite:"):
        raise ValueError("an in-memory SQLite database is per connection; use a file")
    opened, idle = _pool_share(settings, read_only)
    pool: dict[str, Any] = {
        "pool_size": idle,
        "max_overflow": opened - idle,
        "pool_recycle": settings.db_conn_max_lifetime,
        "pool_timeout": 10,
    }
    if read_only:
        pool["isolation_level"] = "AUTOCOMMIT"
    if settings.is_sqlite:
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 5.0}, **pool
        )
        event.listen(engine, "connect", _sqlite_setup(read_only))
        return _ping_when_idle(engine)
    timeout_ms = int(settings.db_statement_timeout * 1000)
    lock_ms = int(settings.db_lock_timeout * 1000)
    options = f"-c statement_timeout={timeout_ms} -c lock_timeout={lock_ms}"
    if read_only:
        options += " -c default_transaction_read_only=on"
    engine = create_engine(
        url,
        connect_args={
            "connect_timeout": settings.db_connect_timeout,
            "application_name": "taskapi",
            "options": options,
            # A server that stops answering (rather than refusing) fails a statement within
            # the statement timeout plus a little, instead of after TCP's ~15 minutes.
            "tcp_user_timeout": timeout_ms + 2000,
            "keepalives_idle": 30,
        },
        **pool,
    )
    return _ping_when_idle(engine)


# A pooled connection unused for this long is pinged before it is handed out.
PING_AFTER_IDLE = 5.0


def _ping_when_idle(engine: Engine) -> Engine:
    """Check connections that sat idle before use, not those in constant use.

    SQLAlchemy's pool_pre_ping costs a round trip on every checkout, which on a busy server is
    one per statement batch; a connection used milliseconds ago is almost never stale. One that
    idled (through a database restart, say) is pinged, and replaced if the ping fails. A
    connection that breaks while in use fails its request with a 503 and invalidates the pool,
    so the next requests get fresh connections.
    """

    @event.listens_for(engine, "checkout")
    def ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        now = time.monotonic()
        idle_since = record.info.get("checked_in", now)
        if now - idle_since > PING_AFTER_IDLE:
            try:
                cursor = dbapi_connection.cursor()
                cursor.execute("SELECT 1")
                cursor.close()
            except Exception as error:
                # The pool discards this connection and tries another (up to three times).
                raise exc.DisconnectionError() from error

    @event.listens_for(engine, "checkin")
    def checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    return engine


def _pool_share(settings: Settings, read_only: bool) -> tuple[int, int]:
    """(most open, kept idle) connections of one pool: the reads get half, the writes the rest."""
    # Settings guarantees at least two of each, so each pool gets at least one.
    opened = settings.db_max_open_conns // 2
    idle = settings.db_max_idle_conns // 2
    if not read_only:
        opened, idle = settings.db_max_open_conns - opened, settings.db_max_idle_conns - idle
    return opened, min(idle, opened)


def _sqlite_setup(read_only: bool) -> Any:
    def configure(dbapi_connection: Any, _record: Any) -> None:
        # SQLite's lower() folds ASCII only; case-insensitive search needs Unicode's rules.
        dbapi_connection.create_function("unicode_lower", 1, _lower, deterministic=True)
        cursor = dbapi_connection.cursor()
        # SQLite ignores foreign keys (and ON DELETE CASCADE) unless asked, per connection.
        cursor.execute("PRAGMA foreign_keys=ON")
        # WAL lets readers run while one writer commits; NORMAL is durable across app crashes.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        if read_only:
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    return configure


def _lower(value: str | None) -> str | None:
    return None if value is None else value.lower()


class Database:
    """The write and read pools. Only `transaction()` commits."""

    def __init__(self, settings: Settings) -> None:
        self.engine = make_engine(settings)
        self.read_engine = make_engine(settings, read_only=True)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection in a transaction: committed on success, rolled back on any error."""
        with self.engine.begin() as connection:
            yield connection

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read-only autocommit connection for work that writes nothing, returned after."""
        with self.read_engine.connect() as connection:
            yield connection

    def dispose(self) -> None:
        self.engine.dispose()
        self.read_engine.dispose()
