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
def server(port: int, workdir: Path) -> Iterator[str]:
    """An admin URL (to the `postgres` database) of the server the run uses."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    with throwaway_cluster(port, workdir) as url:
        yield url


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


@contextlib.contextmanager
def throwaway_cluster(port: int, workdir: Path) -> Iterator[str]:
    """A fresh cluster on 127.0.0.1:`port`, deleted on exit; its log is copied to workdir."""
    bindir = server_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="taskapi-bench-pg-"))
    data, log = root / "data", root / "postgresql.log"
    try:
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        # --no-sync only skips initdb's own fsyncs at creation; the server keeps fsync on.
        initdb = [bindir / "initdb", "-D", data, "-U", "postgres", "-A", "trust"]
        _run_pg([*initdb, "-E", "UTF8", "--no-locale", "--no-sync"], cwd=root)
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} "
            f"-c max_connections={MAX_CONNECTIONS}"
        )
        _run_pg([bindir / "pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "start"], cwd=root)
        try:
            yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
        finally:
            _run_pg([bindir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"], cwd=root)
    finally:
        if log.is_file():
            shutil.copyfile(log, workdir / log.name)
        shutil.rmtree(root, ignore_errors=True)


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
