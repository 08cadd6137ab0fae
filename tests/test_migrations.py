"""Alembic migrations go up and down on both databases and match the models."""

from __future__ import annotations

import re
import uuid

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import make_url

from taskapi.cli import main
from taskapi.storage.db import make_engine
from taskapi.storage.migrate import alembic_config, exists_on, on_expressions
from taskapi.storage.schema import TASKS, metadata
from tests.conftest import base_settings

# SQLite's reflection skips indexes on expressions, and Alembic says so when it compares;
# test_expression_indexes_match_the_models compares those.
pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:Skipped unsupported reflection of expression-based index:sqlalchemy.exc.SAWarning"
    ),
    pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based"),
]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'migrate.db'}"
    return request.getfixturevalue("create_postgres_database")()


def table_names(url):
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


TABLES_0002 = {"users", "tasks", "refresh_tokens", "revoked_access_tokens", "idempotency_keys"}
ALL_TABLES = {*TABLES_0002, "task_counts", "task_tombstones", "personal_access_tokens"}


def all_tables(url: str) -> set[str]:
    # SQLite's change counter; PostgreSQL stamps changes with transaction ids instead.
    return ALL_TABLES | ({"change_clock"} if url.startswith("sqlite") else set())


def test_upgrade_downgrade_upgrade(empty_database_url):
    config = alembic_config(base_settings(empty_database_url))
    command.upgrade(config, "head")
    assert table_names(empty_database_url) == all_tables(empty_database_url)
    command.downgrade(config, "0002")
    assert table_names(empty_database_url) == TABLES_0002
    command.downgrade(config, "0001")
    assert table_names(empty_database_url) == {"users", "tasks"}
    command.downgrade(config, "base")
    assert table_names(empty_database_url) == set()
    command.upgrade(config, "head")
    assert table_names(empty_database_url) == all_tables(empty_database_url)


def test_migrated_schema_matches_the_models(empty_database_url):
    command.upgrade(alembic_config(base_settings(empty_database_url)), "head")
    engine = sa.create_engine(empty_database_url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": exists_on(conn.dialect.name)}
        )
        differences = compare_metadata(context, metadata)
    engine.dispose()
    assert differences == []


def index_definitions(conn):
    """{name: definition} of the indexes on tasks, as the database keeps them."""
    if conn.dialect.name == "postgresql":
        query = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'tasks'"
    else:
        query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tasks'"
    return dict(conn.execute(sa.text(query)).all())


def spelling(definition, name, dialect):
    """An index's definition without its name. PostgreSQL spells it out its own way; SQLite
    keeps the text as written, so there spaces, quotes and parentheses do not count."""
    text = definition.replace(name, "<name>")
    return text if dialect == "postgresql" else re.sub(r"[\s()\"']", "", text)


def test_expression_indexes_match_the_models(empty_database_url):
    command.upgrade(alembic_config(base_settings(empty_database_url)), "head")
    engine = sa.create_engine(empty_database_url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        dialect = conn.dialect.name
        modelled = [
            index
            for index in TASKS.indexes
            if on_expressions(index) and index.info.get("only_on", dialect) == dialect
        ]
        # The models' own DDL, under other names, next to what the migrations created.
        for index in modelled:
            ddl = str(sa.schema.CreateIndex(index).compile(dialect=conn.dialect))
            conn.execute(sa.text(ddl.replace(index.name, f"model_{index.name}", 1)))
        definitions = index_definitions(conn)
    engine.dispose()
    expected = {"ix_tasks_user_id_due_date_id", "ix_tasks_user_id_due_date_desc_id"}
    expected |= {"ix_tasks_user_id_priority_id"}
    if dialect == "postgresql":
        expected.add("ix_tasks_user_id_title_id")  # a plain column on SQLite
    assert {index.name for index in modelled} == expected
    for name in expected:
        migrated = spelling(definitions[name], name, dialect)
        assert spelling(definitions[f"model_{name}"], f"model_{name}", dialect) == migrated


def test_the_list_index_serves_newest_first(empty_database_url):
    command.upgrade(alembic_config(base_settings(empty_database_url)), "head")
    engine = sa.create_engine(empty_database_url, poolclass=sa.NullPool)
    indexes = {ix["name"]: ix for ix in sa.inspect(engine).get_indexes("tasks")}
    index = indexes["ix_tasks_user_id_created_at_id"]
    assert index["column_names"] == ["user_id", "created_at", "id"]
    if engine.dialect.name == "sqlite":  # SQLite's reflection does not report the sort order
        with engine.connect() as conn:
            ddl = conn.execute(
                sa.text("SELECT sql FROM sqlite_master WHERE name = :n"), {"n": index["name"]}
            ).scalar()
        assert "created_at DESC, id DESC" in ddl
    else:
        assert index["column_sorting"] == {"created_at": ("desc",), "id": ("desc",)}
    engine.dispose()


def test_foreign_keys_cascade_on_both_databases(empty_database_url):
    command.upgrade(alembic_config(base_settings(empty_database_url)), "head")
    engine = make_engine(base_settings(empty_database_url))
    now = "2026-01-01 00:00:00"
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO users (id, email, password_hash, name, created_at, updated_at) "
                "VALUES (1, 'a@b.co', 'x', 'A', :now, :now)"
            ),
            {"now": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO tasks (user_id, title, created_at, updated_at) "
                "VALUES (1, 't', :now, :now)"
            ),
            {"now": now},
        )
        conn.execute(sa.text("DELETE FROM users"))
        assert conn.execute(sa.text("SELECT count(*) FROM tasks")).scalar() == 0
    engine.dispose()


def test_upgrading_keeps_existing_users_and_tasks(empty_database_url):
    config = alembic_config(base_settings(empty_database_url))
    command.upgrade(config, "0001")
    engine = make_engine(base_settings(empty_database_url))
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO users (email, password_hash, name, created_at, updated_at) "
                "VALUES ('a@b.co', 'x', 'A', :now, :now)"
            ),
            {"now": "2026-01-01 00:00:00"},
        )
        conn.execute(
            sa.text(
                "INSERT INTO tasks (user_id, title, created_at, updated_at) "
                "VALUES (1, 'kept', :now, :now)"
            ),
            {"now": "2026-01-01 00:00:00"},
        )
    engine.dispose()
    command.upgrade(config, "head")
    engine = make_engine(base_settings(empty_database_url))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT title, version FROM tasks")).all() == [("kept", 1)]
        assert conn.execute(sa.text("SELECT token_version FROM users")).scalar() == 0
        counts = conn.execute(sa.text("SELECT * FROM task_counts"))
        assert counts.all() == [(1, "pending", "medium", 1, 1)]  # task 1 counts in slot 1
    engine.dispose()


def test_deleted_ids_are_never_reused(empty_database_url):
    command.upgrade(alembic_config(base_settings(empty_database_url)), "head")
    engine = make_engine(base_settings(empty_database_url))
    insert = sa.text(
        "INSERT INTO users (email, password_hash, name, created_at, updated_at) "
        "VALUES (:email, 'x', 'A', :now, :now) RETURNING id"
    )
    now = {"now": "2026-01-01 00:00:00"}
    with engine.begin() as conn:
        first = conn.execute(insert, {"email": "a@b.co", **now}).scalar()
        conn.execute(sa.text("DELETE FROM users WHERE id = :id"), {"id": first})
        second = conn.execute(insert, {"email": "c@d.co", **now}).scalar()
    engine.dispose()
    assert second > first


@pytest.mark.postgres
def test_db_create_makes_the_database_once_and_upgrade_migrates_it(
    postgres_server, monkeypatch, capsys
):
    name = f"taskapi_test_create_{uuid.uuid4().hex[:8]}"
    url = make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    monkeypatch.setenv("DATABASE_URL", url)
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        assert main(["db", "create"]) == 0
        assert capsys.readouterr().out == f"database '{name}' created\n"
        assert main(["db", "create"]) == 0
        assert capsys.readouterr().out == f"database '{name}' exists already\n"
        assert main(["db", "upgrade"]) == 0
        engine = sa.create_engine(url, poolclass=sa.NullPool)
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT count(*) FROM tasks")) == 0
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_db_create_on_sqlite_says_there_is_nothing_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'taskapi.db'}")
    assert main(["db", "create"]) == 0
    assert "nothing to create" in capsys.readouterr().out
    assert not (tmp_path / "taskapi.db").exists()
