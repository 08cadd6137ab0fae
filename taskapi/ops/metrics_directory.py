"""The Prometheus multiprocess directory of one `taskapi serve`, and what earlier ones left.

prometheus-client chooses, when it is first imported, whether a process keeps its values in
memory or in files under PROMETHEUS_MULTIPROC_DIR; so the directory is set before anything
imports it, in the process that serves (this module does not import it). Each directory made
here holds the pid of the server that made it: a later server removes the directories whose
server is gone (killed, or crashed), and leaves the others alone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "taskapi-metrics-"
OWNER_FILE = "server.pid"


def prepare() -> None:
    """Set the multiprocess directory in the environment: the one given, emptied, or a new
    one that this process owns (and removes when it stops: release())."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        # Files left by an earlier run would add stale counts.
        for stale in directory.glob("*.db"):
            stale.unlink()
        return
    remove_abandoned(Path(tempfile.gettempdir()))
    directory = Path(tempfile.mkdtemp(prefix=PREFIX))
    (directory / OWNER_FILE).write_text(str(os.getpid()))
    os.environ[MULTIPROC_ENV] = str(directory)


def remove_abandoned(parent: Path) -> list[Path]:
    """Remove the directories under `parent` whose server no longer runs; which went."""
    removed = []
    for directory in parent.glob(f"{PREFIX}*"):
        try:
            pid = int((directory / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not one this module made, or still being made: not ours to judge
        if not _running(pid):
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def release() -> None:
    """Remove the directory if this very process made it: the server, when it stops. With
    one worker the app's shutdown calls this too, since uvicorn ends that process with the
    signal it caught before any `finally` of the code that started it runs."""
    given = os.environ.get(MULTIPROC_ENV)
    if not given:
        return
    directory = Path(given)
    try:
        owner = int((directory / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return
    if owner == os.getpid():
        shutil.rmtree(directory, ignore_errors=True)
