"""The README, run as a newcomer pastes it, on a fresh server of each database.

The shell, console and python blocks of "Walkthrough" (with "Beyond the seed") and "Docs and
clients" run in order in one shell (tests/doc_blocks.py), against `taskapi serve` on a
database of their own; on PostgreSQL the server is the one "Running on PostgreSQL" creates,
migrates and starts. What the README shows or claims next to each command is checked.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests import doc_blocks
from tests.serving import free_port, wait_until_serving

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
README = doc_blocks.Page(ROOT / "README.md")
SECTIONS = ("Walkthrough", "Docs and clients")
README_URL = "http://localhost:8080"
README_DATABASE = "postgresql://postgres@127.0.0.1:5432/taskapi"
README_SERVE = re.compile(r"^\.venv/bin/taskapi serve.*$", re.M)

pytestmark = pytest.mark.live


def require_tools() -> None:
    """The README's tools: curl and jq, and npx for its TypeScript block. Missing, the test
    skips, saying which; under CI=true (.ci/run installs them) it fails."""
    missing = [tool for tool in ("curl", "jq", "npx") if not shutil.which(tool)]
    if missing:
        message = f"the README's blocks need {', '.join(missing)}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def environment(port: int) -> dict[str, str]:
    """A reader's shell: nothing of the test suite's configuration, the server on `port`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "DB_", "JWT_", "RATE_LIMIT", "TASKAPI_", "BCRYPT"))
    }
    # The generated SDK, as `pip install ./build/client` would make it importable.
    env["PYTHONPATH"] = str(ROOT / "build" / "client")
    env["SERVER_PORT"] = str(port)
    env["METRICS_PORT"] = "0"
    # A reader pastes at a person's pace; this script at a machine's, past the default budget
    # of 20 requests a second per user (the README's logout then met a 429).
    env["RATE_LIMIT_DEFAULT"] = "none"
    return env


def run_readme(
    steps: list[doc_blocks.Step], env: dict[str, str], logs: Path, rewrite: Callable[[str], str]
) -> None:
    result = doc_blocks.run(
        steps, cwd=ROOT, env=env, logs=logs, python=BIN / "python", rewrite=rewrite
    )
    found = doc_blocks.problems(result)
    assert not found, "the README does not do what it says:\n" + "\n".join(found)


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`make run`'s server: `taskapi serve` with nothing configured, in a directory of its own."""
    require_tools()
    port = free_port()
    env = environment(port)
    log = tmp_path / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [BIN / "taskapi", "serve"], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base, process, log, timeout=60)
        yield base, env
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_readme_works_as_pasted_on_sqlite(sqlite_server, tmp_path):
    base, env = sqlite_server
    run_readme(README.steps(*SECTIONS), env, tmp_path, lambda text: text.replace(README_URL, base))


@pytest.mark.postgres
def test_the_readme_works_as_pasted_on_postgresql(postgres_server, tmp_path):
    """From a server with no database for it: "Running on PostgreSQL" creates it, migrates it
    and serves; the walkthrough runs against that."""
    require_tools()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    name = f"taskapi_readme_{uuid.uuid4().hex[:8]}"
    url = make_url(postgres_server).set(drivername="postgresql", database=name)
    database = url.render_as_string(hide_password=False)
    setup = README.steps("Running on PostgreSQL")
    assert any(README_DATABASE in step.text for step in setup)
    assert any(README_SERVE.search(step.text) for step in setup)

    def rewrite(text: str) -> str:
        text = text.replace(README_URL, base).replace(README_DATABASE, database)
        # The reader keeps the server in one terminal and goes on in another.
        return README_SERVE.sub(
            lambda serve: (
                f"{serve.group(0)} >{tmp_path / 'server.log'} 2>&1 &\n"
                f"for _ in $(seq 300); do curl -sf -o /dev/null {base}/health && break; "
                "sleep 0.1; done"
            ),
            text,
        )

    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        steps = setup + README.steps(*SECTIONS)
        run_readme(steps, environment(port), tmp_path, rewrite)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
