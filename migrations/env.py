"""Alembic environment: the database comes from TaskAPI's Settings, not from alembic.ini."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, Engine

from taskapi.config import Settings
from taskapi.storage.db import make_engine
from taskapi.storage.migrate import exists_on
from taskapi.storage.schema import metadata

config = context.config


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=True,
        compare_type=True,
        include_object=exists_on(connection.dialect.name),
    )
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Rebuilding a table drops the old one, which with foreign keys on would cascade to
        # its children. The pragma only takes effect outside a transaction.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    try:
        with context.begin_transaction():
            context.run_migrations()
            if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first():
                raise RuntimeError("migration left rows that break a foreign key")
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")


def run_online() -> None:
    connection: Connection | None = config.attributes.get("connection")
    if connection is not None:
        run_with(connection)
        return
    settings: Settings = config.attributes.get("settings") or Settings.from_env()
    engine: Engine = make_engine(settings)
    try:
        with engine.connect() as conn:
            run_with(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run them against a database")
run_online()
