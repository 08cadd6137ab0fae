"""The deep contract pass: Schemathesis against a live `taskapi serve`, on SQLite and PostgreSQL.

    python tests/contract/run.py [--backend sqlite|postgresql ...] [-- extra schemathesis args]

For each backend: a fresh, migrated database; the server with two workers and response
validation on; the two accounts of tests/contract/auth.yaml; then `schemathesis run` with every
check, the fixed seed and the settings of tests/contract/schemathesis.toml. JUnit reports go to
reports/contract-<backend>.xml. PostgreSQL comes from TEST_DATABASE_URL (default: the local
server), in a database of its own that is dropped afterwards.

The backends run at the same time (each run waits on its server most of the time, so two
share the cores well); each one's output is kept in reports/contract-<backend>.log and
printed, whole, when it ends.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

import httpx
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
# Run as a script, this file's folder is on sys.path; the checkout's `tests` package is not.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tests.serving import free_port, wait_until_serving  # noqa: E402

HERE = Path(__file__).resolve().parent
REPORTS = ROOT / "reports"
DEFAULT_PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
BIN = Path(sys.executable).parent


@contextlib.contextmanager
def database(backend: str, workdir: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'contract.db'}"
        return
    server = os.environ.get("TEST_DATABASE_URL", DEFAULT_PG_URL)
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    name = f"taskapi_contract_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def server(database_url: str, workdir: Path) -> Iterator[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "JWT_SECRET": secrets.token_urlsafe(48),
        "BCRYPT_ROUNDS": "4",
        # The fuzzer logs in far more often than a person; the limiter runs, at this budget.
        "RATE_LIMIT_AUTH": "100000/minute",
        "RATE_LIMIT_AUTH_EMAIL": "100000/minute",
        "RATE_LIMIT_LOGIN_SLOWDOWN": "100000/minute",
        "RATE_LIMIT_DEFAULT": "100000/minute",
        "BCRYPT_QUEUE": "100",
        "VALIDATE_RESPONSES": "true",
        "LOG_LEVEL": "warning",
    }
    subprocess.run([BIN / "taskapi", "db", "upgrade"], env=env, cwd=workdir, check=True)
    port = free_port()
    log = workdir / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [BIN / "taskapi", "serve", "--port", str(port), "--workers", "2", "--no-access-log"],
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_serving(base, process, log, timeout=30)
            yield base
        finally:
            process.terminate()
            process.wait(timeout=30)
    errors = [line for line in log.read_text().splitlines() if "Traceback" in line]
    if errors:
        print(log.read_text(), file=sys.stderr)
        raise RuntimeError("the server logged tracebacks during the contract run")


def register_accounts(base: str) -> None:
    """Create the accounts the WFC auth document logs in as."""
    document = yaml.safe_load((HERE / "auth.yaml").read_text())
    for account in document["auth"]:
        credentials = account["loginEndpointAuth"]["payloadUserPwd"]
        body = {
            "email": credentials["username"],
            "password": credentials["password"],
            "name": account["name"].title(),
        }
        response = httpx.post(f"{base}/api/v1/auth/register", json=body, timeout=10)
        if response.status_code != 201:
            raise RuntimeError(f"registering {account['name']}: {response.text}")


# CPython 3.11's AST constructor now and then fails a sound parse with this SystemError
# (python/cpython#106905). Hypothesis parses Schemathesis' own modules to describe the lambdas
# it filters with, and Schemathesis reports the failure as a runtime error of its own. Such a
# run says nothing about the API, so it is run once more, from a fresh database; a second one
# fails like any other.
INTERPRETER_FLAKE = "AST constructor recursion depth mismatch"


def run(backend: str, extra: list[str]) -> int:
    """One backend's run, its output in reports/contract-<backend>.log; its exit status."""
    log = REPORTS / f"contract-{backend}.log"
    with log.open("w") as out:
        status = _run(backend, extra, out)
    if status != 0 and INTERPRETER_FLAKE in log.read_text():
        first = log.rename(log.with_suffix(".first.log"))
        with log.open("w") as out:
            print(
                f"== {backend}: the first run hit {INTERPRETER_FLAKE!r} (python/cpython#106905,"
                f" see {first.name}); running it again",
                file=out,
                flush=True,
            )
            status = _run(backend, extra, out)
    with _printing:
        print(log.read_text(), end="", flush=True)
    return status


_printing = threading.Lock()


def _run(backend: str, extra: list[str], out: TextIO) -> int:
    with (
        tempfile.TemporaryDirectory(prefix=f"contract-{backend}-") as tmp,
        database(backend, Path(tmp)) as url,
        server(url, Path(tmp)) as base,
    ):
        register_accounts(base)
        print(f"== Schemathesis on {backend}: {base}", file=out, flush=True)
        command = [
            BIN / "schemathesis",
            "--config-file",
            HERE / "schemathesis.toml",
            "run",
            ROOT / "openapi" / "openapi.yaml",
            "--url",
            base,
            "--checks",
            "all",
            "--report",
            "junit",
            "--report-junit-path",
            REPORTS / f"contract-{backend}.xml",
            *extra,
        ]
        env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.contract.hooks", "PYTHONPATH": str(ROOT)}
        return subprocess.run(
            command, cwd=HERE, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        ).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backend", action="append", choices=("sqlite", "postgresql"), help="default: both"
    )
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    backends = args.backend or ["sqlite", "postgresql"]
    REPORTS.mkdir(exist_ok=True)
    with ThreadPoolExecutor(max_workers=len(backends)) as pool:
        statuses = list(pool.map(lambda backend: run(backend, extra), backends))
    failures = [b for b, status in zip(backends, statuses, strict=True) if status != 0]
    if failures:
        print(f"contract failures on: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
