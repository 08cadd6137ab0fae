"""Benchmark TaskAPI on PostgreSQL the way a user runs it: `make bench` (BENCH_ARGS=...).

    python -m tests.bench.run [--scenarios list,get] [--duration 10] [--workers 2] [--cmd ...]

PostgreSQL is TEST_DATABASE_URL's server if set, else a throwaway cluster started here. The
target is migrated with `taskapi db upgrade`, served with `taskapi serve` (production settings,
a random JWT secret) in a session of its own, seeded through the API, and put under wrk. Results
go to reports/bench/<timestamp>/results.json and results.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from tests.bench import client, deep, flood, load, postgres, report, target
from tests.serving import free_port

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "reports" / "bench"
# `make bench` installs the wheel into a venv of its own, without the dev extras, as the image
# does (TASKAPI_BIN names its `taskapi`); run directly, the harness uses this venv's. Made
# absolute: the setup and the server run in the run's own directory.
TASKAPI = Path(os.environ.get("TASKAPI_BIN") or Path(sys.executable).parent / "taskapi").absolute()
DEFAULT_SETUP = f"{shlex.quote(str(TASKAPI))} db upgrade"
DEFAULT_CMD = (
    f'exec {shlex.quote(str(TASKAPI))} serve --host 127.0.0.1 --port "$SERVER_PORT" '
    '--workers "$WORKERS" --no-access-log'
)
EXTRA_SCENARIOS = ("login-flood", "deep")
ALL_SCENARIOS = (*load.SCENARIOS, *EXTRA_SCENARIOS)
BUSY_WARNING_PERCENT = 10.0


def scenario_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(ALL_SCENARIOS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown scenario {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(ALL_SCENARIOS)}"
        )
    # Always in the canonical order, whatever order they were named in.
    return [name for name in ALL_SCENARIOS if name in names]


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def not_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.run",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--scenarios",
        type=scenario_list,
        default=",".join(load.SCENARIOS),
        help=f"comma-separated, from {', '.join(ALL_SCENARIOS)} "
        "(login-flood and deep run only when named)",
    )
    add("--duration", type=positive, default=10, help="measured seconds per scenario")
    add(
        "--warmup",
        type=not_negative,
        default=2,
        help="unmeasured seconds of load before each (0: none)",
    )
    add("--connections", type=positive, default=32, help="wrk connections")
    add("--threads", type=positive, default=2, help="wrk threads")
    add("--tasks", type=positive, default=1000, help="tasks seeded per user")
    add("--workers", type=positive, default=2, help="server processes (deep always uses 1)")
    add(
        "--cmd",
        default=DEFAULT_CMD,
        help="the server command (bash, in the run's directory; $SERVER_PORT, $WORKERS, "
        "$DATABASE_URL, $DB_HOST... are set); `exec` it so that it leads its session",
    )
    add("--setup", default=DEFAULT_SETUP, help="run on the fresh database before the server starts")
    add("--deep-rows", type=positive, default=1_000_000, help="tasks the deep scenario inserts")
    add("--deep-samples", type=positive, default=50, help="requests per page kind and sort")
    add("--login-rate", type=float, default=20.0, help="login attempts per second (login-flood)")
    add(
        "--standby",
        action="store_true",
        help="add a streaming hot standby of a throwaway cluster, as DATABASE_READ_URL "
        "(needs --redis with more than one worker)",
    )
    add("--redis", default="", metavar="URL", help="REDIS_URL for the target (default: none)")
    args = parser.parse_args(argv)
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads (wrk needs a connection per thread)")
    return args


def target_env(
    database_url: str, *, port: int, workers: int, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment of the target's setup and server: production, as a user deploys it."""
    url = make_url(database_url)
    return {
        **os.environ,
        **(extra or {}),
        "TASKAPI_ENV": "production",
        "JWT_SECRET": secrets.token_urlsafe(48),
        "DATABASE_URL": database_url,
        "SERVER_PORT": str(port),
        "PORT": str(port),
        "WORKERS": str(workers),
        "WEB_CONCURRENCY": str(workers),
        # A few users make every request: budgets they never meet, so the limiter still runs
        # (and costs what it costs) on every request.
        "RATE_LIMIT_DEFAULT": "100000000/hour;1000000/second",
        "RATE_LIMIT_AUTH": "1000000/minute",
        "RATE_LIMIT_AUTH_EMAIL": "1000000/minute",
        "RATE_LIMIT_LOGIN_SLOWDOWN": "100000000/hour",
        # The seed API's variables, for another implementation that reads those instead.
        "DB_HOST": url.host or "127.0.0.1",
        "DB_PORT": str(url.port or 5432),
        "DB_USER": url.username or "postgres",
        "DB_PASSWORD": url.password or "",
        "DB_NAME": url.database or "",
        "DB_SSLMODE": "disable",
    }


@contextmanager
def served(
    args: argparse.Namespace,
    server_url: str,
    purpose: str,
    workdir: Path,
    *,
    workers: int,
    standby_url: str | None = None,
) -> Iterator[tuple[target.Target, str]]:
    """A fresh database, set up, and the target serving it: (target, database URL)."""
    with postgres.fresh_database(server_url, purpose) as database_url:
        port = free_port()
        extra = {"REDIS_URL": args.redis} if args.redis else {}
        if standby_url:
            name = make_url(database_url).database
            read = make_url(standby_url).set(drivername="postgresql", database=name)
            extra["DATABASE_READ_URL"] = read.render_as_string(hide_password=False)
        env = target_env(database_url, port=port, workers=workers, extra=extra)
        log = workdir / f"server-{purpose}.log"
        target.run_setup(args.setup, env=env, cwd=workdir, log=log)
        with target.running(args.cmd, env=env, cwd=workdir, log=log, port=port) as server:
            yield server, database_url


def run_main_scenarios(
    args: argparse.Namespace, server_url: str, workdir: Path, standby_url: str | None = None
) -> dict[str, Any]:
    """The wrk scenarios and login-flood, on one server with --workers processes."""
    results: dict[str, Any] = {}
    with served(
        args, server_url, "main", workdir, workers=args.workers, standby_url=standby_url
    ) as (server, database_url):
        say(f"seeding: 2 users, {args.tasks:,} tasks each")
        seeded = client.seed(server.base_url, args.tasks)
        sessions = postgres.SessionCounter(server_url, database_url)
        settings = load.LoadSettings(args.duration, args.warmup, args.threads, args.connections)
        results["load"] = []
        for scenario in (s for s in args.scenarios if s in load.SCENARIOS):
            say(f"{scenario}: {args.warmup} s warm-up, {args.duration} s measured")
            result = load.measure(
                server, scenario, seeded=seeded, load=settings, sessions=sessions, workdir=workdir
            )
            print(f"   {load.headline(result)}", flush=True)
            results["load"].append(result)
        if "login-flood" in args.scenarios:
            rate = f"{args.login_rate:g} logins/s"
            say(f"login-flood: {args.duration} s quiet, then {args.duration} s at {rate}")
            results["login_flood"] = flood.run(
                server.base_url, seeded.a, rate=args.login_rate, seconds=args.duration
            )
    return results


def run_deep(args: argparse.Namespace, server_url: str, workdir: Path) -> dict[str, Any]:
    # One worker: the latencies are of one process serving one request at a time.
    with served(args, server_url, "deep", workdir, workers=1) as (server, database_url):
        say(f"deep: {args.deep_rows:,} tasks, {args.deep_samples} samples per page kind and sort")
        return deep.run(
            server.base_url, database_url, rows=args.deep_rows, samples=args.deep_samples
        )


def say(message: str) -> None:
    print(f"== {message}", flush=True)


def git_revision() -> str:
    result = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "unknown"


def describe_setup(args: argparse.Namespace, pg_version: str, busy_before: float) -> dict[str, Any]:
    origin = (
        "TEST_DATABASE_URL"
        if os.environ.get("TEST_DATABASE_URL") and not args.standby
        else "throwaway cluster"
    )
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "revision": git_revision(),
        "scenarios": ",".join(args.scenarios),
        "wrk": f"-t{args.threads} -c{args.connections} --timeout {load.WRK_TIMEOUT}, "
        f"{args.warmup} s warm-up + {args.duration} s measured",
        "workers": args.workers,
        "tasks per user": args.tasks,
        "server command": args.cmd,
        "setup command": args.setup,
        "PostgreSQL": f"{pg_version} ({origin})"
        + (", reads on a streaming hot standby" if args.standby else ""),
        "Redis": args.redis or "none",
        "machine": f"{target.CPUS} CPUs, {platform.machine()}, Python {platform.python_version()}",
        "CPU busy before the run (%)": round(busy_before, 1),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if any(s in load.SCENARIOS for s in args.scenarios):
        load.wrk_path()  # fail before any setup when wrk is missing
    # A SIGTERM (a CI timeout, kill) unwinds like Ctrl-C, so the server and cluster are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    busy = target.machine_busy_percent()
    if busy > BUSY_WARNING_PERCENT:
        print(
            f"warning: the CPUs were {busy:.0f}% busy before the run; figures will be noisy",
            file=sys.stderr,
        )
    out = REPORTS / datetime.now().strftime("%Y%m%d-%H%M%S")
    # Server and PostgreSQL logs, wrk's own output and the ids it picks from.
    raw = out / "raw"
    raw.mkdir(parents=True)
    results: dict[str, Any] = {}
    started = time.monotonic()
    standby_port = free_port() if args.standby else 0
    with postgres.server(free_port(), raw, standby_port=standby_port) as (server_url, standby):
        pg_version = postgres.server_version(server_url)
        if set(args.scenarios) - {"deep"}:
            results |= run_main_scenarios(args, server_url, raw, standby)
        if "deep" in args.scenarios:
            results["deep"] = run_deep(args, server_url, raw)
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    tables = report.write(out, describe_setup(args, pg_version, busy), results)
    print(f"\n{tables}\n\nwritten to {out.relative_to(ROOT)}/results.md and results.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
