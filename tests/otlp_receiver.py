"""An OTLP/HTTP trace receiver on loopback: what a collector would get from TaskAPI's exporter.

It decodes each `POST /v1/traces` (protobuf ExportTraceServiceRequest, gzip or not) into
`Span`s and answers 200, as a collector does. tests/test_tracing.py reads them; the benchmark
of traces (docs/performance.md) runs it alone as a sink, which only counts what it is sent:

    .venv/bin/python -m tests.otlp_receiver --port 4318
"""

from __future__ import annotations

import argparse
import gzip
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass(frozen=True)
class Span:
    """One received span, ids in hex as a traceparent writes them."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root span
    kind: int  # opentelemetry.proto's Span.SpanKind: 2 server, 3 client, 1 internal
    attributes: dict[str, Any]
    service: str


class Receiver:
    """The spans received so far, in arrival order."""

    def __init__(self, *, decode: bool = True) -> None:
        self.decode = decode
        self.spans: list[Span] = []
        self.requests = 0
        self.bytes = 0
        self._lock = threading.Lock()

    def add(self, body: bytes) -> None:
        if not self.decode:
            with self._lock:
                self.requests += 1
                self.bytes += len(body)
            return
        request = ExportTraceServiceRequest.FromString(body)
        received = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        Span(
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            kind=span.kind,
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            service=str(resource.get("service.name", "")),
                        )
                    )
        with self._lock:
            self.spans.extend(received)
            self.requests += 1

    def trace(self, trace_id: str) -> list[Span]:
        with self._lock:
            return [span for span in self.spans if span.trace_id == trace_id]


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@contextmanager
def receiving(port: int = 0, *, decode: bool = True) -> Iterator[tuple[str, Receiver]]:
    """A receiver on 127.0.0.1:`port` (0: any free one); (its endpoint URL, the receiver)."""
    receiver = Receiver(decode=decode)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            receiver.add(body)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, name="otlp", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", receiver
    finally:
        server.shutdown()
        server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Receive OTLP/HTTP traces and drop them.")
    parser.add_argument("--port", type=int, default=4318)
    port = parser.parse_args().port
    with receiving(port, decode=False) as (endpoint, receiver):
        print(f"receiving on {endpoint}/v1/traces", flush=True)
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # stops it as Ctrl-C does
        with suppress(KeyboardInterrupt):
            threading.Event().wait()
        print(f"{receiver.requests} exports, {receiver.bytes:,} bytes", flush=True)


if __name__ == "__main__":
    main()
