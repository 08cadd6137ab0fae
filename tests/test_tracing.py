"""Traces, turned on by OTEL_EXPORTER_OTLP_ENDPOINT: `taskapi serve` sends them with the real
OTLP/HTTP exporter to a receiver in the test, which decodes them.

A request is a server span named by its operationId, a child of the caller's `traceparent`
when it sends one; each SQL statement is a client span under it, and so is the wait for a
bcrypt slot; the request's JSON log line carries its trace and span ids, sampled or not.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskapi.app import create_app
from taskapi.config import ConfigError, Settings
from tests.metrics_server import served
from tests.otlp_receiver import Receiver, Span, receiving

pytestmark = pytest.mark.live

SERVER, CLIENT = 2, 3  # opentelemetry.proto's Span.SpanKind
BCRYPT_WAIT = "bcrypt slot wait"


def traceparent(*, sampled: bool = True) -> tuple[str, str, str]:
    """(header, trace id, parent span id) of a caller's W3C trace context."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}", trace_id, span_id


@dataclass(frozen=True)
class Traced:
    receiver: Receiver
    log: Path
    register: tuple[str, str]  # (trace id, the caller's span id)
    unsampled: str  # a trace id the caller did not sample
    create: str  # the createTask request's trace id

    def server_span(self, trace_id: str) -> Span:
        (span,) = [s for s in self.receiver.trace(trace_id) if s.kind == SERVER]
        return span

    def children(self, parent: Span) -> list[Span]:
        return [s for s in self.receiver.trace(parent.trace_id) if s.parent_id == parent.span_id]

    def access_lines(self, operation: str) -> list[dict[str, Any]]:
        # Alembic, run at start in development, prints lines of its own.
        text = self.log.read_text().splitlines()
        lines = [json.loads(line) for line in text if line.startswith("{")]
        return [
            line
            for line in lines
            if line["logger"] == "taskapi.access" and line["operation"] == operation
        ]


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    workdir = tmp_path_factory.mktemp("tracing")
    with receiving() as (endpoint, receiver):
        settings = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            # Exported within 0.1 s rather than the SDK's 5 s.
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "info",
        }
        with (
            served(workdir, 1, **settings) as (base, _, _),
            httpx.Client(base_url=base, timeout=10) as http,
        ):
            unsampled, unsampled_id, _ = traceparent(sampled=False)
            assert http.get("/api/v1/tasks", headers={"traceparent": unsampled}).status_code == 401
            header, register_id, caller = traceparent()
            account = {"email": "traced@example.com", "password": "password123", "name": "Traced"}
            response = http.post(
                "/api/v1/auth/register", json=account, headers={"traceparent": header}
            )
            assert response.status_code == 201
            login = {"email": account["email"], "password": account["password"]}
            token = http.post("/api/v1/auth/login", json=login).json()["data"]["token"]
            header, create_id, _ = traceparent()
            created = http.post(
                "/api/v1/tasks",
                json={"title": "traced"},
                headers={"Authorization": f"Bearer {token}", "traceparent": header},
            )
            assert created.status_code == 201
            deadline = time.monotonic() + 20
            while not any(s.kind == SERVER for s in receiver.trace(create_id)):
                assert time.monotonic() < deadline, f"no createTask span: {receiver.spans}"
                time.sleep(0.1)
        # The server has stopped: everything it buffered is exported, its log complete.
        yield Traced(
            receiver, workdir / "server.log", (register_id, caller), unsampled_id, create_id
        )


def test_a_request_is_a_span_named_by_its_operation_under_the_callers_traceparent(traced):
    trace_id, caller = traced.register
    span = traced.server_span(trace_id)
    assert span.name == "register"
    assert span.parent_id == caller
    assert span.attributes["http.route"] == "/api/v1/auth/register"
    assert span.service == "taskapi"


def test_sql_statements_and_the_bcrypt_wait_are_children_of_the_request(traced):
    request = traced.server_span(traced.register[0])
    children = traced.children(request)
    statements = [s for s in children if s.kind == CLIENT]
    assert "INSERT" in {s.name for s in statements}
    for statement in statements:
        assert statement.attributes["db.system"] == "sqlite"
        assert statement.attributes["db.statement"].split()[0].upper() == statement.name
        # Placeholders, never the values: the password's hash is not in a span.
        assert "traced@example.com" not in statement.attributes["db.statement"]
    assert [s.name for s in children if s.name == BCRYPT_WAIT] == [BCRYPT_WAIT]
    # Nothing in the trace hangs outside the request.
    assert {s.parent_id for s in traced.receiver.trace(request.trace_id)} == {
        request.parent_id,
        request.span_id,
    }


def test_a_request_without_traceparent_starts_a_trace_of_its_own(traced):
    logins = [s for s in traced.receiver.spans if s.kind == SERVER and s.name == "login"]
    (login,) = logins
    assert login.parent_id == ""
    assert login.trace_id not in {traced.register[0], traced.create}
    assert BCRYPT_WAIT in {s.name for s in traced.children(login)}
    (create,) = [s for s in traced.receiver.trace(traced.create) if s.kind == SERVER]
    assert create.name == "createTask"
    assert "INSERT" in {s.name for s in traced.children(create)}


def test_a_callers_unsampled_trace_sends_no_span_but_its_id_is_logged(traced):
    assert traced.receiver.trace(traced.unsampled) == []
    (line,) = traced.access_lines("listTasks")
    assert line["trace_id"] == traced.unsampled
    assert line["status"] == 401


def test_the_access_log_line_carries_the_requests_trace_and_span_ids(traced):
    request = traced.server_span(traced.register[0])
    (line,) = traced.access_lines("register")
    assert line["trace_id"] == request.trace_id
    assert line["span_id"] == request.span_id
    (login,) = traced.access_lines("login")
    assert login["trace_id"] != request.trace_id
    assert len(login["trace_id"]) == 32


def test_traces_are_off_unless_an_otel_variable_asks_for_them():
    base = {"JWT_SECRET": "x" * 40}
    assert Settings.from_env(base, dotenv=None).traces_exporter == "none"
    endpoint = {**base, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    assert Settings.from_env(endpoint, dotenv=None).traces_exporter == "otlp"
    console = {**base, "OTEL_TRACES_EXPORTER": "console"}
    assert Settings.from_env(console, dotenv=None).traces_exporter == "console"
    disabled = {**endpoint, "OTEL_SDK_DISABLED": "true"}
    assert Settings.from_env(disabled, dotenv=None).traces_exporter == "none"
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER must be one of"):
        Settings.from_env({**base, "OTEL_TRACES_EXPORTER": "zipkin"}, dotenv=None)


def test_traces_asked_for_without_opentelemetry_installed_stop_the_start(tmp_path, monkeypatch):
    # As if the tracing extra were not installed.
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.delitem(sys.modules, "taskapi.ops.tracing", raising=False)
    values = {
        "JWT_SECRET": "x" * 40,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
    }
    with pytest.raises(ConfigError, match=r"pip install 'taskapi\[tracing\]'"):
        create_app(Settings.from_env(values, dotenv=None))
