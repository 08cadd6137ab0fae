"""The server under test: a shell command started in a session of its own, sampled, stopped.

Its session id (the leader's pid) finds every process it forks or spawns, and only those, in
/proc; its process group is what SIGTERM and SIGKILL are sent to.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.serving import log_tail, wait_until_serving

STARTUP_TIMEOUT = 60
STOP_GRACE = 15
SAMPLE_INTERVAL = 0.2
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CPUS = os.cpu_count() or 1
MB = 1024 * 1024


@dataclass(frozen=True)
class ProcessStat:
    pid: int
    session: int
    rss_bytes: int
    cpu_ticks: int


def process_stat(pid: int) -> ProcessStat | None:
    """A process's session, memory and CPU from /proc/<pid>/stat; None if gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name, which may itself hold spaces and parentheses.
    fields = text[text.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    utime, stime, rss_pages = int(fields[11]), int(fields[12]), int(fields[21])
    return ProcessStat(pid, int(fields[3]), rss_pages * PAGE_BYTES, utime + stime)


def session_processes(session: int) -> list[ProcessStat]:
    stats = (process_stat(int(entry)) for entry in os.listdir("/proc") if entry.isdigit())
    return [stat for stat in stats if stat is not None and stat.session == session]


def machine_cpu_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    # guest time is already counted in user and nice.
    total = sum(values[:8])
    return total - idle, total


def machine_busy_percent(seconds: float = 1.0) -> float:
    busy0, total0 = machine_cpu_ticks()
    time.sleep(seconds)
    busy1, total1 = machine_cpu_ticks()
    return 100.0 * (busy1 - busy0) / max(total1 - total0, 1)


@dataclass
class Usage:
    """What the server's processes used during a measured window."""

    peak_rss_sum_mb: float = 0.0
    peak_rss_largest_mb: float = 0.0
    max_processes: int = 0
    # Shares of the whole machine (all cores = 100): the server's, and everything's.
    server_cpu_percent: float = 0.0
    machine_cpu_percent: float = 0.0
    samples: int = 0


class UsageSampler:
    """Samples a session's processes every 0.2 s on a thread, between start() and stop()."""

    def __init__(self, session: int) -> None:
        self.session = session
        self.usage = Usage()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)
        self._started = 0.0
        self._machine0 = (0, 0)
        self._server0 = 0

    def start(self) -> None:
        self._started = time.monotonic()
        self._machine0 = machine_cpu_ticks()
        self._server0 = self._server_ticks()
        self._thread.start()

    def stop(self) -> Usage:
        self._stop.set()
        self._thread.join()
        elapsed = time.monotonic() - self._started
        busy1, total1 = machine_cpu_ticks()
        busy0, total0 = self._machine0
        server_seconds = (self._server_ticks() - self._server0) / CLOCK_TICKS
        self.usage.server_cpu_percent = 100.0 * server_seconds / (elapsed * CPUS)
        self.usage.machine_cpu_percent = 100.0 * (busy1 - busy0) / max(total1 - total0, 1)
        return self.usage

    def _server_ticks(self) -> int:
        return sum(stat.cpu_ticks for stat in session_processes(self.session))

    def _sample_until_stopped(self) -> None:
        while True:
            self._sample()
            if self._stop.wait(SAMPLE_INTERVAL):
                return

    def _sample(self) -> None:
        processes = session_processes(self.session)
        if not processes:
            return
        usage = self.usage
        usage.samples += 1
        usage.max_processes = max(usage.max_processes, len(processes))
        usage.peak_rss_sum_mb = max(usage.peak_rss_sum_mb, sum(p.rss_bytes for p in processes) / MB)
        largest = max(p.rss_bytes for p in processes) / MB
        usage.peak_rss_largest_mb = max(usage.peak_rss_largest_mb, largest)


@dataclass
class Target:
    """A running server: its session leader, where it listens, where it logs."""

    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    @property
    def session(self) -> int:
        return self.process.pid

    def sampler(self) -> UsageSampler:
        return UsageSampler(self.session)


def run_setup(command: str, *, env: Mapping[str, str], cwd: Path, log: Path) -> None:
    """Run the target's setup (its migrations) to completion, or fail with its output."""
    with log.open("ab") as out:
        result = subprocess.run(
            ["bash", "-c", command], env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT
        )
    if result.returncode != 0:
        raise RuntimeError(f"setup failed ({command}): {log_tail(log)}")


@contextlib.contextmanager
def running(
    command: str, *, env: Mapping[str, str], cwd: Path, log: Path, port: int
) -> Iterator[Target]:
    """The server `command` starts, once it answers GET /health; stopped on exit."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            ["bash", "-c", command],
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    target = Target(process, f"http://127.0.0.1:{port}", log)
    try:
        wait_until_serving(target.base_url, process, log, timeout=STARTUP_TIMEOUT)
        yield target
    finally:
        stop(target)


def stop(target: Target) -> None:
    """SIGTERM to the server's process group; SIGKILL to whatever of its session is left."""
    _signal_group(target.session, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while time.monotonic() < deadline:
        target.process.poll()  # reaps the leader, which would otherwise stay a zombie
        if not session_processes(target.session):
            break
        time.sleep(0.1)
    else:
        _signal_group(target.session, signal.SIGKILL)
        for stat in session_processes(target.session):
            with contextlib.suppress(ProcessLookupError):
                os.kill(stat.pid, signal.SIGKILL)
    target.process.wait()


def _signal_group(group: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signum)
