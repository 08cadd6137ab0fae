"""`taskapi serve`: uvicorn with TaskAPI's workers, logs, metrics listener and shutdown.

Before uvicorn starts its workers this process prepares what they share: the Prometheus
multiprocess directory (a fresh one of its own unless PROMETHEUS_MULTIPROC_DIR names one,
which is emptied: files left by an earlier run would add stale counts), the worker count
(exported, so each worker sizes its bcrypt slots), and the `/metrics` listener on
METRICS_PORT, which adds up every worker's values and is not on the API's port.
"""

from __future__ import annotations

import logging
import logging.config
import os
import shutil
import tempfile
from pathlib import Path

from taskapi.config import Settings
from taskapi.logs import log_config
from taskapi.metrics import MULTIPROC_ENV

log = logging.getLogger("taskapi.server")

TEST_CLIENT_WARNING = "ignore:Using `httpx` with `starlette.testclient` is deprecated:UserWarning"


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    reload: bool = False,
    access_log: bool | None = None,
) -> None:
    """Serve the API until SIGTERM or SIGINT (see taskapi/lifecycle.py for the drain)."""
    import uvicorn

    logging.config.dictConfig(log_config(settings))  # for what is logged before uvicorn starts
    os.environ["WEB_CONCURRENCY"] = str(workers)
    # Connexion imports Starlette's test client as it loads, and Starlette warns on every
    # worker's start unless httpx2, a test-only package, is installed. Nothing serves with it.
    os.environ["PYTHONWARNINGS"] = ",".join(
        filter(None, [os.environ.get("PYTHONWARNINGS"), TEST_CLIENT_WARNING])
    )
    if access_log is not None:
        os.environ["ACCESS_LOG"] = "true" if access_log else "false"
    metrics_dir, created = _metrics_directory()
    try:
        if settings.metrics_port:
            _start_metrics_listener(host, settings.metrics_port)
        uvicorn.run(
            "taskapi.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            reload=reload,
            log_config=log_config(settings),
            log_level=settings.log_level,
            # TaskAPI logs each request itself (taskapi.access), with more in each line.
            access_log=False,
            # X-Forwarded-* are believed from TRUSTED_PROXIES only, inside the app.
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=int(settings.shutdown_grace),
        )
    finally:
        if created:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _metrics_directory() -> tuple[Path, bool]:
    """The multiprocess directory, emptied or new, and whether this process created it."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        return directory, False
    directory = Path(tempfile.mkdtemp(prefix="taskapi-metrics-"))
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory, True


def _start_metrics_listener(host: str, port: int) -> None:
    # Imported after the directory is set: prometheus-client picks its mode at import time.
    from prometheus_client import start_http_server

    from taskapi.metrics import multiprocess_registry

    try:
        start_http_server(port, addr=host, registry=multiprocess_registry())
    except OSError as error:
        log.warning("no /metrics listener on %s:%d: %s", host, port, error)
