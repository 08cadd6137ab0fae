"""How long `make run` takes on a fresh clone with empty package caches, to the first /health 200.

    .venv/bin/python -m tests.bench.cold_start [--revision HEAD] [--runs 3]

Each run clones the repository at the revision into a temporary directory, points pip's and
uv's caches at empty directories, runs `make run` there on a free port, and times it until
GET /health answers 200. The server is then stopped. It needs network access to the package
index, as a newcomer's first `make run` does.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from tests.serving import free_port

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 600.0


def cold_start(revision: str) -> float:
    """Seconds from `make run` to the first /health 200, on a fresh clone at `revision`."""
    with tempfile.TemporaryDirectory(prefix="taskapi-cold-") as scratch:
        work = Path(scratch)
        clone = work / "taskapi"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", revision], check=True)
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_"))},
            "PIP_NO_CACHE_DIR": "1",
            "UV_CACHE_DIR": str(work / "uv-cache"),
            "XDG_CACHE_HOME": str(work / "cache"),
            "SERVER_PORT": str(port),
            "METRICS_PORT": str(free_port()),
        }
        started = time.monotonic()
        server = subprocess.Popen(
            ["make", "run"],
            cwd=clone,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            while time.monotonic() - started < TIMEOUT:
                if server.poll() is not None:
                    raise RuntimeError(f"make run exited with {server.returncode}")
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                        return time.monotonic() - started
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
            raise RuntimeError(f"no /health 200 within {TIMEOUT:.0f} s")
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--revision", default="HEAD", help="the commit to clone (default HEAD)")
    parser.add_argument("--runs", type=int, default=3, help="cold starts to time (default 3)")
    args = parser.parse_args()
    seconds = []
    for run in range(1, args.runs + 1):
        seconds.append(cold_start(args.revision))
        print(f"run {run}: {seconds[-1]:.1f} s", flush=True)
    print(f"median {statistics.median(seconds):.1f} s over {len(seconds)} runs ({args.revision})")


if __name__ == "__main__":
    main()
