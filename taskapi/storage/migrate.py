"""Running the Alembic migrations in migrations/ against the configured database."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from taskapi.config import Settings
from taskapi.resources import migrations_path


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
