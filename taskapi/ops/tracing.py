"""OpenTelemetry traces: the SDK and its exporter, SQL statements as spans, trace ids in logs.

Imported only when OTEL_TRACES_EXPORTER (config.py) turns traces on, so that with them off no
OpenTelemetry module is loaded and a request pays nothing. The SDK reads its own OTEL_*
variables: the sampler (OTEL_TRACES_SAMPLER, default parentbased_always_on), the endpoint,
headers and timeout of the OTLP/HTTP exporter, the batch processor's sizes and delays, and
OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES over the defaults here.

The request's span is opened by OpenTelemetry's ASGI middleware (web/middleware/tracing.py).
SQL statements are spans of ours, from two engine events: opentelemetry-instrumentation-
sqlalchemy declares SQLAlchemy < 2.1 and so instruments nothing on the 2.1 TaskAPI runs (it
would also wrap `create_engine` and `Engine.connect` for the whole process). The wait for a
bcrypt slot is a span of ours too (`span()`): no instrumentation knows TaskAPI's admission.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import (
    SERVICE_NAME,
    SERVICE_VERSION,
    OTELResourceDetector,
    Resource,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy import Engine, event

from taskapi import __version__

# Where a statement's span waits for the statement's end: the DBAPI connection's own info
# dictionary, since a connection runs one statement at a time.
_SPAN = "taskapi.span"


class Tracing:
    """One process's tracer provider, exporting in batches off the request path."""

    def __init__(self, exporter: str) -> None:
        # Ours first, then what OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES say over it.
        resource = Resource.create({SERVICE_NAME: "taskapi", SERVICE_VERSION: __version__})
        self.provider = TracerProvider(resource=resource.merge(OTELResourceDetector().detect()))
        self.provider.add_span_processor(BatchSpanProcessor(_exporter(exporter)))
        self._tracer = self.provider.get_tracer("taskapi", __version__)

    def watch(self, engine: Engine) -> None:
        """A span for every statement `engine` sends, named by its verb: `SELECT`, `INSERT`..."""
        system = engine.dialect.name  # "postgresql", "sqlite": OpenTelemetry's names too
        tracer = self._tracer

        def started(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
            span = tracer.start_span(verb, kind=SpanKind.CLIENT)
            if span.is_recording():
                # The statement as written, with placeholders: never its parameters.
                span.set_attributes({"db.system": system, "db.statement": statement})
            conn.info[_SPAN] = span

        def ended(conn: Any, *_: Any) -> None:
            span = conn.info.pop(_SPAN, None)
            if span is not None:
                span.end()

        def failed(context: Any) -> None:
            connection = context.connection
            span = connection.info.pop(_SPAN, None) if connection is not None else None
            if span is not None:
                # The exception's type only: a driver's message can quote the row it refused.
                error = type(context.original_exception).__name__
                span.set_status(Status(StatusCode.ERROR, error))
                span.end()

        event.listen(engine, "before_cursor_execute", started)
        event.listen(engine, "after_cursor_execute", ended)
        event.listen(engine, "handle_error", failed)

    def span(self, name: str) -> Callable[[], AbstractContextManager[Any]]:
        """A context manager factory: each use is a span `name`, a child of the current one."""
        return lambda: self._tracer.start_as_current_span(name)

    @contextmanager
    def running(self) -> Iterator[None]:
        """Around the app's life: each log record made while a span is current (sampled or not)
        carries `trace_id` and `span_id`, which a JSON line (ops/logs.py) shows; at the end,
        what is still buffered is exported."""
        previous = logging.getLogRecordFactory()

        def record(*args: Any, **kwargs: Any) -> logging.LogRecord:
            made = previous(*args, **kwargs)
            context = trace.get_current_span().get_span_context()
            if context.is_valid:
                made.trace_id = trace.format_trace_id(context.trace_id)
                made.span_id = trace.format_span_id(context.span_id)
            return made

        logging.setLogRecordFactory(record)
        try:
            yield
        finally:
            logging.setLogRecordFactory(previous)
            self.provider.shutdown()


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter(out=sys.stderr)
    # Endpoint, headers, timeout, compression: OTEL_EXPORTER_OTLP_(TRACES_)*.
    return OTLPSpanExporter()
