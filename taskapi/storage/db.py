"""Engines, and the one place where transactions commit or roll back.

Two pools per process, both in autocommit mode, handing out rows, never ORM objects (a worker
never imports SQLAlchemy's ORM): `reading()` for requests that write nothing, `single_write()`
for a write that is one statement, `transaction()` (BEGIN ... COMMIT, or ROLLBACK on any error)
for several. A single statement is atomic on both databases, triggers included, and a handler on
the event loop blocks its worker for each round trip, so only writes of several statements pay
for BEGIN and COMMIT (docs/performance.md, "What each change bought").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc, make_url

from taskapi.config import Settings
from taskapi.storage import replicas


def make_engine(
    settings: Settings, *, read_only: bool = False, autocommit: bool = False, url: str = ""
) -> Engine:
    """An engine for `url` (default: `settings.database_url`): the write pool, or a read-only
    one. With `autocommit` (implied by `read_only`) each statement commits as it runs."""
    url = url or settings.database_url
    if settings.is_sqlite and (":memory:" in url or url.rstrip("/") == "sqlite:"):
        raise ValueError("an in-memory SQLite database is per connection; use a file")
    opened, idle = _pool_share(settings, read_only)
    pool: dict[str, Any] = {
        "pool_size": idle,
        "max_overflow": opened - idle,
        "pool_recycle": settings.db_conn_max_lifetime,
        "pool_timeout": 10,
    }
    if read_only or autocommit:
        pool["isolation_level"] = "AUTOCOMMIT"
    if settings.is_sqlite:
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 5.0}, **pool
        )
        event.listen(engine, "connect", _sqlite_setup(read_only))
        return _ping_when_idle(engine)
    if read_only:
        url = _read_pool_url(url)
    timeout_ms = int(settings.db_statement_timeout * 1000)
    connect_args: dict[str, Any] = {
        "connect_timeout": settings.db_connect_timeout,
        "application_name": "taskapi",
        # A server that stops answering (rather than refusing) fails a statement within the
        # statement timeout plus a little, instead of after TCP's ~15 minutes.
        "tcp_user_timeout": timeout_ms + 2000,
        "keepalives_idle": 30,
    }
    if settings.db_startup_options:
        # Behind PgBouncer in transaction mode they are the role's instead (migrate.py).
        connect_args["options"] = " ".join(
            f"-c {name}={value}" for name, value in session_defaults(settings, read_only).items()
        )
    engine = create_engine(url, connect_args=connect_args, **pool)
    event.listen(engine, "handle_error", _lost_primary)
    return _ping_when_idle(engine)


def session_defaults(settings: Settings, read_only: bool = False) -> dict[str, str]:
    """What each PostgreSQL session of a pool starts with: the timeouts, in milliseconds, and
    for the read pool a read-only default (a guard: it never writes)."""
    defaults = {
        "statement_timeout": str(int(settings.db_statement_timeout * 1000)),
        "lock_timeout": str(int(settings.db_lock_timeout * 1000)),
    }
    if read_only:
        defaults["default_transaction_read_only"] = "on"
    return defaults


def _read_pool_url(url: str) -> str:
    """`url` for the read pool. Its sessions are read-only by default, which libpq's
    `target_session_attrs=read-write` takes for a standby; `primary` asks the same of the
    server (not in recovery) without looking at the session."""
    parsed = make_url(url)
    if parsed.query.get("target_session_attrs") != "read-write":
        return url
    primary = parsed.update_query_dict({"target_session_attrs": "primary"})
    return primary.render_as_string(hide_password=False)


# SQLSTATEs of a server that can no longer write for us: 25006 (read_only_sql_transaction), what
# a primary demoted by a failover manager answers to a write while it is still reachable.
LOST_PRIMARY = frozenset({"25006"})


def _lost_primary(context: Any) -> None:
    """Treat a write refused by a read-only server as a lost connection: SQLAlchemy then drops
    this connection and every pooled one opened before it, so the next requests connect afresh
    and, with a multi-host URL's `target_session_attrs=read-write`, reach the new primary.
    The request that met it fails (a 503, never retried here: it may have been a write)."""
    if getattr(context.original_exception, "pgcode", None) in LOST_PRIMARY:
        context.is_disconnect = True


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


class SecondWrite(RuntimeError):
    """A second write in a `single_write()` block, which would not be atomic with the first."""


class _Writes:
    """Whether a single_write() connection has written yet."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen = False


# An execution option of the Connection object a single_write() block holds, not of the pooled
# connection beneath it: nothing has to be undone when that connection dies mid-request.
_SINGLE_WRITE = "taskapi_single_write"


def _refuse_a_second_write(
    _conn: Connection, _cursor: Any, _sql: str, _params: Any, context: Any, _many: bool
) -> None:
    writes = context.execution_options.get(_SINGLE_WRITE)
    if writes is None or not context.is_crud:  # is_crud: an INSERT, UPDATE or DELETE
        return
    if writes.seen:
        raise SecondWrite("single_write() runs one write statement; use transaction() for more")
    writes.seen = True


class Database:
    """The write and read pools, and the standby's when DATABASE_READ_URL is set. Only
    `transaction()` and `single_write()` write."""

    def __init__(self, settings: Settings) -> None:
        self.engine = make_engine(settings, autocommit=True)
        self.read_engine = make_engine(settings, read_only=True)
        self.standby: replicas.Standby | None = None
        # Told which server ("standby", "primary") lends each read, with a standby (the metrics).
        self.count_read: Callable[[str], None] = lambda _server: None
        if settings.database_read_url:
            engines = [
                make_engine(settings, read_only=True, url=url)
                for url in replicas.standby_urls(settings.database_read_url)
            ]
            self.standby = replicas.Standby(
                engines, max_lag=settings.db_read_max_lag, primary_position=self._primary_position
            )
        # The most connections each pool opens (for the metrics).
        self.pool_limits = {
            "write": _pool_share(settings, read_only=False)[0],
            "read": _pool_share(settings, read_only=True)[0],
        }
        if settings.env != "production":
            # A check of TaskAPI's own code, for development and the tests: any listener on
            # the engine costs every statement SQLAlchemy's event dispatch (docs/performance.md,
            # "Why the code is shaped this way").
            event.listen(self.engine, "before_cursor_execute", _refuse_a_second_write)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection in a transaction: committed on success, rolled back on any error.

        It runs at the database's default isolation level. On PostgreSQL that costs a round
        trip more from a connection's second transaction on (psycopg2 resets the session's
        default isolation level as the connection leaves autocommit): such writes are rare
        beside single ones and mostly wait on bcrypt anyway.
        """
        with self.engine.connect() as connection:
            # Known once the pool has connected; the pool resets it to autocommit on return.
            connection.execution_options(
                isolation_level=self.engine.dialect.default_isolation_level
            )
            with connection.begin():
                yield connection
            if self.standby is not None:
                connection.execution_options(isolation_level="AUTOCOMMIT")
                self._note_write(connection)

    @contextmanager
    def single_write(self) -> Iterator[Connection]:
        """A connection for a write that is one statement, committed as it runs: one round trip
        where BEGIN and COMMIT made three. Reads may follow it (to tell a missing row from a
        changed one, say). A write of several statements belongs in `transaction()`: outside
        production a second write raises SecondWrite before it runs.
        """
        with self.engine.connect() as connection:
            yield connection.execution_options(**{_SINGLE_WRITE: _Writes()})
            self._note_write(connection)

    @contextmanager
    def reading(self, *, primary: bool = False) -> Iterator[Connection]:
        """A read-only autocommit connection for work that writes nothing, returned after.

        Read-only for real (PostgreSQL: `default_transaction_read_only`; SQLite: `PRAGMA
        query_only`), and without BEGIN and COMMIT round trips: under READ COMMITTED
        (PostgreSQL's default) a transaction gives separate statements no common snapshot
        anyway, so reads lose nothing by skipping it.

        With a standby, the read goes there when it has replayed what the request must see
        (storage/replicas.py), unless `primary`; a read that fails there leaves the standby out
        for a while.
        """
        standby = self.standby
        consistency = replicas.CURRENT.get()
        if (
            standby is None
            or primary
            or consistency is None
            or consistency.account is None
            or not standby.serves(consistency.must_see)
        ):
            if standby is not None:
                self.count_read("primary")
            with self.read_engine.connect() as connection:
                yield connection
            return
        try:
            connection = standby.engine.connect()
        except exc.DBAPIError as error:
            # Nothing has been read yet: the primary serves this one.
            standby.failed(error)
            self.count_read("primary")
            with self.read_engine.connect() as connection:
                yield connection
            return
        try:
            with connection:
                standby.reads += 1
                self.count_read("standby")
                yield connection
        except exc.DBAPIError as error:
            standby.failed(error)
            raise

    def _primary_position(self) -> int:
        with self.engine.connect() as connection:
            return replicas.write_position(connection)

    def _note_write(self, connection: Connection) -> None:
        """After a commit, with a standby: where the primary's WAL ends, for read-your-writes."""
        consistency = replicas.CURRENT.get()
        if self.standby is None or consistency is None:
            return
        position = replicas.write_position(connection)
        consistency.wrote(position)
        self.standby.noted_write(position)

    def dispose(self) -> None:
        self.engine.dispose()
        self.read_engine.dispose()
        if self.standby is not None:
            self.standby.close()
