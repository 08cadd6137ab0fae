"""Bearer tokens: everything but a valid, unexpired HS256 token of a live account is a 401."""

from __future__ import annotations

import base64
import json
import time
import warnings

import jwt
import pytest
import sqlalchemy as sa

from tests.conftest import JWT_SECRET, assert_problem


def claims_for(uid, **overrides):
    now = int(time.time())
    claims = {
        "user_id": uid,
        "email": "jane@example.com",
        "sub": str(uid),
        "iat": now,
        "exp": now + 900,
        "jti": "abc",
        "ver": 0,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def signed(uid, key=JWT_SECRET, algorithm="HS256", **overrides):
    return jwt.encode(claims_for(uid, **overrides), key, algorithm=algorithm)


def b64(data):
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def flip_last_signature_char(token):
    return token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]


def hs512_with_the_real_key(uid):
    with warnings.catch_warnings():
        # The test secret is shorter than HS512 wants; the server must refuse the algorithm anyway.
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        return signed(uid, JWT_SECRET, "HS512")


NOW = int(time.time())
FORGERIES = {
    "alg none": lambda uid: b64({"alg": "none", "typ": "JWT"}) + "." + b64(claims_for(uid)) + ".",
    "HS512 with the real key": lambda uid: hs512_with_the_real_key(uid),
    "wrong key": lambda uid: signed(uid, "another-secret-that-is-long-enough-0000000"),
    "flipped signature": lambda uid: flip_last_signature_char(signed(uid)),
    "expired": lambda uid: signed(uid, iat=NOW - 1000, exp=NOW - 60),
    "no exp": lambda uid: signed(uid, exp=None),
    "no iat": lambda uid: signed(uid, iat=None),
    "sid not a string": lambda uid: signed(uid, sid=7),
    "no sub": lambda uid: signed(uid, sub=None),
    "no user_id": lambda uid: signed(uid, user_id=None),
    "no jti": lambda uid: signed(uid, jti=None),
    "sub and user_id disagree": lambda uid: signed(uid, sub="999"),
    "string user_id": lambda uid: signed(uid, user_id=str(uid)),
    "issued in the future": lambda uid: signed(uid, iat=NOW + 3600),
    "exp not a number": lambda uid: signed(uid, exp="abc"),
    "garbage": lambda uid: "a.b.c",
    "array payload": lambda uid: b64({"alg": "HS256"}) + "." + b64(b"[1]") + ".x",
}


@pytest.fixture
def user_id(auth):
    token = auth["Authorization"].split()[1]
    return jwt.decode(token, JWT_SECRET, algorithms=["HS256"])["user_id"]


def get_tasks(api, authorization):
    return api.client.get("/api/v1/tasks", headers={"Authorization": authorization})


def test_a_valid_token_works(api, user_id):
    response = get_tasks(api, f"Bearer {signed(user_id)}")
    assert response.json() == {
        "success": True,
        "data": [],
        "meta": {"page": 1, "limit": 20, "total_count": 0, "total_pages": 0, "next_cursor": None},
    }


@pytest.mark.parametrize("scheme", ["bearer", "BEARER"])
def test_the_scheme_is_case_insensitive(api, user_id, scheme):
    assert get_tasks(api, f"{scheme} {signed(user_id)}").json()["success"] is True


@pytest.mark.parametrize("forgery", FORGERIES)
def test_forged_or_broken_tokens_are_401(api, user_id, forgery):
    response = get_tasks(api, f"Bearer {FORGERIES[forgery](user_id)}")
    assert_problem(response, 401, "invalid_token")
    assert response.json()["detail"] == "Invalid or expired token"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        ("", "Authorization header required"),
        ("Basic dTpw", "Invalid authorization header format"),
        ("Bearer", "Invalid authorization header format"),
        ("Token abc", "Invalid authorization header format"),
    ],
)
def test_malformed_authorization_headers_are_401(api, authorization, detail):
    response = get_tasks(api, authorization)
    assert_problem(response, 401)
    assert response.json()["detail"] == detail
    assert response.headers["www-authenticate"] == 'Bearer realm="taskapi"'


def test_a_huge_authorization_header_is_401_not_500(api):
    assert_problem(get_tasks(api, "Bearer " + "a" * 100_000), 401, "invalid_token")


def test_a_token_in_the_query_string_is_not_accepted(api, auth):
    token = auth["Authorization"].split()[1]
    response = api.client.get("/api/v1/tasks", params={"access_token": token})
    body = assert_problem(response, 401, "authentication_required")
    assert body["detail"] == "Authorization header required"


def test_token_of_a_deleted_user_is_401_everywhere_and_creates_nothing(
    api, auth, services, user_id
):
    task = api.create_task(auth)
    engine = services.db.engine
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM users WHERE id = :id"), {"id": user_id})
    calls = [
        ("GET", "/api/v1/tasks", None),
        ("POST", "/api/v1/tasks", {"title": "orphan"}),
        ("GET", f"/api/v1/tasks/{task['id']}", None),
        ("PUT", f"/api/v1/tasks/{task['id']}", {"title": "x"}),
        ("DELETE", f"/api/v1/tasks/{task['id']}", None),
    ]
    for method, path, body in calls:
        response = api.client.request(method, path, json=body, headers=auth)
        assert_problem(response, 401, "invalid_token")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM tasks")).scalar() == 0


def test_passwords_are_stored_as_bcrypt_hashes(api, services):
    api.register("jane@example.com", password="correct-horse")
    engine = services.db.engine
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT password_hash FROM users")).scalar()
    assert stored.startswith("$2b$04$")
    assert "correct-horse" not in stored
