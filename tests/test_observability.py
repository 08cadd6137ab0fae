"""Request ids, logs, metrics, readiness and the problem pages."""

from __future__ import annotations

import json
import logging
import socket
import time

import pytest

from taskapi.ops.logs import JSONFormatter, RequestIdFilter, TextFormatter
from taskapi.web.problem_types import BY_CODE
from tests.conftest import PASSWORD, assert_problem, base_settings


def test_a_well_formed_request_id_is_echoed_and_others_are_replaced(api):
    assert (
        api.client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"]
        == "abc-123"
    )
    generated = api.client.get("/health").headers["x-request-id"]
    assert len(generated) == 32
    hostile = api.client.get("/health", headers={"X-Request-ID": "x" * 500})
    assert hostile.headers["x-request-id"] != "x" * 500
    # Errors carry it too, Connexion's own among them.
    assert "x-request-id" in api.client.get("/nowhere").headers


@pytest.fixture
def log_lines(caplog):
    """The lines TaskAPI logs during a test, formatted as LOG_FORMAT=json writes them."""
    caplog.set_level(logging.INFO, logger="taskapi")
    # As taskapi/ops/logs.py configures it: the filter stamps each record as it is emitted.
    caplog.handler.addFilter(RequestIdFilter())
    formatter = JSONFormatter()
    return lambda: [json.loads(formatter.format(record)) for record in caplog.records]


def test_each_request_logs_one_access_line_with_its_context(api, auth, log_lines, caplog):
    task = api.create_task(auth)
    caplog.clear()
    api.client.get(f"/api/v1/tasks/{task['id']}", headers={**auth, "X-Request-ID": "req-7"})
    (line,) = [line for line in log_lines() if line["logger"] == "taskapi.access"]
    assert line["request_id"] == "req-7"
    assert line["method"] == "GET"
    assert line["path"] == "/api/v1/tasks/{id}"  # the template: ids stay out of the logs
    assert line["operation"] == "getTask"
    assert line["status"] == 200
    assert line["user_id"] == task["user_id"]
    assert line["duration_ms"] > 0
    assert line["message"].startswith("GET /api/v1/tasks/{id} 200 ")


def test_an_unexpected_error_is_one_line_with_its_traceback_in_a_field(
    api, auth, log_lines, monkeypatch
):
    import taskapi.domain.tasks

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(taskapi.domain.tasks, "read_owned", explode)
    response = api.client.get("/api/v1/tasks/1", headers={**auth, "X-Request-ID": "req-500"})
    assert_problem(response, 500, "internal_error")
    (error,) = [line for line in log_lines() if line["level"] == "error"]
    assert error["request_id"] == "req-500"
    assert "RuntimeError: boom" in error["exc_info"]
    assert "Traceback" in error["exc_info"]


def test_logs_never_hold_passwords_tokens_or_hashes(api, log_lines):
    secret = "correct-horse-battery-staple"
    api.register("jane@example.com", password=secret)
    token = api.login("jane@example.com", secret).json()["data"]["token"]
    api.client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {token}"})
    api.login("jane@example.com", "a-wrong-password")
    text = json.dumps(log_lines())
    for leak in (secret, "a-wrong-password", token, "$2b$"):
        assert leak not in text


def test_text_lines_carry_the_request_id_too():
    record = logging.makeLogRecord({"name": "taskapi", "levelname": "INFO", "msg": "hello"})
    record.request_id = "rid-1"
    assert "[rid-1] hello" in TextFormatter().format(record)


def test_metrics_count_requests_by_operation_and_status(services, api, auth):
    api.client.get("/api/v1/tasks", headers=auth)
    api.client.get("/api/v1/tasks/999", headers=auth)
    api.login("nobody@example.com", "wrong-password")
    text = services.metrics.render().decode()
    assert 'taskapi_requests_total{operation="listTasks",status="200"} 1.0' in text
    assert 'taskapi_requests_total{operation="getTask",status="404"} 1.0' in text
    assert 'taskapi_request_duration_seconds_count{operation="listTasks",status="200"} 1.0' in text
    assert "taskapi_login_failures_total 1.0" in text
    assert 'taskapi_db_connections_in_use{pool="read"} 0.0' in text
    assert "nobody@example.com" not in text


def test_metrics_say_how_many_connections_each_pool_may_open(services):
    text = services.metrics.render().decode()
    limits = services.db.pool_limits
    assert limits["read"] >= 1
    assert limits["write"] >= 1
    assert limits["read"] + limits["write"] == services.settings.db_max_open_conns
    for pool, limit in limits.items():
        assert f'taskapi_db_connections_max{{pool="{pool}"}} {float(limit)}' in text


def test_ready_reports_each_dependency(api):
    response = api.client.get("/ready")
    assert response.status_code == 200
    assert response.json()["data"] == {
        "status": "ready",
        "checks": {"database": "ok", "redis": "not configured", "shutting_down": False},
    }


def test_ready_is_503_while_the_database_is_down_and_health_stays_200(make_app):
    settings = base_settings("postgresql+psycopg2://nobody@127.0.0.1:1/nothing")
    client = make_app(settings, db_connect_timeout=1).test_client()
    response = client.get("/ready")
    body = assert_problem(response, 503, "not_ready")
    assert body["checks"]["database"] == "unavailable"
    assert body["detail"] == "not ready: database"
    assert response.headers["retry-after"]
    assert client.get("/health").status_code == 200


def test_ready_is_503_while_redis_is_down(make_app, settings):
    client = make_app(settings, redis_url="redis://127.0.0.1:1/0").test_client()
    body = assert_problem(client.get("/ready"), 503, "not_ready")
    assert body["checks"] == {"database": "ok", "redis": "unavailable", "shutting_down": False}


def test_every_problem_type_has_a_page(api):
    for code, problem in BY_CODE.items():
        page = api.client.get(problem.uri)
        assert page.status_code == 200, code
        assert page.json()["data"] == {
            "type": f"/problems/{code}",
            "code": code,
            "status": problem.status,
            "title": problem.title,
            "description": problem.description,
        }
    assert_problem(api.client.get("/problems/no_such_thing"), 400, "validation_failed")


def test_the_spec_lists_every_problem_code():
    from taskapi.resources import load_spec

    schemas = load_spec()["components"]["schemas"]
    assert set(schemas["Problem"]["properties"]["code"]["enum"]) == set(BY_CODE)
    parameter = load_spec()["components"]["parameters"]["ProblemCode"]
    assert set(parameter["schema"]["enum"]) == set(BY_CODE)


@pytest.mark.live
def test_a_body_that_stops_short_is_answered_408_and_the_connection_closed(live_server):
    host, port = live_server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n" + b'{"email": "jane@exa'
        )
        started = time.monotonic()
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    assert time.monotonic() - started < 10
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in head.lower()
    assert json.loads(body)["code"] == "request_timeout"


def test_the_account_behind_a_token_is_checked_before_validation(api):
    api.register("gone@example.com")
    token = api.login("gone@example.com").json()["data"]["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert (
        api.client.request(
            "DELETE", "/api/v1/auth/me", json={"password": PASSWORD}, headers=headers
        ).status_code
        == 204
    )
    # A deleted account's token is refused even with a body that is invalid too.
    response = api.client.post("/api/v1/tasks", json={"title": ""}, headers=headers)
    assert_problem(response, 401, "invalid_token")
