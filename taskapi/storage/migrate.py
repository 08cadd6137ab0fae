"""Running the Alembic migrations in migrations/ against the configured database, and what
Alembic's autogenerate must leave out of its comparison."""

from __future__ import annotations

from collections.abc import Callable

from alembic import command
from alembic.config import Config
from sqlalchemy import Column, Index

from taskapi.config import Settings
from taskapi.resources import migrations_path
from taskapi.storage.schema import metadata


def alembic_config(settings: Settings) -> Config:
    """An Alembic configuration for `settings`' database (migrations/env.py reads it)."""
    config = Config()
    config.set_main_option("script_location", str(migrations_path()))
    config.attributes["settings"] = settings
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    command.upgrade(alembic_config(settings), revision)


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
        if type_ != "index":
            return True
        info = getattr(obj, "info", None) or {}
        return info.get("only_on", dialect) == dialect and name not in expressions

    return include
