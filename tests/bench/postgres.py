"""PostgreSQL for a benchmark run: TEST_DATABASE_URL's server or a throwaway cluster of our own.

Each target gets a database of its own on that server, dropped at the end, so a run never
touches data it did not create.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

# Two workers with up to 25 connections each, the harness's own, and room for a --cmd that
# pools more generously.
MAX_CONNECTIONS = 300
SERVER_BIN_GLOB = "/usr/lib/postgresql/*/bin"


@contextlib.contextmanager
def server(port: int, workdir: Path, *, standby_port: int = 0) -> Iterator[tuple[str, str | None]]:
    """Admin URLs (to the `postgres` database) of the server the run uses and, with
    `standby_port`, of a hot standby of it (a throwaway pair only)."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured and not standby_port:
        yield configured, None
        return
    with throwaway_clusters(port, workdir, standby_port=standby_port) as urls:
        yield urls


def server_bin_dir() -> Path:
    """Where initdb, pg_ctl and postgres live: PATH first, then Debian's versioned folders."""
    initdb = shutil.which("initdb")
    if initdb:
        # Debian links /usr/local/bin/initdb into the versioned folder that also holds postgres.
        return Path(initdb).resolve().parent
    folders = sorted(Path("/").glob(SERVER_BIN_GLOB.lstrip("/")), key=_major_version)
    if not folders:
        raise RuntimeError(
            "no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in "
            f"{SERVER_BIN_GLOB}: install postgresql, or set TEST_DATABASE_URL"
        )
    return folders[-1]


def _major_version(folder: Path) -> int:
    match = re.search(r"/(\d+)/bin$", str(folder))
    return int(match.group(1)) if match else 0


def _as_postgres(command: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root; the Debian package's `postgres` user may.
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


class Cluster:
    """A PostgreSQL cluster of our own on 127.0.0.1:`port`, in a temporary directory.

    `start()` and `stop()` may be called again and again, as an outage test needs; `remove()`
    stops it if it runs, copies its log to `workdir` and deletes it.
    """

    def __init__(self, port: int, workdir: Path, *, standby_of: Cluster | None = None) -> None:
        self.port = port
        self.workdir = workdir
        self.bindir = server_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="taskapi-bench-pg-"))
        self.data = self.root / "data"
        self.log = self.root / ("standby.log" if standby_of else "postgresql.log")
        self.running = False
        try:
            if os.geteuid() == 0:
                shutil.chown(self.root, "postgres", "postgres")
            if standby_of is None:
                # --no-sync only skips initdb's own fsyncs at creation; the server keeps fsync on.
                initdb = [self.bindir / "initdb", "-D", self.data, "-U", "postgres", "-A", "trust"]
                _run_pg([*initdb, "-E", "UTF8", "--no-locale", "--no-sync"], cwd=self.root)
            else:
                # A hot standby streaming from the running `standby_of` (-R: it knows where).
                backup = [self.bindir / "pg_basebackup", "-h", "127.0.0.1", "-U", "postgres"]
                backup += ["-p", str(standby_of.port), "-D", self.data, "-R", "-X", "stream"]
                _run_pg([*backup, "--checkpoint=fast", "--no-sync"], cwd=self.root)
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    @property
    def url(self) -> str:
        """The admin URL, to the `postgres` database."""
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.root} -c max_connections={MAX_CONNECTIONS}"
        )
        pg_ctl = [self.bindir / "pg_ctl", "-D", self.data, "-l", self.log, "-o", options]
        _run_pg([*pg_ctl, "-w", "start"], cwd=self.root)
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """`pg_ctl stop -m <mode>`: fast ends every session at once, rolling back their work."""
        _run_pg([self.bindir / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop"], cwd=self.root)
        self.running = False

    def promote(self) -> None:
        """A standby becomes a primary of its own."""
        _run_pg([self.bindir / "pg_ctl", "-D", self.data, "-w", "promote"], cwd=self.root)

    def remove(self) -> None:
        try:
            if self.running:
                self.stop()
        finally:
            if self.log.is_file():
                shutil.copyfile(self.log, self.workdir / self.log.name)
            shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def throwaway_cluster(port: int, workdir: Path) -> Iterator[str]:
    """A fresh cluster on 127.0.0.1:`port`, deleted on exit; its log is copied to workdir."""
    with throwaway_clusters(port, workdir) as (primary, _):
        yield primary


@contextlib.contextmanager
def throwaway_clusters(
    port: int, workdir: Path, *, standby_port: int = 0
) -> Iterator[tuple[str, str | None]]:
    """Admin URLs of a fresh cluster and, with `standby_port`, of a hot standby of it."""
    cluster = Cluster(port, workdir)
    standby = None
    try:
        cluster.start()
        if standby_port:
            standby = Cluster(standby_port, workdir, standby_of=cluster)
            standby.start()
        yield cluster.url, standby.url if standby else None
    finally:
        try:
            if standby is not None:
                standby.remove()
        finally:
            cluster.remove()


def _run_pg(command: list[str | Path], *, cwd: Path) -> None:
    # The cwd must be one the postgres user can enter, or the tools warn about it.
    result = subprocess.run(
        _as_postgres([str(part) for part in command]),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed:\n{result.stdout}{result.stderr}")


def engine(url: str, **options: object) -> sa.Engine:
    """An unpooled engine on psycopg2 (SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3)."""
    return sa.create_engine(
        make_url(url).set(drivername="postgresql+psycopg2"), poolclass=sa.NullPool, **options
    )


def _admin(server_url: str) -> sa.Engine:
    return engine(server_url, isolation_level="AUTOCOMMIT")


@contextlib.contextmanager
def fresh_database(server_url: str, purpose: str) -> Iterator[str]:
    """A new, empty database on the server (a libpq URL), dropped on exit."""
    name = f"taskapi_bench_{purpose}_{uuid.uuid4().hex[:8]}"
    admin = _admin(server_url)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(server_url).set(drivername="postgresql", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def server_version(server_url: str) -> str:
    with _admin(server_url).connect() as conn:
        return str(conn.scalar(sa.text("SHOW server_version")))


class SessionCounter:
    """New sessions on one database, from pg_stat_database (PostgreSQL 14+).

    It reads through the server URL's own database, so its connections are not counted.
    """

    def __init__(self, server_url: str, database_url: str) -> None:
        self._engine = _admin(server_url)
        self._database = make_url(database_url).database
        with self._engine.connect() as conn:
            version = int(conn.scalar(sa.text("SHOW server_version_num")) or 0)
        self.supported = version >= 140000

    def read(self) -> int | None:
        if not self.supported:
            return None
        with self._engine.connect() as conn:
            sessions = conn.scalar(
                sa.text("SELECT sessions FROM pg_stat_database WHERE datname = :name"),
                {"name": self._database},
            )
        return int(sessions or 0)

    def since(self, before: int | None) -> int | None:
        """Sessions opened since `before`, an earlier read()."""
        after = self.read()
        return None if before is None or after is None else after - before
