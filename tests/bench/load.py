"""The wrk scenarios: a fresh login, an unmeasured warm-up, then measured load, sampled."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.bench import client
from tests.bench.postgres import SessionCounter
from tests.bench.target import Target

# In this order: list runs before create grows A's tasks by thousands.
# list-token is list with a personal access token (tasks:read) in place of the login's JWT.
# sync before the writes: it times a poll with nothing new.
SCENARIOS = ("health", "list", "list-token", "get", "sync", "create", "update")
LUA_SCRIPT = Path(__file__).with_name("scenario.lua")
WRK_TIMEOUT = "10s"


@dataclass(frozen=True)
class LoadSettings:
    # wrk takes whole seconds.
    duration: int
    warmup: int
    threads: int
    connections: int


def wrk_path() -> str:
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError(
            "wrk is not installed: apt-get install wrk (Debian, Ubuntu), brew install wrk (macOS)"
        )
    return found


def run_wrk(
    target: Target, scenario: str, seconds: int, load: LoadSettings, env: dict[str, str]
) -> dict[str, Any]:
    """One wrk run of `scenario`; the summary scenario.lua's done() wrote."""
    summary = Path(env["BENCH_SUMMARY"])
    summary.unlink(missing_ok=True)
    command = [
        wrk_path(),
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{seconds}s",
        "--timeout",
        WRK_TIMEOUT,
        "-s",
        str(LUA_SCRIPT),
        target.base_url,
    ]
    result = subprocess.run(
        command,
        env={**os.environ, **env, "BENCH_SCENARIO": scenario},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 or not summary.is_file():
        raise RuntimeError(f"wrk failed on {scenario}:\n{result.stdout}{result.stderr}")
    figures: dict[str, Any] = json.loads(summary.read_text())
    figures["wrk_output"] = result.stdout
    return figures


def up_to_date(api: httpx.Client, token: str) -> str:
    """A change-feed position with nothing after it: a full sync, followed to its end."""
    params: dict[str, Any] = {"limit": 1000}
    while True:
        response = api.get(
            "/api/v1/tasks/changes", params=params, headers={"Authorization": f"Bearer {token}"}
        )
        response.raise_for_status()
        meta = response.json()["meta"]
        params = {"limit": 1000, "since": meta["next_since"]}
        if not meta["has_more"]:
            return str(meta["next_since"])


def personal_access_token(api: httpx.Client, token: str) -> str:
    """A new read-only personal access token of the account `token` is a login of."""
    response = api.post(
        "/api/v1/auth/tokens",
        json={"name": "bench", "scopes": ["tasks:read"]},
        headers={"Authorization": f"Bearer {token}"},
    )
    response.raise_for_status()
    return str(response.json()["data"]["token"])


def measure(
    target: Target,
    scenario: str,
    *,
    seeded: client.Seeded,
    load: LoadSettings,
    sessions: SessionCounter,
    workdir: Path,
) -> dict[str, Any]:
    """Warm up, then measure `scenario` while sampling the server and counting new sessions."""
    ids_file = workdir / "task-ids-a.txt"
    ids_file.write_text("".join(f"{task_id}\n" for task_id in seeded.task_ids_a))
    with client.api_client(target.base_url) as api:
        token = client.login(api, seeded.a)
        since = up_to_date(api, token) if scenario == "sync" else ""
        if scenario == "list-token":
            token = personal_access_token(api, token)
    env = {
        "BENCH_SINCE": since,
        "BENCH_TOKEN": token,
        "BENCH_IDS": str(ids_file),
        "BENCH_SUMMARY": str(workdir / f"wrk-{scenario}.json"),
    }
    if load.warmup > 0:
        run_wrk(target, scenario, load.warmup, load, env)

    sampler = target.sampler()
    sessions_before = sessions.read()
    sampler.start()
    try:
        figures = run_wrk(target, scenario, load.duration, load, env)
    finally:
        usage = sampler.stop()
    opened = sessions.since(sessions_before)
    (workdir / f"wrk-{scenario}.txt").write_text(figures.pop("wrk_output"))
    return _result(scenario, figures, asdict(usage), opened)


def _result(
    scenario: str, figures: dict[str, Any], usage: dict[str, Any], sessions_opened: int | None
) -> dict[str, Any]:
    seconds = figures["duration_us"] / 1e6
    latency = {k: v / 1000 for k, v in figures["latency_us"].items()}
    return {
        "scenario": scenario,
        "requests": figures["requests"],
        "duration_s": seconds,
        "requests_per_s": figures["requests"] / seconds if seconds else 0.0,
        "latency_ms": latency,
        "non_2xx": figures["non_2xx"],
        "socket_errors": figures["socket_errors"],
        "usage": usage,
        "pg_sessions_opened": sessions_opened,
    }


def headline(result: dict[str, Any]) -> str:
    """One line on a finished scenario, for the progress output."""
    latency = result["latency_ms"]
    return (
        f"{result['requests_per_s']:,.0f} req/s, p50 {latency['p50']:.1f} ms, "
        f"p99 {latency['p99']:.1f} ms, non-2xx {result['non_2xx']}"
    )
