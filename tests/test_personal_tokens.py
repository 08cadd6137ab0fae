"""Personal access tokens: created once and shown once, stored as digests, scoped, expiring,
revocable, ended by a password change, and never a 500."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from taskapi.ops import housekeeping
from taskapi.storage.schema import PERSONAL_ACCESS_TOKENS
from tests.conftest import PASSWORD, Api, assert_problem

TOKENS = "/api/v1/auth/tokens"
INVALID_TOKEN = 'Bearer realm="taskapi", error="invalid_token"'


def create(api, session, **body):
    response = api.client.post(
        TOKENS, json={"name": "ci", "scopes": ["tasks:read"], **body}, headers=session
    )
    assert response.status_code == 201, response.text
    return response.json()["data"]


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def parse(instant):
    return datetime.fromisoformat(instant.replace("Z", "+00:00"))


def stored_rows(services):
    with services.db.engine.connect() as c:
        return c.execute(sa.select(PERSONAL_ACCESS_TOKENS)).mappings().all()


def set_column(services, token_id, **values):
    with services.db.engine.begin() as c:
        c.execute(
            sa.update(PERSONAL_ACCESS_TOKENS)
            .where(PERSONAL_ACCESS_TOKENS.c.id == token_id)
            .values(**values)
        )


def test_a_new_token_is_shown_once_with_its_metadata(api, auth):
    response = api.client.post(
        TOKENS, json={"name": "nightly export", "scopes": ["tasks:read"]}, headers=auth
    )
    assert response.status_code == 201
    data = response.json()["data"]
    assert response.headers["Location"] == f"{TOKENS}/{data['id']}"
    assert re.fullmatch(r"tapi_[0-9A-Za-z]{43}", data["token"])
    assert data["name"] == "nightly export"
    assert data["scopes"] == ["tasks:read"]
    assert data["last_used_at"] is None
    assert data["token_prefix"] == data["token"][:9]
    lifetime = parse(data["expires_at"]) - parse(data["created_at"])
    assert lifetime == timedelta(days=90)


def test_tokens_are_random_and_distinct(api, auth):
    tokens = {create(api, auth)["token"] for _ in range(20)}
    assert len(tokens) == 20
    # 43 base62 characters each: 256 bits; every character of the alphabet turns up.
    assert len(set("".join(t.removeprefix("tapi_") for t in tokens))) > 55


def test_listing_and_getting_never_show_the_secret(api, auth):
    created = [create(api, auth, name=f"t{n}") for n in range(3)]
    listed = api.client.get(TOKENS, headers=auth).json()["data"]
    assert [t["id"] for t in listed] == [t["id"] for t in reversed(created)]
    one = api.client.get(f"{TOKENS}/{created[0]['id']}", headers=auth).json()["data"]
    for shown in [*listed, one]:
        assert "token" not in shown
        assert set(shown) == {
            "id",
            "name",
            "scopes",
            "token_prefix",
            "created_at",
            "expires_at",
            "last_used_at",
        }
        secret = next(t["token"] for t in created if t["id"] == shown["id"])
        assert secret[9:] not in str(shown)


def test_the_database_holds_a_digest_the_token_cannot_be_read_from(api, auth, services):
    token = create(api, auth)["token"]
    (row,) = stored_rows(services)
    secret = token.removeprefix("tapi_")
    for value in row.values():
        assert secret[4:] not in str(value)
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert row["token_prefix"] == token[:9]


def test_expires_in_sets_the_expiry(api, auth):
    data = create(api, auth, expires_in=3600)
    assert parse(data["expires_at"]) - parse(data["created_at"]) == timedelta(hours=1)
    longest = create(api, auth, expires_in=31_622_400)
    assert parse(longest["expires_at"]) - parse(longest["created_at"]) == timedelta(days=366)


@pytest.mark.parametrize(
    "body",
    [
        {"scopes": ["tasks:read"]},
        {"name": "", "scopes": ["tasks:read"]},
        {"name": "x" * 101, "scopes": ["tasks:read"]},
        {"name": "ci"},
        {"name": "ci", "scopes": []},
        {"name": "ci", "scopes": ["tasks:delete"]},
        {"name": "ci", "scopes": ["session"]},
        {"name": "ci", "scopes": ["tasks:read", "tasks:read"]},
        {"name": "ci", "scopes": "tasks:read"},
        {"name": "ci", "scopes": ["tasks:read"], "expires_in": 0},
        {"name": "ci", "scopes": ["tasks:read"], "expires_in": 31_622_401},
        {"name": "ci", "scopes": ["tasks:read"], "expires_in": 1.5},
    ],
)
def test_a_bad_request_for_a_token_is_a_400_that_creates_none(api, auth, services, body):
    assert_problem(api.client.post(TOKENS, json=body, headers=auth), 400, "validation_failed")
    assert stored_rows(services) == []


def test_a_token_works_where_its_scopes_allow(api, auth):
    task = api.create_task(auth, title="Mine")
    reader = bearer(create(api, auth, scopes=["tasks:read"])["token"])
    assert api.client.get("/api/v1/tasks", headers=reader).json()["data"][0]["id"] == task["id"]
    assert api.client.get(f"/api/v1/tasks/{task['id']}", headers=reader).status_code == 200
    refused = api.client.post("/api/v1/tasks", json={"title": "No"}, headers=reader)
    assert_problem(refused, 403, "insufficient_scope")
    assert refused.headers["WWW-Authenticate"].endswith('scope="tasks:write"')


def test_tasks_write_brings_tasks_read(api, auth):
    data = create(api, auth, scopes=["tasks:write"])
    assert data["scopes"] == ["tasks:read", "tasks:write"]
    writer = bearer(data["token"])
    created = api.client.post("/api/v1/tasks", json={"title": "Yes"}, headers=writer)
    assert created.status_code == 201
    assert api.client.get("/api/v1/tasks", headers=writer).status_code == 200


def test_a_token_speaks_only_for_its_own_account(api, auth):
    other = api.user()
    foreign = api.create_task(other)
    token = bearer(create(api, auth, scopes=["tasks:write"])["token"])
    assert_problem(api.client.get(f"/api/v1/tasks/{foreign['id']}", headers=token), 404)
    assert api.client.get("/api/v1/tasks", headers=token).json()["data"] == []


def test_a_token_cannot_manage_the_account_before_the_body_is_read(api, auth):
    every_scope = bearer(
        create(api, auth, scopes=["tasks:read", "tasks:write", "account:read"])["token"]
    )
    assert api.client.get("/api/v1/auth/me", headers=every_scope).status_code == 200
    for method, path in [
        ("POST", "/api/v1/auth/logout"),
        ("POST", "/api/v1/auth/password"),
        ("PATCH", "/api/v1/auth/me"),
        ("DELETE", "/api/v1/auth/me"),
        ("POST", TOKENS),
    ]:
        # A body that validation would refuse: security answers first.
        response = api.client.request(method, path, content=b"{not json", headers=every_scope)
        assert_problem(response, 403, "insufficient_scope")
        assert response.headers["WWW-Authenticate"].endswith('scope="session"')


def test_a_token_is_no_refresh_token(api, auth):
    token = create(api, auth)["token"]
    response = api.client.post("/api/v1/auth/refresh", json={"refresh_token": token})
    assert_problem(response, 401, "invalid_refresh_token")


def test_a_revoked_token_stops_working_at_once(api, auth):
    data = create(api, auth)
    token = bearer(data["token"])
    assert api.client.get("/api/v1/tasks", headers=token).status_code == 200
    assert api.client.delete(f"{TOKENS}/{data['id']}", headers=auth).status_code == 204
    refused = api.client.get("/api/v1/tasks", headers=token)
    assert_problem(refused, 401, "invalid_token")
    assert refused.headers["WWW-Authenticate"] == INVALID_TOKEN
    assert api.client.get(TOKENS, headers=auth).json()["data"] == []


def test_another_accounts_token_is_not_found_like_a_missing_one(api, auth):
    theirs = create(api, api.user())
    missing = api.client.delete(f"{TOKENS}/{theirs['id'] + 1000}", headers=auth)
    foreign = api.client.delete(f"{TOKENS}/{theirs['id']}", headers=auth)
    assert assert_problem(foreign, 404, "token_not_found") == assert_problem(missing, 404)
    assert_problem(api.client.get(f"{TOKENS}/{theirs['id']}", headers=auth), 404)
    assert api.client.get("/api/v1/tasks", headers=bearer(theirs["token"])).status_code == 200


@pytest.mark.live
def test_a_revocation_holds_on_every_worker_at_once(live_server):
    """`taskapi serve` with two workers: requests on new connections reach both."""
    with httpx.Client(base_url=live_server, timeout=10) as http:
        api = Api(http)
        # The server is shared by the session's live tests: an address of this test's own.
        session = api.user(f"revoked-{uuid.uuid4().hex[:8]}@example.com")
        data = create(api, session)
    requests = 20

    def statuses() -> set[int]:
        return {
            httpx.get(f"{live_server}/api/v1/tasks", headers=bearer(data["token"])).status_code
            for _ in range(requests)
        }

    assert statuses() == {200}
    revoked = httpx.delete(f"{live_server}{TOKENS}/{data['id']}", headers=session)
    assert revoked.status_code == 204
    assert statuses() == {401}


def test_an_expired_token_is_refused_and_stays_listed_until_the_purge(api, auth, services):
    data = create(api, auth)
    past = datetime.now(UTC) - timedelta(seconds=1)
    set_column(services, data["id"], expires_at=past)
    refused = api.client.get("/api/v1/tasks", headers=bearer(data["token"]))
    assert_problem(refused, 401, "invalid_token")
    assert [t["id"] for t in api.client.get(TOKENS, headers=auth).json()["data"]] == [data["id"]]
    assert housekeeping.purge(services.db)["personal_access_tokens"] == 0
    later = datetime.now(UTC) + housekeeping.EXPIRED_TOKENS_LISTED
    assert housekeeping.purge(services.db, now=later)["personal_access_tokens"] == 1
    assert api.client.get(TOKENS, headers=auth).json()["data"] == []


def test_a_password_change_revokes_every_token(api, auth):
    tokens = [bearer(create(api, auth)["token"]) for _ in range(2)]
    changed = api.client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "another-password-456"},
        headers=auth,
    )
    assert changed.status_code == 200
    for token in tokens:
        assert_problem(api.client.get("/api/v1/tasks", headers=token), 401, "invalid_token")
    session = bearer(changed.json()["data"]["token"])
    assert api.client.get(TOKENS, headers=session).json()["data"] == []


def test_deleting_the_account_deletes_its_tokens(api, services):
    doomed, kept = api.user(), api.user()
    token = create(api, doomed)["token"]
    create(api, kept)
    deleted = api.client.request(
        "DELETE", "/api/v1/auth/me", json={"password": PASSWORD}, headers=doomed
    )
    assert deleted.status_code == 204
    assert len(stored_rows(services)) == 1
    assert_problem(api.client.get("/api/v1/tasks", headers=bearer(token)), 401, "invalid_token")


def test_last_used_at_is_set_on_first_use_then_at_most_once_a_minute(api, auth, services):
    data = create(api, auth)
    token, path = bearer(data["token"]), f"{TOKENS}/{data['id']}"
    api.client.get("/api/v1/tasks", headers=token)
    first = api.client.get(path, headers=auth).json()["data"]["last_used_at"]
    assert first is not None
    api.client.get("/api/v1/tasks", headers=token)
    assert api.client.get(path, headers=auth).json()["data"]["last_used_at"] == first
    set_column(services, data["id"], last_used_at=parse(first) - timedelta(minutes=1))
    api.client.get("/api/v1/tasks", headers=token)
    assert parse(api.client.get(path, headers=auth).json()["data"]["last_used_at"]) > parse(first)


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer tapi_",
        "Bearer tapi_short",
        "Bearer tapi_" + "A" * 43,
        "Bearer tapi_" + "!" * 43,
        "Bearer tapi_" + "A" * 44,
        "Bearer tapi_eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VyX2lkIjoxfQ.c2ln",
        "Bearer " + "x" * 10_000,
        b"Bearer tapi_" + "\u00e9".encode() * 43,
    ],
)
def test_a_malformed_or_unknown_token_is_a_401(api, authorization):
    response = api.client.get("/api/v1/tasks", headers={"Authorization": authorization})
    assert_problem(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"] == INVALID_TOKEN


def test_a_jwt_with_the_token_prefix_is_refused(api, auth):
    jwt = auth["Authorization"].removeprefix("Bearer ")
    response = api.client.get("/api/v1/tasks", headers=bearer("tapi_" + jwt))
    assert_problem(response, 401, "invalid_token")


def test_token_requests_spend_the_accounts_budget(make_app, settings):
    app = make_app(settings, rate_limit_default="4/minute")
    with app.test_client() as client:
        api = Api(client)
        session = api.user()
        token = bearer(create(api, session)["token"])
        assert client.get("/api/v1/tasks", headers=session).status_code == 200
        by_token = client.get("/api/v1/tasks", headers=token)
        assert by_token.status_code == 200
        assert by_token.headers["RateLimit-Limit"] == "4"
        assert by_token.headers["RateLimit-Remaining"] == "1"
        assert client.get("/api/v1/tasks", headers=token).status_code == 200
        assert_problem(client.get("/api/v1/tasks", headers=session), 429, "rate_limited")


def test_refused_tokens_spend_the_client_addresses_budget(make_app, settings):
    app = make_app(settings, rate_limit_default="3/minute")
    with app.test_client() as client:
        session = Api(client).user()
        guesses = [bearer("tapi_" + f"{n:043d}") for n in range(3)]
        for guess in guesses:
            assert_problem(client.get("/api/v1/tasks", headers=guess), 401, "invalid_token")
        over = client.get("/api/v1/tasks", headers=bearer("tapi_" + "9" * 43))
        assert_problem(over, 429, "rate_limited")
        assert int(over.headers["Retry-After"]) > 0
        # Until the window ends, this address's tokens are not looked up at all.
        assert_problem(client.get("/api/v1/tasks", headers=session), 429, "rate_limited")
        assert client.get("/health").status_code == 200


def test_the_token_operations_are_owner_scoped_in_sql(api, auth, services):
    """Every statement of a token operation names the caller's account."""
    data = create(api, auth)
    statements: list[str] = []
    engines = (services.db.engine, services.db.read_engine)

    def record(_conn, _cursor, sql, *_):
        statements.append(sql)

    for engine in engines:
        sa.event.listen(engine, "before_cursor_execute", record)
    try:
        api.client.get(TOKENS, headers=auth)
        api.client.get(f"{TOKENS}/{data['id']}", headers=auth)
        api.client.delete(f"{TOKENS}/{data['id']}", headers=auth)
    finally:
        for engine in engines:
            sa.event.remove(engine, "before_cursor_execute", record)
    reads_of_tokens = [s for s in statements if "personal_access_tokens" in s]
    assert len(reads_of_tokens) == 3
    assert all("personal_access_tokens.user_id = " in s for s in reads_of_tokens)


def test_a_token_request_costs_no_more_statements_than_a_session_request(api, auth, services):
    token = bearer(create(api, auth)["token"])
    api.client.get("/api/v1/tasks", headers=token)  # its first use writes last_used_at
    counted: list[str] = []

    def count(*_):
        counted.append("")

    def statements(headers):
        counted.clear()
        for engine in (services.db.engine, services.db.read_engine):
            sa.event.listen(engine, "before_cursor_execute", count)
        try:
            assert api.client.get("/api/v1/tasks", headers=headers).status_code == 200
        finally:
            for engine in (services.db.engine, services.db.read_engine):
                sa.event.remove(engine, "before_cursor_execute", count)
        return len(counted)

    assert statements(token) <= statements(auth)
