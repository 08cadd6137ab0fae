"""The database schema as typed SQLAlchemy models. Migrations in migrations/ create it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

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
    Text,
    TypeDecorator,
    case,
    func,
    literal_column,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.expression import Grouping

TASK_STATUSES = ("pending", "in_progress", "completed")
TASK_PRIORITIES = ("low", "medium", "high")

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


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime()}  # noqa: RUF012


# SQLite reuses the largest rowid after a delete unless told not to; a reused user id would let a
# deleted account's token speak for a new one, and a reused task id would match stale ETags.
NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


class User(Base):
    __tablename__ = "users"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    # Stored trimmed and lower-cased, so the unique constraint is case-insensitive.
    email: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(100))
    # Access tokens carry it as `ver`; a password change bumps it, which retires them all.
    token_version: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class UserView(Protocol):
    """An account as the domain hands it out: a row of `users` (a User has the same names)."""

    id: int
    email: str
    password_hash: str
    name: str
    token_version: int
    created_at: datetime
    updated_at: datetime


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(f"status IN {TASK_STATUSES}", name="status"),
        CheckConstraint(f"priority IN {TASK_PRIORITIES}", name="priority"),
        NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    status: Mapped[str] = mapped_column(String(20), default="pending", server_default="pending")
    priority: Mapped[str] = mapped_column(String(10), default="medium", server_default="medium")
    due_date: Mapped[datetime | None]
    # Bumped by every write; the ETag is built from it, and If-Match compares it atomically.
    version: Mapped[int] = mapped_column(default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class TaskView(Protocol):
    """A task as the domain hands it out: a row of `tasks` (a Task has the same names)."""

    id: int
    user_id: int
    title: str
    description: str
    status: str
    priority: str
    due_date: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime


# The tables behind User and Task, for the Core statements that read and write them as rows
# (a model's __table__ is typed as a FromClause, which insert() and update() do not take).
USERS = Base.metadata.tables[User.__tablename__]
TASKS = Base.metadata.tables[Task.__tablename__]


class RefreshToken(Base):
    """One refresh token of a login session (a family); only its SHA-256 is kept."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    family: Mapped[str] = mapped_column(String(32), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class RevokedAccessToken(Base):
    """An access token (by jti) that was logged out before it expired."""

    __tablename__ = "revoked_access_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(index=True)


class IdempotencyKey(Base):
    """A client's Idempotency-Key for one operation, and the response it produced."""

    __tablename__ = "idempotency_keys"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    operation: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    # While the first request runs; a lock older than the stale limit is taken over.
    locked_at: Mapped[datetime | None]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    response_status: Mapped[int | None]
    response_headers: Mapped[str | None] = mapped_column(Text)
    response_body: Mapped[str | None] = mapped_column(Text)


class TaskCount(Base):
    """How many tasks an owner has of one status and priority: the list's `total`, uncounted.

    Kept by triggers on `tasks` (migration 0003), in the transaction of every insert, update and
    delete of tasks, so no writer can leave it behind and no request pays a statement for it. A
    task counts in slot `id % 16`, so concurrent writers of one owner seldom share a row; the
    total is the sum over the slots.
    """

    __tablename__ = "task_counts"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    priority: Mapped[str] = mapped_column(String(10), primary_key=True)
    slot: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


def only_on(dialect: str, index: Index) -> Index:
    """`index`, created on `dialect` only, and compared with that dialect's schema only."""
    index.info["only_on"] = dialect
    return index.ddl_if(dialect=dialect)


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
        for table in Base.metadata.tables.values()
        for index in table.indexes
        if on_expressions(index)
    }

    def include(obj: object, name: str | None, type_: str, *_: object) -> bool:
        if type_ != "index":
            return True
        info = getattr(obj, "info", None) or {}
        return info.get("only_on", dialect) == dialect and name not in expressions

    return include


# The list's sort keys, spelled exactly as its ORDER BY spells them (taskapi/listing.py): an
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
        value=Task.priority,
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
DUE_DATE_KEY = {desc: func.coalesce(Task.due_date, last) for desc, last in NO_DUE_DATE.items()}
# Code-point order on PostgreSQL, which is what SQLite's BINARY collation gives: the same on both.
TITLE_KEY: dict[str, ColumnElement[str]] = {
    "postgresql": Task.title.collate("C"),
    "sqlite": Task.title.expression,
}

# One index per sort key, (user_id, key, id), each read forwards for one direction and backwards
# for the other, but for due_date, whose NULLs come last both ways.
Index("ix_tasks_user_id_created_at_id", Task.user_id, Task.created_at.desc(), Task.id.desc())
Index("ix_tasks_user_id_updated_at_id", Task.user_id, Task.updated_at.desc(), Task.id.desc())
Index("ix_tasks_user_id_due_date_id", Task.user_id, DUE_DATE_KEY[False], Task.id)
Index(
    "ix_tasks_user_id_due_date_desc_id",
    Task.user_id,
    DUE_DATE_KEY[True].desc(),
    Task.id.desc(),
)
Index("ix_tasks_user_id_priority_id", Task.user_id, PRIORITY_RANK, Task.id)
for _dialect, _title in TITLE_KEY.items():
    only_on(_dialect, Index("ix_tasks_user_id_title_id", Task.user_id, _title, Task.id))

# `q` searches titles and descriptions with ILIKE '%...%'; trigram indexes make that an index
# scan on PostgreSQL. SQLite has no equivalent and scans the caller's rows.
for _column in (Task.title, Task.description):
    only_on(
        "postgresql",
        Index(
            f"ix_tasks_{_column.key}_trgm",
            _column,
            postgresql_using="gin",
            postgresql_ops={_column.key: "gin_trgm_ops"},
        ),
    )
