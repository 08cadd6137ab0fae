"""Rate limits: per client IP, per email and per user, in the process or shared in Redis."""

from __future__ import annotations

import socket
import time
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
    """A client of an app with small auth budgets: 3 per IP, 2 per client and account, per
    minute."""
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


def register(client, email, password=PASSWORD):
    return client.post(
        "/api/v1/auth/register", json={"email": email, "password": password, "name": "Jane"}
    )


def test_an_attackers_failures_leave_the_owners_login_working(limited):
    """Wrong passwords for Jane from one address lock that address out, not Jane."""
    client = limited(auth="100/minute", trusted_proxies=("testclient",))
    assert register(client, "jane@example.com").status_code == 201
    attacker = [login(client, "Jane@Example.com ", "203.0.113.66") for _ in range(3)]
    for checked in attacker[:2]:
        assert_problem(checked, 401, "invalid_credentials")
    body = assert_problem(attacker[2], 429, "rate_limited")
    assert "2 per 1 minute" in body["detail"]
    owner = client.post(
        "/api/v1/auth/login",
        json={"email": "jane@example.com", "password": PASSWORD},
        headers={"X-Forwarded-For": "198.51.100.7"},
    )
    assert owner.status_code == 200, owner.text


def test_logins_of_one_email_from_many_addresses_are_slowed_not_refused(limited, settings):
    client = limited(
        auth="100/minute",
        auth_email="100/minute",
        trusted_proxies=("testclient",),
        rate_limit_login_slowdown="3/minute",
        login_slowdown_seconds=0.5,
    )
    assert register(client, "jane@example.com").status_code == 201
    for i in range(3):
        assert_problem(login(client, "jane@example.com", f"203.0.113.{i}"), 401)
    started = time.monotonic()
    assert_problem(login(client, "jane@example.com", "203.0.113.9"), 401, "invalid_credentials")
    assert time.monotonic() - started >= 0.5
    # Jane, over the ceiling too, still gets in: later, never refused.
    started = time.monotonic()
    owner = client.post(
        "/api/v1/auth/login",
        json={"email": "jane@example.com", "password": PASSWORD},
        headers={"X-Forwarded-For": "198.51.100.7"},
    )
    assert owner.status_code == 200
    assert time.monotonic() - started >= 0.5
    # Another account is not slowed.
    started = time.monotonic()
    assert_problem(login(client, "other@example.com", "203.0.113.1"), 401)
    assert time.monotonic() - started < 0.5


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


def test_register_counts_against_a_budget_of_its_own(limited):
    client = limited(auth="100/minute")
    assert register(client, "new@example.com").status_code == 201
    assert_problem(register(client, "new@example.com"), 409, "email_taken")
    assert_problem(register(client, "new@example.com"), 429, "rate_limited")
    # Failed registrations with an email do not count against logging in with it.
    login_ok = client.post(
        "/api/v1/auth/login", json={"email": "new@example.com", "password": PASSWORD}
    )
    assert login_ok.status_code == 200


def password_change(client, token, current):
    return client.post(
        "/api/v1/auth/password",
        json={"current_password": current, "new_password": "a-new-password-1"},
        headers={"Authorization": f"Bearer {token}"},
    )


def test_password_checks_behind_a_token_are_limited_per_session(limited):
    """A stolen access token is no password oracle: its session gets RATE_LIMIT_AUTH_EMAIL
    guesses, and the owner's own new login is not held up by them."""
    client = limited(auth="100/minute")
    assert register(client, "jane@example.com").status_code == 201
    stolen = login_as(client, "jane@example.com")
    guesses = [password_change(client, stolen, f"guess-{i}-xyz") for i in range(3)]
    for guess in guesses[:2]:
        assert_problem(guess, 403, "wrong_password")
    assert_problem(guesses[2], 429, "rate_limited")
    deleting = client.request(
        "DELETE",
        "/api/v1/auth/me",
        json={"password": "another-guess"},
        headers={"Authorization": f"Bearer {stolen}"},
    )
    assert_problem(deleting, 429, "rate_limited")
    owner = login_as(client, "jane@example.com")
    assert password_change(client, owner, PASSWORD).status_code == 200


def test_password_checks_behind_a_token_count_against_the_ip(limited):
    client = limited(auth="3/minute", auth_email="100/minute")
    assert register(client, "jane@example.com").status_code == 201  # 1 of 3
    token = login_as(client, "jane@example.com")  # 2 of 3
    assert_problem(password_change(client, token, "wrong-guess-1"), 403, "wrong_password")
    assert_problem(password_change(client, token, "wrong-guess-2"), 429, "rate_limited")


def login_as(client, email):
    response = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    token: str = response.json()["data"]["token"]
    return token


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


def test_authenticated_operations_have_a_default_budget():
    from taskapi.config import Settings

    default = Settings.from_env({}, dotenv=None).rate_limit_default
    assert default == "5000/hour;20/second"


def test_every_authenticated_response_says_what_is_left_of_the_budget(api, auth):
    response = api.client.get("/api/v1/tasks", headers=auth)
    assert response.status_code == 200
    assert int(response.headers["ratelimit-remaining"]) < int(response.headers["ratelimit-limit"])


def test_no_default_budget_means_no_limit_and_no_headers(make_app, settings):
    from taskapi.config import Settings

    assert Settings.from_env({"RATE_LIMIT_DEFAULT": "none"}, dotenv=None).rate_limit_default == (
        "none"
    )
    with make_app(settings, rate_limit_default="none").test_client() as client:
        register(client, "jane@example.com")
        token = login_as(client, "jane@example.com")
        response = client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {token}"})
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


def signed_up(client, email):
    register(client, email)
    return {"Authorization": f"Bearer {login_as(client, email)}"}


@pytest.mark.skipif(not redis_reachable(), reason="no Redis at 127.0.0.1:6379")
def test_replicas_share_the_default_budget_in_redis(make_app, settings):
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    apps = [make_app(settings, redis_url=REDIS_URL, rate_limit_default="3/minute") for _ in "ab"]
    with apps[0].test_client() as one, apps[1].test_client() as two:
        headers = signed_up(one, f"{uuid.uuid4().hex}@example.com")
        responses = [(one, two)[i % 2].get("/api/v1/tasks", headers=headers) for i in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r.headers["ratelimit-remaining"] for r in responses] == ["2", "1", "0", "0"]
    assert_problem(responses[3], 429, "rate_limited")
    assert 1 <= int(responses[3].headers["retry-after"]) <= 60


def test_the_default_budget_falls_back_to_each_process_when_redis_is_down(make_app, settings):
    app = make_app(settings, redis_url="redis://127.0.0.1:1/0", rate_limit_default="2/minute")
    with app.test_client() as client:
        headers = signed_up(client, "jane@example.com")
        statuses = [client.get("/api/v1/tasks", headers=headers).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    metrics = services_of(app).metrics.render().decode()
    assert 'taskapi_rate_limited_total{budget="default"} 1.0' in metrics


def test_local_windows_start_again_each_window_and_forget_idle_keys(monkeypatch):
    import asyncio

    from limits import parse_many

    from taskapi.web.middleware import ratelimit_windows

    items = list(parse_many("10/second;100/hour"))
    local = ratelimit_windows.LocalWindows()

    async def hits():
        first = await local.hit("a", items, now=3600.2)
        second = await local.hit("a", items, now=3600.9)
        next_second = await local.hit("a", items, now=3601.1)
        monkeypatch.setattr(ratelimit_windows, "PRUNE_EVERY", 1)
        await local.hit("b", items, now=7300.0)  # an hour later: "a" is dropped
        return first, second, next_second

    assert asyncio.run(hits()) == ([1, 1], [2, 2], [1, 3])
    assert {key for key, _ in local._counts} == {"b"}
    assert ratelimit_windows.reset_at(items[0], 3600.2) == 3601.0
