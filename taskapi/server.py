"""`taskapi serve`: uvicorn with TaskAPI's workers, logs, metrics listener and shutdown.

Before uvicorn starts its workers this process prepares what they share: the Prometheus
multiprocess directory (taskapi/ops/metrics_directory.py; set before prometheus-client is
imported, so that with one worker, which serves in this very process, the values go to files
too), the worker count (exported, so each worker sizes its bcrypt slots), and the `/metrics`
listener on METRICS_PORT, which adds up every process's values and is not on the API's port.

With more than one worker this process supervises them (uvicorn's supervisor), and on SIGTERM
it passes the signal on and lets go of the listening socket, so that once the workers have
drained and stopped listening, new connections are refused instead of waiting unanswered.
"""

from __future__ import annotations

import gc
import logging
import logging.config
import os
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from taskapi.config import Settings
from taskapi.ops import metrics_directory
from taskapi.ops.logs import log_config
from taskapi.web.framework import deferred_imports
from taskapi.web.framework.uvicorn import ConnectionLimits, ServerConfig, Supervisor

if TYPE_CHECKING:
    from taskapi.app import TaskAPI

log = logging.getLogger("taskapi.server")

APP = "taskapi.server:serving_app"


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    reload: bool = False,
    access_log: bool | None = None,
) -> None:
    """Serve the API until SIGTERM or SIGINT (see taskapi/ops/lifecycle.py for the drain)."""
    logging_config = log_config(settings)
    logging.config.dictConfig(logging_config)  # for what is logged before uvicorn starts
    os.environ["WEB_CONCURRENCY"] = str(workers)
    if access_log is not None:
        os.environ["ACCESS_LOG"] = "true" if access_log else "false"
    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        "workers": workers,
        "log_config": logging_config,
        "log_level": settings.log_level,
        # TaskAPI logs each request itself (taskapi.access), with more in each line.
        "access_log": False,
        # X-Forwarded-* are believed from TRUSTED_PROXIES only, inside the app.
        "proxy_headers": False,
        "server_header": False,
        # No operation speaks WebSocket; uvicorn would otherwise load a WebSocket library.
        "ws": "none",
        "timeout_graceful_shutdown": int(settings.shutdown_grace),
    }
    limits = ConnectionLimits(
        max_header_bytes=settings.max_header_bytes,
        max_headers=settings.max_headers,
        header_timeout=settings.header_timeout,
        max_connections=settings.max_connections,
    )
    metrics_directory.prepare()
    try:
        if settings.metrics_port:
            _start_metrics_listener(host, settings.metrics_port)
        config = ServerConfig(APP, limits=limits, reload=reload, **options)
        server = uvicorn.Server(config)
        # What uvicorn.run() does with a Config it builds itself.
        if config.should_reload:
            from uvicorn.supervisors import ChangeReload  # loads watchfiles: --reload only

            ChangeReload(config, target=server.run, sockets=[config.bind_socket()]).run()
        elif workers > 1:
            Supervisor(config, sockets=[config.bind_socket()]).run()
        else:
            server.run()
        if workers == 1 and not reload and not server.started:
            raise SystemExit(STARTUP_FAILURE)
    except KeyboardInterrupt:
        pass
    finally:
        metrics_directory.release()


def serving_app() -> TaskAPI:
    """create_app() in a server process, with what it built set aside for good.

    The app's objects (the spec and its resolved copies, validators, routes, SQLAlchemy's
    tables) live as long as the process. Left to the cyclic garbage collector, each of its full
    collections walks them all, and it does so on the event loop, stalling every request of the
    worker (docs/performance.md, "What each change bought"). Frozen, they are never examined
    again; what requests create is collected as before.
    """
    deferred_imports.defer()  # before anything imports Connexion
    from taskapi.app import create_app  # not in the supervisor, which serves nothing

    app = create_app()
    gc.collect()
    gc.freeze()
    return app


def _start_metrics_listener(host: str, port: int) -> None:
    # Imported here, after metrics_directory.prepare(): prometheus-client reads the
    # directory's variable once, when first imported.
    from taskapi.ops.metrics import multiprocess_registry, serve_metrics

    try:
        serve_metrics(host, port, multiprocess_registry())
    except OSError as error:
        log.warning("no /metrics listener on %s:%d: %s", host, port, error)
