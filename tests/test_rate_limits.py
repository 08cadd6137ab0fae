"""Rate limits: per client IP, per email and per user, in the process or shared in Redis."""

from __future__ import annotations

import socket
import uuid
from contextlib import ExitStack

import pytest

from tests.conftest import PASSWORD, assert_problem, services_of

REDIS_URL = "redis://127.0.0.1:6379/15"


def redis_reachable() -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", 6379)) == 0


@pytest.fixture
def limited(make_app, settings):
    """A client of an app with small auth budgets: 3 per IP, 2 per email, per minute."""
    with ExitStack() as clients:

        def make(**overrides):
            app = make_app(
                settings,
                rate_limit_auth=overrides.pop("auth", "3/minute"),
                rate_limit_auth_email=overrides.pop("auth_email", "2/minute"),
                **overrides,
            )
            # One event loop for the client's life, as a server has.
            return clients.enter_context(app.test_client())

        yield make


def login(client, email="nobody@example.com", forwarded_for=None):
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return client.post(
        "/api/v1/auth/login", json={"email": email, "password": "wrong-one"}, headers=headers
    )


def test_logins_over_the_ip_budget_are_429_with_retry_after(limited):
    client = limited(auth_email="100/minute")
    statuses = [login(client, f"u{i}@example.com").status_code for i in range(3)]
    assert statuses == [401, 401, 401]
    refused = login(client, "u9@example.com")
    body = assert_problem(refused, 429, "rate_limited")
    assert "3 per 1 minute" in body["detail"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["ratelimit-limit"] == "3"
    assert refused.headers["ratelimit-remaining"] == "0"


def test_responses_of_limited_operations_say_what_is_left(limited):
    response = login(limited(auth_email="100/minute"))
    assert_problem(response, 401, "invalid_credentials")
    assert response.headers["ratelimit-limit"] == "3"
    assert response.headers["ratelimit-remaining"] == "2"
    assert 1 <= int(response.headers["ratelimit-reset"]) <= 60


def test_one_email_is_limited_whatever_address_the_requests_come_from(limited):
    client = limited(auth="100/minute", trusted_proxies=("testclient",))
    responses = [login(client, "Jane@Example.com ", f"203.0.113.{i}") for i in range(3)]
    for checked in responses[:2]:
        assert_problem(checked, 401, "invalid_credentials")
    body = assert_problem(responses[2], 429, "rate_limited")
    assert "2 per 1 minute" in body["detail"]
    # Another account is not affected: its password is still checked.
    assert_problem(login(client, "other@example.com", "203.0.113.9"), 401, "invalid_credentials")


def test_forwarded_for_counts_only_from_a_trusted_proxy(limited):
    untrusted = limited(auth_email="100/minute")
    responses = [login(untrusted, f"u{i}@example.com", f"198.51.100.{i}") for i in range(4)]
    # Made-up addresses from an untrusted peer change nothing: one budget, spent by the fourth.
    assert [r.headers["ratelimit-remaining"] for r in responses] == ["2", "1", "0", "0"]
    assert_problem(responses[-1], 429, "rate_limited")
    behind_proxy = limited(auth_email="100/minute", trusted_proxies=("testclient",))
    responses = [login(behind_proxy, f"u{i}@example.com", f"198.51.100.{i}") for i in range(4)]
    # Four clients behind the proxy, each on a budget of its own.
    assert [r.headers["ratelimit-remaining"] for r in responses] == ["2"] * 4
    for response in responses:
        assert_problem(response, 401, "invalid_credentials")


def test_register_counts_against_the_same_budgets(limited):
    client = limited()
    body = {"email": "new@example.com", "password": PASSWORD, "name": "New"}
    assert client.post("/api/v1/auth/register", json=body).status_code == 201
    assert_problem(client.post("/api/v1/auth/register", json=body), 409, "email_taken")
    assert_problem(client.post("/api/v1/auth/register", json=body), 429, "rate_limited")


def test_a_malformed_login_body_still_counts_against_the_ip(limited):
    client = limited()
    for _ in range(3):
        assert_problem(
            client.post("/api/v1/auth/login", content=b"{not json"), 400, "validation_failed"
        )
    assert_problem(login(client), 429, "rate_limited")


def test_the_default_budget_is_per_user(make_app, settings):
    app = make_app(settings, rate_limit_default="2/minute")
    client = app.test_client()
    headers = []
    for n in range(2):
        email = f"user{n}@example.com"
        client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Us"}
        )
        token = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        headers.append({"Authorization": f"Bearer {token.json()['data']['token']}"})
    first, second = headers
    assert [client.get("/api/v1/tasks", headers=first).status_code for _ in range(2)] == [200, 200]
    assert_problem(client.get("/api/v1/tasks", headers=first), 429, "rate_limited")
    assert client.get("/api/v1/tasks", headers=second).status_code == 200
    # Probes are never counted.
    assert all(client.get("/health").status_code == 200 for _ in range(5))


def test_no_default_budget_means_no_limit_and_no_headers(api, auth):
    response = api.client.get("/api/v1/tasks", headers=auth)
    assert response.status_code == 200
    assert "ratelimit-limit" not in response.headers


def test_limits_can_be_turned_off(limited):
    client = limited(rate_limit_enabled=False)
    responses = [login(client) for _ in range(6)]
    assert {r.status_code for r in responses} == {401}
    assert not any("ratelimit-limit" in r.headers for r in responses)


@pytest.mark.skipif(not redis_reachable(), reason="no Redis at 127.0.0.1:6379")
def test_replicas_share_one_budget_in_redis(make_app, settings):
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()  # a database of the tests' own
    email = f"{uuid.uuid4().hex}@example.com"
    apps = [
        make_app(
            settings,
            redis_url=REDIS_URL,
            rate_limit_auth="100/minute",
            rate_limit_auth_email="4/minute",
        )
        for _ in range(2)
    ]
    with apps[0].test_client() as one, apps[1].test_client() as two:
        statuses = [login((one, two)[i % 2], email).status_code for i in range(6)]
    assert statuses == [401, 401, 401, 401, 429, 429]
    for app in apps:
        assert "store_fallbacks_total 0.0" in services_of(app).metrics.render().decode()


def test_limits_fail_open_to_each_process_when_redis_is_down(make_app, settings):
    # Nothing listens on port 1: every call to the store fails at once.
    app = make_app(
        settings,
        redis_url="redis://127.0.0.1:1/0",
        rate_limit_auth="3/minute",
        rate_limit_auth_email="100/minute",
    )
    with app.test_client() as client:
        statuses = [login(client, f"u{i}@example.com").status_code for i in range(4)]
    assert statuses == [401, 401, 401, 429]  # still limited, in this process, and never a 500
    metrics = services_of(app).metrics.render().decode()
    assert "taskapi_rate_limit_store_fallbacks_total 1.0" in metrics
    assert 'taskapi_rate_limited_total{budget="auth"} 1.0' in metrics
