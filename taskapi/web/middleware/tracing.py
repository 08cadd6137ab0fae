"""A span per request, named by its operationId: OpenTelemetry's ASGI middleware, renamed.

Only in the stack when traces are on (app.py); outside the request middleware, so that the
access log line is written inside the request's span and carries its trace id. The ASGI
instrumentation opens the server span, a child of the caller's W3C `traceparent` when there
is one (the propagators of OTEL_PROPAGATORS, tracecontext and baggage by default); it names
it `GET /api/v1/tasks/42` before routing (a span name per task id), so it is renamed as the
response starts, once Connexion has routed the request: by operationId, with the path
template as `http.route`. Its spans for each ASGI message are left out.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskapi.web import context
from taskapi.web.middleware.observability import UNROUTED


class TracingMiddleware:
    """The request's span, named by its operationId."""

    def __init__(
        self, app: ASGIApp, *, tracer_provider: TracerProvider, templates: Mapping[str, str]
    ) -> None:
        self.app = OpenTelemetryMiddleware(
            _NamedByOperation(app, templates),
            tracer_provider=tracer_provider,
            exclude_spans=["receive", "send"],
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class _NamedByOperation:
    def __init__(self, app: ASGIApp, templates: Mapping[str, str]) -> None:
        self.app = app
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        span = trace.get_current_span()

        async def send_named(message: Message) -> None:
            # At the response's start: routing is done, and the span, which the ASGI
            # middleware ends with the response's last message, still open.
            if message["type"] == "http.response.start" and span.is_recording():
                operation = context.operation_id(scope) or UNROUTED
                span.update_name(operation)
                if operation in self.templates:
                    span.set_attribute("http.route", self.templates[operation])
            await send(message)

        await self.app(scope, receive, send_named)
