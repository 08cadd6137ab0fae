"""Setting up the configured database: creating it, running the Alembic migrations in
migrations/ against it, and what Alembic's autogenerate must leave out of its comparison."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import Column, Index
from sqlalchemy.engine import make_url

from taskapi.config import Settings
from taskapi.resources import migrations_path
from taskapi.storage.db import session_defaults
from taskapi.storage.schema import metadata


def alembic_config(settings: Settings) -> Config:
    """An Alembic configuration for `settings`' database (migrations/env.py reads it)."""
    config = Config()
    config.set_main_option("script_location", str(migrations_path()))
    config.attributes["settings"] = settings
    return config


def create_database(settings: Settings) -> str:
    """Create the configured PostgreSQL database unless it exists; what was done, in words.

    It connects to the server's `postgres` database with the same credentials, which must be
    allowed to create databases. SQLite needs nothing: its file appears on the first migration.
    """
    url = make_url(settings.database_url)
    name = url.database
    if settings.is_sqlite or not name:
        return "nothing to create: SQLite creates its file on the first `taskapi db upgrade`"
    server = sa.create_engine(
        url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
    )
    exists = sa.text("SELECT 1 FROM pg_database WHERE datname = :name")
    try:
        with server.connect() as conn:
            if conn.scalar(exists, {"name": name}):
                return f"database {name!r} exists already"
            quoted = conn.dialect.identifier_preparer.quote(name)
            try:
                conn.execute(sa.text(f"CREATE DATABASE {quoted}"))
            except sa.exc.ProgrammingError:
                # Another process created it between the check and the CREATE.
                if not conn.scalar(exists, {"name": name}):
                    raise
                return f"database {name!r} exists already"
    finally:
        server.dispose()
    return f"database {name!r} created"


def upgrade(settings: Settings, revision: str = "head") -> None:
    command.upgrade(alembic_config(settings), revision)
    if not settings.is_sqlite and not settings.db_startup_options:
        set_role_defaults(settings)


def set_role_defaults(settings: Settings) -> None:
    """Make the timeouts the database role's own session defaults, for connections that cannot
    send them (DB_STARTUP_OPTIONS=false: PgBouncer in transaction mode lends each transaction
    a server connection, which PostgreSQL opened as this role). A role may set its own."""
    engine = sa.create_engine(settings.database_url, poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            for name, value in session_defaults(settings).items():
                # SET takes no bound parameters; both are integers we formatted ourselves.
                conn.execute(sa.text(f"ALTER ROLE CURRENT_USER SET {name} = {int(value)}"))
    finally:
        engine.dispose()


def downgrade(settings: Settings, revision: str = "-1") -> None:
    command.downgrade(alembic_config(settings), revision)


def current(settings: Settings) -> None:
    """Print the database's revision."""
    command.current(alembic_config(settings), verbose=True)


def on_expressions(index: Index) -> bool:
    """Whether `index` covers an expression, not just columns (in either order)."""
    return any(not isinstance(getattr(e, "element", e), Column) for e in index.expressions)


def exists_on(dialect: str) -> Callable[..., bool]:
    """An Alembic include_object filter: leaves out the indexes `dialect` does not create.

    And the indexes on expressions: SQLite's reflection skips them, and how PostgreSQL spells
    one back (a CASE over several lines, casts) defeats Alembic's comparison
    (sqlalchemy/alembic#1321). tests/test_migrations.py compares them by the database's own
    reading instead; autogenerate leaves a change to one for you to write.
    """
    expressions = {
        index.name
        for table in metadata.tables.values()
        for index in table.indexes
        if on_expressions(index)
    }

    def include(obj: object, name: str | None, type_: str, *_: object) -> bool:
        info = getattr(obj, "info", None) or {}
        if type_ == "table":
            return bool(info.get("only_on", dialect) == dialect)
        if type_ != "index":
            return True
        return info.get("only_on", dialect) == dialect and name not in expressions

    return include
