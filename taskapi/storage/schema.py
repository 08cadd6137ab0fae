"""The database schema as SQLAlchemy Core tables. Migrations in migrations/ create it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, get_args

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ColumnElement,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
    case,
    func,
    literal_column,
)
from sqlalchemy.sql.expression import Grouping

TaskStatus = Literal["pending", "in_progress", "completed"]
TaskPriority = Literal["low", "medium", "high"]
TASK_STATUSES: tuple[TaskStatus, ...] = get_args(TaskStatus)
TASK_PRIORITIES: tuple[TaskPriority, ...] = get_args(TaskPriority)
TITLE_MAX_LENGTH = 200

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identity columns.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL stores TIMESTAMPTZ. SQLite has no time zones, so values are stored as naive UTC
    in SQLAlchemy's fixed-width text format (which sorts chronologically) and read back as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _owner(**options: Any) -> Column[int]:
    """The `user_id` of a row that belongs to an account, and goes with it."""
    return Column(
        "user_id",
        BigInteger,
        ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        **options,
    )


USERS = Table(
    "users",
    metadata,
    Column("id", BigIntId, primary_key=True),
    # Stored trimmed and lower-cased, so the unique constraint is case-insensitive.
    Column("email", String(255), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("name", String(100), nullable=False),
    # Access tokens carry it as `ver`; a password change bumps it, which retires them all.
    Column("token_version", Integer, nullable=False, default=0, server_default="0"),
    # The largest change_id among the account's purged tombstones: a sync position before it
    # could miss a delete, so it is refused (domain/changes.py).
    Column("changes_purged_through", BigInteger, nullable=False, default=0, server_default="0"),
    Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime(), nullable=False, default=utcnow),
    # SQLite reuses the largest rowid after a delete unless told not to; a reused user id would
    # let a deleted account's token speak for a new one.
    sqlite_autoincrement=True,
)


TASKS = Table(
    "tasks",
    metadata,
    Column("id", BigIntId, primary_key=True),
    _owner(),
    Column("title", String(TITLE_MAX_LENGTH), nullable=False),
    Column("description", Text, nullable=False, default="", server_default=""),
    Column("status", String(20), nullable=False, default="pending", server_default="pending"),
    Column("priority", String(10), nullable=False, default="medium", server_default="medium"),
    Column("due_date", UTCDateTime(), nullable=True),
    # Bumped by every write; the ETag is built from it, and If-Match compares it atomically.
    Column("version", Integer, nullable=False, default=1, server_default="1"),
    Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime(), nullable=False, default=utcnow),
    # Where the task's last write stands in the change feed (domain/changes.py); stamped by
    # triggers (migration 0005), never by the application.
    Column("change_id", BigInteger, nullable=False, default=0, server_default="0"),
    CheckConstraint(f"status IN {TASK_STATUSES}", name="status"),
    CheckConstraint(f"priority IN {TASK_PRIORITIES}", name="priority"),
    # A reused task id would match stale ETags (as for users).
    sqlite_autoincrement=True,
)


# One refresh token of a login session (a family); only its SHA-256 is kept.
REFRESH_TOKENS = Table(
    "refresh_tokens",
    metadata,
    Column("id", BigIntId, primary_key=True),
    _owner(index=True),
    Column("family", String(32), nullable=False, index=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
    # A revoked token expires soon after (refresh_tokens.py); the purge deletes expired ones.
    Column("expires_at", UTCDateTime(), nullable=False, index=True),
    Column("used_at", UTCDateTime(), nullable=True),
    Column("revoked_at", UTCDateTime(), nullable=True),
)

# A personal access token: a long-lived bearer token with scopes, for scripts and CI. Only a
# SHA-256 digest of the secret is kept, and a short prefix the owner recognises it by.
PERSONAL_ACCESS_TOKENS = Table(
    "personal_access_tokens",
    metadata,
    Column("id", BigIntId, primary_key=True),
    _owner(index=True),
    Column("name", String(100), nullable=False),
    # Space-separated, as OAuth 2.0 writes scopes (RFC 6749 section 3.3).
    Column("scopes", String(200), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("token_prefix", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
    Column("expires_at", UTCDateTime(), nullable=False, index=True),
    Column("last_used_at", UTCDateTime(), nullable=True),
    # A deleted token's id is never handed out again, so a script that deletes by id cannot
    # delete its successor.
    sqlite_autoincrement=True,
)

# An access token (by jti) that was logged out before it expired.
REVOKED_ACCESS_TOKENS = Table(
    "revoked_access_tokens",
    metadata,
    Column("jti", String(64), primary_key=True),
    _owner(),
    Column("expires_at", UTCDateTime(), nullable=False, index=True),
)

# A client's Idempotency-Key for one operation, and the response it produced.
IDEMPOTENCY_KEYS = Table(
    "idempotency_keys",
    metadata,
    _owner(primary_key=True),
    Column("operation", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    # While the first request runs; a lock older than the stale limit is taken over.
    Column("locked_at", UTCDateTime(), nullable=True),
    Column("expires_at", UTCDateTime(), nullable=False, index=True),
    Column("response_status", Integer, nullable=True),
    Column("response_headers", Text, nullable=True),
    Column("response_body", Text, nullable=True),
)

# A deleted task, for the change feed: its id, and where its deletion stands in the feed.
# Written by a trigger on every delete of a task but an account's (migration 0005); purged
# after TOMBSTONE_RETENTION.
TASK_TOMBSTONES = Table(
    "task_tombstones",
    metadata,
    Column("task_id", BigInteger, primary_key=True),
    _owner(),
    Column("change_id", BigInteger, nullable=False),
    Column("deleted_at", UTCDateTime(), nullable=False, index=True),
)
Index(
    "ix_task_tombstones_user_id_change_id",
    TASK_TOMBSTONES.c.user_id,
    TASK_TOMBSTONES.c.change_id,
    TASK_TOMBSTONES.c.task_id,
)

# SQLite's change counter, one row: with one writer at a time a counter is exact there.
# PostgreSQL stamps changes with transaction ids instead and has no such table.
CHANGE_CLOCK = Table(
    "change_clock",
    metadata,
    Column("value", BigInteger, nullable=False),
    info={"only_on": "sqlite"},
)

# How many tasks an owner has of one status and priority: the list's `total`, uncounted.
#
# Kept by triggers on `tasks` (migration 0003), in the transaction of every insert, update and
# delete of tasks, so no writer can leave it behind and no request pays a statement for it. A
# task counts in slot `id % 16`, so concurrent writers of one owner seldom share a row; the
# total is the sum over the slots.
TASK_COUNTS = Table(
    "task_counts",
    metadata,
    _owner(primary_key=True),
    Column("status", String(20), primary_key=True),
    Column("priority", String(10), primary_key=True),
    Column("slot", SmallInteger, primary_key=True),
    Column("n", BigInteger, nullable=False),
)


def only_on(dialect: str, index: Index) -> Index:
    """`index`, created on `dialect` only, and compared with that dialect's schema only."""
    index.info["only_on"] = dialect
    return index.ddl_if(dialect=dialect)


# The list's sort keys, spelled exactly as its ORDER BY spells them (taskapi/domain/listing.py): an
# index serves an expression only if it is the same one. Values are literals in the SQL text,
# not bound parameters, because SQLite matches an expression index by the text.
PRIORITY_RANKS = {"low": 1, "medium": 2, "high": 3}
# In parentheses, which PostgreSQL needs around a CASE in an index's definition.
PRIORITY_RANK = Grouping(
    case(
        {
            literal_column(f"'{p}'"): literal_column(str(n), Integer)
            for p, n in PRIORITY_RANKS.items()
        },
        value=TASKS.c.priority,
    )
)
# Tasks without a due date come last in both directions: as +infinity ascending and -infinity
# descending. PostgreSQL reads the text as timestamptz; on SQLite, where timestamps are text,
# 'infinity' sorts after every stored one and '-infinity' before. With no NULLs in the key, a
# cursor is one row comparison that the index serves, whichever side of the NULLs it is on.
NO_DUE_DATE: dict[bool, ColumnElement[Any]] = {
    False: literal_column("'infinity'"),
    True: literal_column("'-infinity'"),
}
DUE_DATE_KEY = {desc: func.coalesce(TASKS.c.due_date, last) for desc, last in NO_DUE_DATE.items()}
# Code-point order on PostgreSQL, which is what SQLite's BINARY collation gives: the same on both.
TITLE_KEY: dict[str, ColumnElement[str]] = {
    "postgresql": TASKS.c.title.collate("C"),
    "sqlite": TASKS.c.title,
}

# One index per sort key, (user_id, key, id), each read forwards for one direction and backwards
# for the other, but for due_date, whose NULLs come last both ways.
Index(
    "ix_tasks_user_id_created_at_id", TASKS.c.user_id, TASKS.c.created_at.desc(), TASKS.c.id.desc()
)
Index(
    "ix_tasks_user_id_updated_at_id", TASKS.c.user_id, TASKS.c.updated_at.desc(), TASKS.c.id.desc()
)
Index("ix_tasks_user_id_due_date_id", TASKS.c.user_id, DUE_DATE_KEY[False], TASKS.c.id)
Index(
    "ix_tasks_user_id_due_date_desc_id",
    TASKS.c.user_id,
    DUE_DATE_KEY[True].desc(),
    TASKS.c.id.desc(),
)
Index("ix_tasks_user_id_priority_id", TASKS.c.user_id, PRIORITY_RANK, TASKS.c.id)
# The change feed's order.
Index("ix_tasks_user_id_change_id_id", TASKS.c.user_id, TASKS.c.change_id, TASKS.c.id)
for _dialect, _title in TITLE_KEY.items():
    only_on(_dialect, Index("ix_tasks_user_id_title_id", TASKS.c.user_id, _title, TASKS.c.id))

# `q` searches titles and descriptions with ILIKE '%...%'; trigram indexes make that an index
# scan on PostgreSQL. SQLite has no equivalent and scans the caller's rows.
for _column in (TASKS.c.title, TASKS.c.description):
    only_on(
        "postgresql",
        Index(
            f"ix_tasks_{_column.key}_trgm",
            _column,
            postgresql_using="gin",
            postgresql_ops={_column.key: "gin_trgm_ops"},
        ),
    )
