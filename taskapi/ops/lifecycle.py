"""Where the process is in its life: serving, or draining after SIGTERM.

Process-wide by nature: a signal reaches the process, not an app. On the first SIGTERM a
worker begins draining (web/framework/uvicorn.py puts that in front of uvicorn's own SIGTERM
handler): /ready answers 503, so load balancers stop sending it new requests, while it keeps
serving for SHUTDOWN_DRAIN_SECONDS; then uvicorn's graceful stop runs (new connections
refused, in-flight requests given SHUTDOWN_GRACE_SECONDS).
"""

from __future__ import annotations

import threading

_draining = threading.Event()


def begin_draining() -> None:
    _draining.set()


def draining() -> bool:
    return _draining.is_set()
