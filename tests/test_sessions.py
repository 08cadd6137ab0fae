"""Login sessions and accounts: refresh, logout, me, password change, account deletion."""

from __future__ import annotations

import jwt
import pytest
import sqlalchemy as sa

from taskapi.storage.schema import REFRESH_TOKENS, TASKS, USERS
from tests.conftest import JWT_SECRET, PASSWORD, assert_problem, services_of


@pytest.fixture
def session(api):
    """A registered user's login response data."""
    email = api.register("jane@example.com").json()["data"]["email"]
    return api.login(email).json()["data"]


def bearer(data):
    return {"Authorization": f"Bearer {data['token']}"}


def refresh(api, token):
    return api.client.post("/api/v1/auth/refresh", json={"refresh_token": token})


def test_login_returns_a_refresh_token_and_token_metadata(session):
    assert session["token_type"] == "Bearer"
    assert session["expires_in"] == 900
    assert len(session["refresh_token"]) >= 40
    assert session["user"]["email"] == "jane@example.com"


def test_refresh_tokens_are_stored_only_as_hashes(api, services, session):
    engine = services.db.engine
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT token_hash FROM refresh_tokens")).scalars().all()
    assert session["refresh_token"] not in stored
    assert all(len(h) == 64 for h in stored)


def test_refresh_issues_new_tokens_that_work(api, session):
    response = refresh(api, session["refresh_token"])
    assert response.status_code == 200
    renewed = response.json()["data"]
    assert renewed["refresh_token"] != session["refresh_token"]
    assert renewed["token"] != session["token"]
    assert renewed["user"] == session["user"]
    assert api.client.get("/api/v1/tasks", headers=bearer(renewed)).status_code == 200
    # The new refresh token works in turn.
    assert refresh(api, renewed["refresh_token"]).status_code == 200


def test_reusing_a_refresh_token_revokes_its_whole_family(api, session):
    first = refresh(api, session["refresh_token"]).json()["data"]
    replay = refresh(api, session["refresh_token"])
    assert_problem(replay, 401, "invalid_refresh_token")
    assert replay.json()["detail"] == "Invalid or expired refresh token"
    # The legitimate successor dies with the family: whoever holds it must log in again.
    assert_problem(refresh(api, first["refresh_token"]), 401, "invalid_refresh_token")


def test_a_replayed_refresh_token_ends_every_access_token_of_its_session(api, session):
    """A thief replays a refresh token the owner already used: the owner's new access token,
    the thief's and the session's first one all stop working at once, not 15 minutes later."""
    thief_copy = session["refresh_token"]
    owner = refresh(api, session["refresh_token"]).json()["data"]
    assert api.client.get("/api/v1/auth/me", headers=bearer(owner)).status_code == 200
    assert_problem(refresh(api, thief_copy), 401, "invalid_refresh_token")
    for data in (owner, session):
        assert_problem(api.client.get("/api/v1/auth/me", headers=bearer(data)), 401)
    assert_problem(refresh(api, owner["refresh_token"]), 401, "invalid_refresh_token")


def test_a_logout_ends_the_access_tokens_refreshed_in_its_session(api, session):
    refreshed = refresh(api, session["refresh_token"]).json()["data"]
    response = api.client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": refreshed["refresh_token"]},
        headers=bearer(session),
    )
    assert response.status_code == 204
    assert_problem(api.client.get("/api/v1/auth/me", headers=bearer(refreshed)), 401)


def test_other_sessions_survive_a_revoked_family(api, session):
    other = api.login("jane@example.com").json()["data"]
    refresh(api, session["refresh_token"])
    refresh(api, session["refresh_token"])  # replay: revokes the first session's family
    renewed = refresh(api, other["refresh_token"]).json()["data"]
    assert api.client.get("/api/v1/auth/me", headers=bearer(renewed)).json()["data"]["email"] == (
        "jane@example.com"
    )


@pytest.mark.parametrize("token", ["nope", "x" * 512])
def test_unknown_refresh_tokens_are_401(api, token):
    response = refresh(api, token)
    assert_problem(response, 401, "invalid_refresh_token")
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_expired_refresh_tokens_are_401(make_app, settings):
    app = make_app(settings, refresh_token_ttl=60)
    client = app.test_client()
    body = {"email": "jane@example.com", "password": PASSWORD, "name": "Jane"}
    client.post("/api/v1/auth/register", json=body)
    token = client.post("/api/v1/auth/login", json=body).json()["data"]["refresh_token"]
    with services_of(app).db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE refresh_tokens SET expires_at = created_at"))
    response = client.post("/api/v1/auth/refresh", json={"refresh_token": token})
    assert_problem(response, 401, "invalid_refresh_token")


def test_logout_ends_the_session_and_the_access_token(api, session):
    response = api.client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": session["refresh_token"]},
        headers=bearer(session),
    )
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(refresh(api, session["refresh_token"]), 401, "invalid_refresh_token")
    denied = api.client.get("/api/v1/tasks", headers=bearer(session))
    assert_problem(denied, 401, "invalid_token")
    assert denied.json()["detail"] == "Invalid or expired token"


def test_logout_leaves_other_sessions_alone(api, session):
    other = api.login("jane@example.com").json()["data"]
    api.client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": session["refresh_token"]},
        headers=bearer(session),
    )
    assert api.client.get("/api/v1/tasks", headers=bearer(other)).json()["success"] is True
    assert refresh(api, other["refresh_token"]).json()["data"]["user"]["email"] == (
        "jane@example.com"
    )


def test_logout_cannot_end_someone_elses_session(api, session):
    mallory = api.login(api.register("mallory@example.com").json()["data"]["email"]).json()["data"]
    response = api.client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": session["refresh_token"]},
        headers=bearer(mallory),
    )
    assert response.status_code == 204
    still_jane = refresh(api, session["refresh_token"]).json()["data"]["user"]["email"]
    assert still_jane == "jane@example.com"


def test_logout_needs_a_token(api, session):
    response = api.client.post(
        "/api/v1/auth/logout", json={"refresh_token": session["refresh_token"]}
    )
    assert_problem(response, 401, "authentication_required")
    assert refresh(api, session["refresh_token"]).status_code == 200  # the session lives on


def test_me_returns_the_current_user(api, session):
    response = api.client.get("/api/v1/auth/me", headers=bearer(session))
    assert response.status_code == 200
    assert response.json()["data"] == session["user"]


@pytest.mark.parametrize("content_type", ["application/json", "application/merge-patch+json"])
def test_patch_me_renames(api, session, content_type):
    response = api.client.patch(
        "/api/v1/auth/me",
        content=b'{"name": "Jane Q. Doe", "email": "ignored@example.com"}',
        headers={**bearer(session), "Content-Type": content_type},
    )
    assert response.status_code == 200
    user = response.json()["data"]
    assert user["name"] == "Jane Q. Doe"
    assert user["email"] == "jane@example.com"
    assert user["updated_at"] > session["user"]["updated_at"]
    assert api.client.get("/api/v1/auth/me", headers=bearer(session)).json()["data"] == user


def test_patch_me_validates_the_name(api, session):
    response = api.client.patch("/api/v1/auth/me", json={"name": "J"}, headers=bearer(session))
    assert_problem(response, 400, "validation_failed")
    assert response.json()["detail"] == "name: at least 2 characters"


def change_password(api, session, current, new):
    return api.client.post(
        "/api/v1/auth/password",
        json={"current_password": current, "new_password": new},
        headers=bearer(session),
    )


def test_password_change_retires_every_earlier_token(api, session):
    other = api.login("jane@example.com").json()["data"]
    response = change_password(api, session, PASSWORD, "brand-new-password")
    assert response.status_code == 200
    fresh = response.json()["data"]
    for old in (session, other):
        assert_problem(api.client.get("/api/v1/tasks", headers=bearer(old)), 401, "invalid_token")
        assert_problem(refresh(api, old["refresh_token"]), 401, "invalid_refresh_token")
    assert api.client.get("/api/v1/tasks", headers=bearer(fresh)).status_code == 200
    assert refresh(api, fresh["refresh_token"]).status_code == 200
    assert_problem(api.login("jane@example.com"), 401, "invalid_credentials")
    assert api.login("jane@example.com", "brand-new-password").json()["data"]["token"]


def test_password_change_needs_the_current_password(api, session):
    response = change_password(api, session, "not-the-password", "brand-new-password")
    assert_problem(response, 403, "wrong_password")
    assert response.json()["detail"] == "password does not match"
    assert api.client.get("/api/v1/tasks", headers=bearer(session)).status_code == 200


def test_new_password_follows_the_registration_rules(api, session):
    short = change_password(api, session, PASSWORD, "short")
    assert_problem(short, 400, "validation_failed")
    assert short.json()["detail"] == "new_password: at least 8 characters"
    wide = change_password(api, session, PASSWORD, "é" * 72)
    assert_problem(wide, 400, "validation_failed")
    assert wide.json()["errors"] == [
        {"field": "new_password", "message": "at most 72 bytes when UTF-8 encoded"}
    ]


def test_deleting_the_account_takes_its_tasks_and_tokens(api, services, session):
    api.create_task(bearer(session))
    response = api.client.request(
        "DELETE", "/api/v1/auth/me", json={"password": PASSWORD}, headers=bearer(session)
    )
    assert response.status_code == 204
    assert_problem(api.client.get("/api/v1/auth/me", headers=bearer(session)), 401, "invalid_token")
    assert_problem(refresh(api, session["refresh_token"]), 401, "invalid_refresh_token")
    assert_problem(api.login("jane@example.com"), 401, "invalid_credentials")
    engine = services.db.engine
    with engine.connect() as conn:
        for table in (USERS, TASKS, REFRESH_TOKENS):
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 0
    # The email can be registered again, and gets a new id.
    again = api.register("jane@example.com")
    assert again.status_code == 201
    assert again.json()["data"]["id"] != session["user"]["id"]


def test_deleting_the_account_needs_its_password(api, session):
    response = api.client.request(
        "DELETE", "/api/v1/auth/me", json={"password": "wrong"}, headers=bearer(session)
    )
    assert_problem(response, 403, "wrong_password")
    me = api.client.get("/api/v1/auth/me", headers=bearer(session))
    assert me.json()["data"]["email"] == "jane@example.com"


def test_access_tokens_carry_the_token_version_and_their_session(api, session):
    claims = jwt.decode(session["token"], JWT_SECRET, algorithms=["HS256"])
    assert claims["ver"] == 0
    refreshed = refresh(api, session["refresh_token"]).json()["data"]
    assert jwt.decode(refreshed["token"], JWT_SECRET, algorithms=["HS256"])["sid"] == claims["sid"]
    other = api.login("jane@example.com").json()["data"]
    assert jwt.decode(other["token"], JWT_SECRET, algorithms=["HS256"])["sid"] != claims["sid"]


@pytest.mark.parametrize("ending", ["logout", "password change"])
def test_an_ended_token_cannot_reach_tasks_that_still_exist(api, session, ending):
    task = api.create_task(bearer(session))
    api.create_task(bearer(session))
    if ending == "logout":
        api.client.post(
            "/api/v1/auth/logout",
            json={"refresh_token": session["refresh_token"]},
            headers=bearer(session),
        )
    else:
        change_password(api, session, PASSWORD, "brand-new-password")
    calls = [
        ("GET", "/api/v1/tasks", None),
        ("GET", f"/api/v1/tasks/{task['id']}", None),
        ("PUT", f"/api/v1/tasks/{task['id']}", {"title": "x"}),
        ("PATCH", f"/api/v1/tasks/{task['id']}", {"title": "x"}),
        ("DELETE", f"/api/v1/tasks/{task['id']}", None),
        ("POST", "/api/v1/tasks", {"title": "x"}),
    ]
    for method, path, body in calls:
        response = api.client.request(method, path, json=body, headers=bearer(session))
        assert_problem(response, 401, "invalid_token")
    # The tasks are still there for the account's current session.
    if ending == "logout":
        fresh = api.login("jane@example.com").json()["data"]
    else:
        fresh = api.login("jane@example.com", "brand-new-password").json()["data"]
    listed = api.client.get("/api/v1/tasks", headers=bearer(fresh)).json()
    assert listed["meta"]["total_count"] == 2
