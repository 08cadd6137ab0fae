"""The reliability suite: `taskapi serve --workers 2` on a PostgreSQL cluster the suite owns.

The cluster is started with initdb and pg_ctl on a free loopback port (tests/bench/postgres.py),
so a test may stop it and start it again; each test gets a fresh, migrated database on it and a
server of its own (tests/reliability/harness.py). Without PostgreSQL's server binaries the
suite skips, unless CI=true, where it fails.

Every test reports its figures with the `figures` fixture: one line each, printed after the
run's results (even with -q) and kept in the JUnit report as a property of the test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from taskapi.storage import migrate
from tests.bench import postgres
from tests.conftest import base_settings
from tests.reliability.harness import Server, serving
from tests.serving import free_port

FIGURES = pytest.StashKey[list[str]]()


def psycopg2_url(url: str) -> str:
    """`url` with psycopg2 named (SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3)."""
    return make_url(url).set(drivername="postgresql+psycopg2").render_as_string(False)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[postgres.Cluster]:
    """A PostgreSQL cluster of the suite's own, running; tests may stop and restart it."""
    try:
        postgres.server_bin_dir()
    except RuntimeError as error:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{error} (CI=true requires them)")
        pytest.skip(str(error))
    cluster = postgres.Cluster(free_port(), tmp_path_factory.mktemp("postgresql"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def database(cluster: postgres.Cluster) -> Iterator[str]:
    """A fresh database on the cluster, migrated; its psycopg2 URL."""
    with postgres.fresh_database(cluster.url, "reliability") as url:
        url = psycopg2_url(url)
        migrate.upgrade(base_settings(url))
        yield url


@pytest.fixture
def make_server(database: str, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Starts servers on the test's database with settings overrides; stopped afterwards."""
    with ExitStack() as stack:
        yield lambda **settings: stack.enter_context(serving(database, tmp_path, **settings))


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Reports one line of the test's figures: printed at the end, kept in the JUnit report."""

    def report(line: str) -> None:
        request.config.stash.setdefault(FIGURES, []).append(line)
        request.node.user_properties.append(("figures", line))

    return report


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lines = config.stash.get(FIGURES, [])
    if lines:
        terminalreporter.write_sep("-", "reliability figures")
        for line in lines:
            terminalreporter.write_line(line)
