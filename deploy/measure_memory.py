"""Measure what `taskapi serve` uses, to size the Kubernetes requests and limits.

Starts `taskapi serve --workers N` on a fresh SQLite file (or DATABASE_URL), sends a short,
light load from one client (register, a few logins, creates and lists), and prints the resident
memory (RSS, and PSS, which shares copy-on-write pages fairly) of the server's processes, read
from /proc, after start-up and after the load, plus the CPU they spent.

    .venv/bin/python deploy/measure_memory.py --workers 1
    .venv/bin/python deploy/measure_memory.py --workers 2 --requests 400
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

PASSWORD = "measure-password-123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        children = Path(f"/proc/{current}/task/{current}/children")
        if children.exists():
            queue.extend(int(c) for c in children.read_text().split())
    return found


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value)
    return fields["Rss"], fields["Pss"]


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def report(label: str, root: int) -> None:
    rows = [(pid, *memory_kib(pid), cpu_seconds(pid)) for pid in tree(root)]
    for pid, rss, pss, cpu in rows:
        print(
            f"{label:>12}  pid {pid:>7}  rss {rss / 1024:6.1f} MiB  pss {pss / 1024:6.1f} MiB"
            f"  cpu {cpu:5.2f} s"
        )
    total_rss = sum(r[1] for r in rows) / 1024
    total_pss = sum(r[2] for r in rows) / 1024
    print(f"{label:>12}  total       rss {total_rss:6.1f} MiB  pss {total_pss:6.1f} MiB")


def load(base: str, requests: int) -> float:
    """Light, sequential traffic; the seconds it took."""
    started = time.monotonic()
    with httpx.Client(base_url=base, timeout=30) as http:
        body = {"email": f"m-{time.time_ns()}@example.com", "password": PASSWORD, "name": "Measure"}
        http.post("/api/v1/auth/register", json=body).raise_for_status()
        token = ""
        for _ in range(3):
            token = http.post("/api/v1/auth/login", json=body).json()["data"]["token"]
        headers = {"Authorization": f"Bearer {token}"}
        for i in range(requests):
            if i % 2:
                http.get("/api/v1/tasks?limit=20", headers=headers).raise_for_status()
            else:
                task = {"title": f"task {i}", "description": "x" * 200}
                http.post("/api/v1/tasks", json=task, headers=headers).raise_for_status()
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as workdir:
        port = free_port()
        env = {
            **os.environ,
            "TASKAPI_ENV": "production",
            "JWT_SECRET": "measure-secret-that-is-long-enough-for-hs256",
            "DATABASE_URL": os.environ.get("DATABASE_URL", f"sqlite:///{workdir}/taskapi.db"),
            "SERVER_HOST": "127.0.0.1",
            "LOG_LEVEL": "warning",
            "METRICS_PORT": str(free_port()),
            # One client sends the whole load: a budget it never meets.
            "RATE_LIMIT_DEFAULT": "1000000/hour;100000/second",
        }
        if not env["DATABASE_URL"].startswith("sqlite"):
            subprocess.run([sys.executable, "-m", "taskapi", "db", "upgrade"], env=env, check=True)
        # Our own server, from this interpreter.
        server = subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                "-m",
                "taskapi",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
                "--no-access-log",
            ],
            cwd=workdir,
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    print("taskapi serve did not start", file=sys.stderr)
                    return 1
                time.sleep(0.2)
            time.sleep(1)
            report("started", server.pid)
            seconds = load(base, args.requests)
            print(f"load: {args.requests + 4} requests in {seconds:.1f} s")
            report("after load", server.pid)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
