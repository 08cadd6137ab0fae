"""A PostgreSQL primary and a streaming hot standby of it, on loopback, for the tests.

Both are clusters of their own (tests/bench/postgres.py's, made with initdb and
pg_basebackup), so pausing the standby's replay or stopping it touches nothing else. Without
PostgreSQL's server binaries the tests skip; under CI=true they fail instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from taskapi.storage import replicas
from tests.bench.postgres import Cluster, server_bin_dir
from tests.serving import free_port


class Node:
    """One server of the pair."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.port = cluster.port

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

    def __init__(self, primary: Cluster, standby: Cluster) -> None:
        self.primary, self.standby = Node(primary), Node(standby)

    def start_node(self, node: Node) -> None:
        node.cluster.start()

    def stop_node(self, node: Node) -> None:
        node.cluster.stop("fast")

    def promote_standby(self) -> None:
        """The standby becomes a primary of its own (a split, as a mistaken failover makes)."""
        self.standby.cluster.promote()

    def pause_replay(self) -> None:
        self.standby.sql("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self.standby.sql("SELECT pg_wal_replay_resume()")

    def primary_position(self) -> int:
        """Where the primary's WAL ends, as TaskAPI reads it after a write."""
        engine = sa.create_engine(self.primary.url(), poolclass=sa.NullPool)
        try:
            with engine.connect() as c:
                return replicas.write_position(c)
        finally:
            engine.dispose()

    def wait_for_standby(self, timeout: float = 10) -> None:
        """Until the standby has replayed everything the primary wrote so far."""
        target = self.primary_position()
        deadline = time.monotonic() + timeout
        while True:
            (replayed,) = self.standby.sql("SELECT pg_last_wal_replay_lsn()::text")[0]
            if replicas.parse_lsn(replayed) >= target:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"standby did not replay up to {target:X}")
            time.sleep(0.02)


def _require_server_binaries() -> None:
    try:
        server_bin_dir()
    except RuntimeError as missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{missing} (CI=true requires them)")
        pytest.skip(str(missing))


@contextmanager
def replicated_pair() -> Iterator[ReplicatedPair]:
    _require_server_binaries()
    logs = Path(tempfile.mkdtemp(prefix="taskapi-replication-"))
    primary = Cluster(free_port(), logs)
    standby = None
    try:
        primary.start()
        standby = Cluster(free_port(), logs, standby_of=primary)
        standby.start()
        yield ReplicatedPair(primary, standby)
    finally:
        try:
            if standby is not None:
                standby.remove()
        finally:
            primary.remove()
            shutil.rmtree(logs, ignore_errors=True)
