"""Log lines: JSON for collectors, plain text for people, each with its request's id.

`taskapi serve` hands `log_config(settings)` to uvicorn, which applies it in every worker.
Every record carries `request_id` (the X-Request-ID of the request it was logged for, `-`
outside one), and with traces on, `trace_id` and `span_id` too (ops/tracing.py); JSON lines
put an exception's traceback in an `exc_info` field of the same line. Nothing here logs
request bodies, and the database engine hides statement parameters from its error messages,
so passwords, tokens and hashes stay out of the logs.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from typing import Any

from taskapi.config import Settings

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
# Attributes every LogRecord has; anything else on a record is an `extra` field of the line.
# uvicorn's `color_message` is its message with terminal colours: not for a log line.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "request_id",
    "color_message",
}


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time level logger [request id] message`, then the traceback if any."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s")


def log_config(settings: Settings) -> dict[str, Any]:
    """A logging.config dictionary for uvicorn and TaskAPI, per LOG_FORMAT and LOG_LEVEL."""
    formatter = JSONFormatter if settings.log_format == "json" else TextFormatter
    level = settings.log_level.upper()
    handler = {"class": "logging.StreamHandler", "formatter": "main", "filters": ["request_id"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"main": {"()": formatter}},
        "handlers": {"stderr": {**handler, "stream": "ext://sys.stderr"}},
        "loggers": {
            "taskapi": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            # TaskAPI writes the access log itself (taskapi.access), with more in each line.
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            # It warns at every start that PATCH takes two media types, which the spec says.
            "connexion.operations": {"level": "ERROR"},
        },
        "root": {"handlers": ["stderr"], "level": "WARNING"},
    }
