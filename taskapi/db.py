"""Engine, sessions, and the one place where transactions commit or roll back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from taskapi.config import Settings


def make_engine(settings: Settings) -> Engine:
    """An engine for `settings.database_url` with the configured pool."""
    url = settings.database_url
    if settings.is_sqlite and (":memory:" in url or url.rstrip("/") == "sqlite:"):
        raise ValueError("an in-memory SQLite database is per connection; use a file")

    pool: dict[str, Any] = {
        "pool_size": settings.db_max_idle_conns,
        "max_overflow": settings.db_max_open_conns - settings.db_max_idle_conns,
        "pool_recycle": settings.db_conn_max_lifetime,
        "pool_pre_ping": True,
        "pool_timeout": 10,
    }
    if settings.is_sqlite:
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 5.0},
            **pool,
        )
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    return create_engine(
        url,
        connect_args={
            "connect_timeout": settings.db_connect_timeout,
            "application_name": "taskapi",
        },
        **pool,
    )


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # SQLite's lower() folds ASCII only; case-insensitive search needs Unicode's rules.
    dbapi_connection.create_function("unicode_lower", 1, _lower, deterministic=True)
    cursor = dbapi_connection.cursor()
    # SQLite ignores foreign keys (and ON DELETE CASCADE) unless asked, per connection.
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL lets readers run while one writer commits; NORMAL is durable across app crashes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _lower(value: str | None) -> str | None:
    return None if value is None else value.lower()


class Database:
    """An engine and its sessions. Handlers use `transaction()`; nothing else commits."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on any error, closed."""
        with self._sessions.begin() as session:
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for requests that write nothing: no BEGIN, no COMMIT.

        Under READ COMMITTED (PostgreSQL's default) a transaction gives separate statements no
        common snapshot anyway, so reads lose nothing by skipping it; SQLite's driver already
        runs SELECTs outside a transaction.
        """
        with self.engine.connect() as connection:
            raw: Any = connection.connection.dbapi_connection
            postgres = self.engine.dialect.name == "postgresql"
            if postgres:
                raw.autocommit = True  # a client-side flag in psycopg2: no round trip
            try:
                with Session(connection, expire_on_commit=False) as session:
                    yield session
            finally:
                if postgres:
                    raw.autocommit = False

    def dispose(self) -> None:
        self.engine.dispose()
