"""Starting a server under test: a free loopback port, and waiting until the server answers.

Every test-side start of `taskapi serve` (the fixtures, the fleet, the benchmark's target, the
reliability harness, the contract runner, the image test) waits here, so a server that dies or
never answers fails the same way everywhere: with its log, not with a bare timeout.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx

# One probe may wait this long for its answer (/ready checks the database behind it).
PROBE_TIMEOUT = 5.0
PROBE_INTERVAL = 0.1
# Enough for a start-up traceback; a log appended to across runs is cut to its end.
LOG_LINES = 200


class ServerDidNotStart(RuntimeError):
    """The server exited, or did not answer 200, before its deadline; the message has its log."""


def free_port() -> int:
    """A loopback TCP port nothing listens on at the moment."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_serving(
    base_url: str,
    process: subprocess.Popen[bytes],
    log: Path,
    *,
    timeout: float,
    path: str = "/health",
) -> None:
    """Return once GET `path` answers 200; raise ServerDidNotStart, with the end of `log`, as
    soon as `process` exits or after `timeout` seconds. Stopping the process is the caller's."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            probe_timeout = min(PROBE_TIMEOUT, max(deadline - time.monotonic(), 0.5))
            if httpx.get(f"{base_url}{path}", timeout=probe_timeout).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise ServerDidNotStart(
                f"{base_url}: the server exited with status {process.returncode} before GET "
                f"{path} answered 200; {log_tail(log)}"
            )
        if time.monotonic() > deadline:
            raise ServerDidNotStart(
                f"{base_url}: GET {path} did not answer 200 within {timeout:g} s; {log_tail(log)}"
            )
        time.sleep(PROBE_INTERVAL)


def log_tail(log: Path, lines: int = LOG_LINES) -> str:
    """`log`'s name and its last `lines` lines, for a failure message."""
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError as error:
        return f"no log at {log} ({error.strerror})"
    cut = f" (its last {lines} of {len(text)} lines)" if len(text) > lines else ""
    return f"{log}{cut}:\n" + "\n".join(text[-lines:])
