"""the change feed: each task's change position, tombstones of deleted tasks

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

Every insert and update of a task stamps `tasks.change_id`, and every delete leaves a row in
`task_tombstones` stamped the same way; GET /api/v1/tasks/changes reads both in
(change_id, id) order (taskapi/domain/changes.py says why that order misses nothing).

On PostgreSQL the stamp is the writing transaction's id (`pg_current_xact_id()`): no counter,
so concurrent writers of one account never wait for each other; a page of the feed is a
function, `task_changes()`, whose plan PL/pgSQL keeps. SQLite has one writer at a
time, so a counter (`change_clock`, one row) is exact there and costs no waiting.

Triggers stamp, in the writing transaction, for every write, SQL run by hand included. An
account's deletion leaves no tombstones (they would belong to no one): the triggers skip the
tasks of an account that is gone. As with 0003, a SQLite migration that rebuilds `tasks` must
create its triggers again (`sqlite_triggers()`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

POSTGRESQL_STAMP = "(pg_current_xact_id()::text)::bigint"

POSTGRESQL_FUNCTIONS = {
    "task_change_stamp": f"""
CREATE FUNCTION task_change_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_id := {POSTGRESQL_STAMP};
    RETURN NEW;
END
$$
""",
    "task_tombstones_add": """
CREATE FUNCTION task_tombstones_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_tombstones (task_id, user_id, change_id, deleted_at)
    SELECT o.id, o.user_id, (pg_current_xact_id()::text)::bigint, now()
    FROM old_tasks AS o
    WHERE EXISTS (SELECT FROM users AS u WHERE u.id = o.user_id);
    RETURN NULL;
END
$$
""",
}
# One page of the feed (taskapi/domain/changes.py), as a function: PL/pgSQL keeps its plan, and
# a poll with nothing new, the common case, is not planned again each time.
POSTGRESQL_FEED_FUNCTION = """
CREATE FUNCTION task_changes(
    owner bigint, after_change bigint, after_id bigint, page_size integer, with_tombstones boolean
) RETURNS TABLE (
    changes_purged_through bigint, floor bigint, gone boolean, change_id bigint, id bigint,
    user_id bigint, title varchar, description text, status varchar, priority varchar,
    due_date timestamptz, version integer, created_at timestamptz, updated_at timestamptz,
    deleted_at timestamptz
) LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT u.changes_purged_through, (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint,
           p.gone, p.change_id, p.id, p.user_id, p.title, p.description, p.status, p.priority,
           p.due_date, p.version, p.created_at, p.updated_at, p.deleted_at
    FROM users AS u
    LEFT JOIN LATERAL (
        SELECT * FROM (
            (SELECT false AS gone, t.change_id, t.id, t.user_id, t.title, t.description,
                    t.status, t.priority, t.due_date, t.version, t.created_at, t.updated_at,
                    NULL::timestamptz AS deleted_at
             FROM tasks AS t
             WHERE t.user_id = owner AND (t.change_id, t.id) > (after_change, after_id)
             ORDER BY t.change_id, t.id LIMIT page_size)
            UNION ALL
            (SELECT true, b.change_id, b.task_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                    NULL, NULL, b.deleted_at
             FROM task_tombstones AS b
             WHERE with_tombstones AND b.user_id = owner
               AND (b.change_id, b.task_id) > (after_change, after_id)
             ORDER BY b.change_id, b.task_id LIMIT page_size)
        ) AS merged
        ORDER BY merged.change_id, merged.id LIMIT page_size
    ) AS p ON true
    WHERE u.id = owner
    ORDER BY p.change_id, p.id;
END
$$
"""
POSTGRESQL_FEED_SIGNATURE = "task_changes(bigint, bigint, bigint, integer, boolean)"

POSTGRESQL_TRIGGERS = {
    "task_change_stamp": "BEFORE INSERT OR UPDATE ON tasks FOR EACH ROW "
    "EXECUTE FUNCTION task_change_stamp()",
    "task_tombstones_add": "AFTER DELETE ON tasks REFERENCING OLD TABLE AS old_tasks "
    "FOR EACH STATEMENT EXECUTE FUNCTION task_tombstones_add()",
}

# Each tick of the clock is one change; the stamp's own UPDATE changes change_id, so the
# update trigger (WHEN change_id is unchanged) does not stamp it again.
SQLITE_TRIGGERS = {
    "task_change_stamp_insert": "AFTER INSERT ON tasks BEGIN "
    "UPDATE change_clock SET value = value + 1; "
    "UPDATE tasks SET change_id = (SELECT value FROM change_clock) WHERE id = NEW.id; END",
    "task_change_stamp_update": "AFTER UPDATE ON tasks WHEN NEW.change_id IS OLD.change_id "
    "BEGIN UPDATE change_clock SET value = value + 1; "
    "UPDATE tasks SET change_id = (SELECT value FROM change_clock) WHERE id = NEW.id; END",
    "task_tombstones_add": "AFTER DELETE ON tasks BEGIN "
    "UPDATE change_clock SET value = value + 1; "
    "INSERT INTO task_tombstones (task_id, user_id, change_id, deleted_at) "
    "SELECT OLD.id, OLD.user_id, (SELECT value FROM change_clock), "
    "strftime('%Y-%m-%d %H:%M:%f000', 'now') "
    "WHERE EXISTS (SELECT 1 FROM users WHERE id = OLD.user_id); END",
}


def sqlite_triggers() -> None:
    """Create the SQLite triggers that stamp changes and keep tombstones."""
    for name, body in SQLITE_TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {body}")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    # Both databases add a column in place (SQLite's ALTER TABLE ADD COLUMN): `tasks` is not
    # rebuilt, and 0003's triggers stay.
    op.add_column(
        "tasks", sa.Column("change_id", sa.BigInteger(), nullable=False, server_default="0")
    )
    op.add_column(
        "users",
        sa.Column("changes_purged_through", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.create_table(
        "task_tombstones",
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("change_id", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_task_tombstones_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_task_tombstones")),
    )
    op.create_index(
        "ix_task_tombstones_user_id_change_id",
        "task_tombstones",
        ["user_id", "change_id", "task_id"],
    )
    op.create_index(op.f("ix_task_tombstones_deleted_at"), "task_tombstones", ["deleted_at"])
    op.create_index("ix_tasks_user_id_change_id_id", "tasks", ["user_id", "change_id", "id"])
    # Tasks from before keep change_id 0: a first sync reads them; later syncs start above.
    if dialect == "postgresql":
        for body in POSTGRESQL_FUNCTIONS.values():
            op.execute(body)
        for name, event in POSTGRESQL_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {event}")
        op.execute(POSTGRESQL_FEED_FUNCTION)
    else:
        op.create_table("change_clock", sa.Column("value", sa.BigInteger(), nullable=False))
        op.execute("INSERT INTO change_clock (value) VALUES (0)")
        sqlite_triggers()


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for name in POSTGRESQL_TRIGGERS:
            op.execute(f"DROP TRIGGER {name} ON tasks")
        for name in POSTGRESQL_FUNCTIONS:
            op.execute(f"DROP FUNCTION {name}()")
        op.execute(f"DROP FUNCTION {POSTGRESQL_FEED_SIGNATURE}")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
        op.drop_table("change_clock")
    op.drop_index("ix_tasks_user_id_change_id_id", table_name="tasks")
    op.drop_table("task_tombstones")
    # In place on SQLite too (3.35+), so `tasks` keeps 0003's triggers.
    op.execute("ALTER TABLE users DROP COLUMN changes_purged_through")
    op.execute("ALTER TABLE tasks DROP COLUMN change_id")
