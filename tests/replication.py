"""A PostgreSQL primary and a streaming hot standby of it, on loopback, for the tests.

Both are clusters of their own, made with the server's initdb and pg_basebackup in a temporary
directory, so pausing the standby's replay or stopping it touches nothing else. PostgreSQL
refuses to run as root; as root they run as the `postgres` user. Without PostgreSQL's server
binaries the tests skip; under CI=true they fail instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.serving import free_port

# Fast enough for tests, not for data anyone keeps: nothing is fsynced.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "full_page_writes": "off",
    "wal_level": "replica",
    "max_wal_senders": "4",
    "hot_standby": "on",
    "hot_standby_feedback": "on",
    "max_connections": "100",
    "shared_buffers": "32MB",
    "logging_collector": "off",
}


def server_binaries() -> Path:
    """The directory of PostgreSQL's server programs (initdb, pg_ctl, pg_basebackup)."""
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    reason = "no PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason + " (CI=true requires them)")
    pytest.skip(reason)


@dataclass
class Node:
    """One server of the pair."""

    directory: Path
    port: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> list[tuple]:
        engine = sa.create_engine(
            self.url(database), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
        )
        try:
            with engine.connect() as c:
                result = c.execute(sa.text(statement))
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            engine.dispose()


class ReplicatedPair:
    """A primary and its hot standby (asynchronous streaming replication)."""

    def __init__(self, workdir: Path, binaries: Path) -> None:
        self.workdir = workdir
        self.binaries = binaries
        self.primary = Node(workdir / "primary", free_port())
        self.standby = Node(workdir / "standby", free_port())

    def _run(self, *command: str, timeout: float = 60) -> None:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            [*as_postgres, *command],
            check=True,
            timeout=timeout,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.workdir,
        )

    def _pg_ctl(self, node: Node, action: str, *extra: str) -> None:
        self._run(
            str(self.binaries / "pg_ctl"),
            action,
            "-D",
            str(node.directory),
            "-w",
            "-t",
            "30",
            *extra,
        )

    def start(self) -> None:
        self._run(
            str(self.binaries / "initdb"),
            "-D",
            str(self.primary.directory),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
        )
        self._configure(self.primary)
        self.start_node(self.primary)
        self._run(
            str(self.binaries / "pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.primary.port),
            "-U",
            "postgres",
            "-D",
            str(self.standby.directory),
            "-R",
            "-X",
            "stream",
            "--checkpoint=fast",
            "--no-sync",
        )
        self._configure(self.standby)
        self.start_node(self.standby)

    def _configure(self, node: Node) -> None:
        settings = {
            **SETTINGS,
            "port": str(node.port),
            "unix_socket_directories": f"'{self.workdir}'",
        }
        lines = "".join(f"{name} = {value}\n" for name, value in settings.items())
        with (node.directory / "postgresql.auto.conf").open("a") as conf:
            conf.write(lines)

    def start_node(self, node: Node) -> None:
        log = self.workdir / f"{node.directory.name}.log"
        self._pg_ctl(node, "start", "-l", str(log))

    def stop_node(self, node: Node) -> None:
        self._pg_ctl(node, "stop", "-m", "fast")

    def stop(self) -> None:
        for node in (self.standby, self.primary):
            with suppress(subprocess.SubprocessError):
                self._pg_ctl(node, "stop", "-m", "immediate")

    def promote_standby(self) -> None:
        """The standby becomes a primary of its own (a split, as a mistaken failover makes)."""
        self._pg_ctl(self.standby, "promote")

    def pause_replay(self) -> None:
        self.standby.sql("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self.standby.sql("SELECT pg_wal_replay_resume()")

    def wait_for_standby(self, timeout: float = 10) -> None:
        """Until the standby has replayed everything the primary wrote so far."""
        (target,) = self.primary.sql("SELECT pg_current_wal_insert_lsn()")[0]
        deadline = time.monotonic() + timeout
        while True:
            (caught_up,) = self.standby.sql(
                f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"
            )[0]
            if caught_up:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"standby did not replay up to {target}")
            time.sleep(0.02)


@contextmanager
def replicated_pair() -> Iterator[ReplicatedPair]:
    binaries = server_binaries()
    workdir = Path(tempfile.mkdtemp(prefix="taskapi-replication-"))
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
    pair = ReplicatedPair(workdir, binaries)
    try:
        pair.start()
        yield pair
    finally:
        pair.stop()
        shutil.rmtree(workdir, ignore_errors=True)
