"""Where the process is in its life: serving, or draining after SIGTERM.

Process-wide by nature: a signal reaches the process, not an app. On the first SIGTERM a
worker begins draining: /ready answers 503, so load balancers stop sending it new requests,
while it keeps serving for SHUTDOWN_DRAIN_SECONDS; then uvicorn's own graceful stop runs
(new connections refused, in-flight requests given SHUTDOWN_GRACE_SECONDS). More SIGTERMs
during the drain (a process group's signal arriving twice) change nothing; SIGINT stops at
once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from typing import Any

log = logging.getLogger("taskapi.ops.lifecycle")

_draining = threading.Event()


def begin_draining() -> None:
    _draining.set()


def draining() -> bool:
    return _draining.is_set()


def drain_on_sigterm(seconds: float) -> None:
    """Put the drain in front of the running server's SIGTERM handler (uvicorn's)."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        return  # no drain asked for, or not the process's server (a test client)
    stop = signal.getsignal(signal.SIGTERM)
    if not callable(stop):
        return
    loop = asyncio.get_running_loop()

    def on_sigterm(signum: int, frame: Any) -> None:
        if draining():
            return
        begin_draining()
        log.info("SIGTERM: draining for %gs before stopping", seconds)
        loop.call_soon_threadsafe(loop.call_later, seconds, stop, signum, None)

    signal.signal(signal.SIGTERM, on_sigterm)
