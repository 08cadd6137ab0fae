"""Registration and login: POST /api/v1/auth/register and /login."""

from __future__ import annotations

import logging

import bcrypt
import jwt
import pytest

from tests.conftest import JWT_SECRET, PASSWORD, assert_problem


def test_register_returns_the_user_without_any_password(api):
    response = api.register("jane@example.com", name="Jane Doe")
    assert response.status_code == 201
    body = response.json()
    assert body["success"] is True
    user = body["data"]
    assert set(user) == {"id", "email", "name", "created_at", "updated_at"}
    assert user["email"] == "jane@example.com"
    assert user["name"] == "Jane Doe"
    assert user["created_at"].endswith("Z")
    assert "password" not in response.text.lower()
    assert "$2b$" not in response.text


def test_email_is_stored_trimmed_and_lower_cased(api):
    response = api.register("  Jane.Doe@Example.COM ")
    assert response.status_code == 201
    assert response.json()["data"]["email"] == "jane.doe@example.com"


def test_duplicate_email_is_a_conflict_case_insensitively(api):
    assert api.register("jane@x.com").status_code == 201
    response = api.register("Jane@X.com")
    assert assert_problem(response, 409, "email_taken")["detail"] == "Email already registered"


@pytest.mark.parametrize(
    "email", ["jane@", "@example.com", "jane", "jane@example", "jane doe@example.com", "a@b@c.com"]
)
def test_malformed_emails_are_rejected(api, email):
    response = api.register(email)
    assert (
        assert_problem(response, 400, "validation_failed")["detail"]
        == "email: must be a valid email address"
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("password", "short", "password: at least 8 characters"),
        ("password", "x" * 73, "password: at most 72 characters"),
        ("name", "J", "name: at least 2 characters"),
        ("name", "x" * 101, "name: at most 100 characters"),
        ("name", 42, "name: must be a string"),
    ],
)
def test_register_rules_are_named_in_plain_words(api, field, value, message):
    body = {"email": "jane@example.com", "password": PASSWORD, "name": "Jane", field: value}
    response = api.client.post("/api/v1/auth/register", json=body)
    problem = assert_problem(response, 400, "validation_failed")
    assert problem["detail"] == message
    assert problem["errors"] == [{"field": field, "message": message.split(": ", 1)[1]}]


def test_missing_fields_are_each_reported(api):
    response = api.client.post("/api/v1/auth/register", json={})
    fields = {e["field"] for e in assert_problem(response, 400, "validation_failed")["errors"]}
    assert fields == {"email", "password", "name"}


def test_password_over_72_bytes_is_a_clear_400_not_a_500(api):
    response = api.register(password="é" * 72)  # 72 characters, 144 bytes
    problem = assert_problem(response, 400, "validation_failed")
    assert problem["detail"] == "password: at most 72 bytes when UTF-8 encoded"
    assert problem["errors"] == [
        {"field": "password", "message": "at most 72 bytes when UTF-8 encoded"}
    ]


def test_password_of_exactly_72_bytes_works(api):
    password = "€" * 24  # 72 bytes
    email = api.register(password=password).json()["data"]["email"]
    assert api.login(email, password).json()["data"]["user"]["email"] == email
    # Every byte counts.
    assert_problem(api.login(email, "€" * 23 + "e"), 401, "invalid_credentials")


def test_login_returns_a_token_and_the_user(api):
    email = api.register("jane@example.com").json()["data"]["email"]
    response = api.login("JANE@example.com")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["user"]["email"] == email
    claims = jwt.decode(data["token"], JWT_SECRET, algorithms=["HS256"])
    assert claims["user_id"] == data["user"]["id"]
    assert claims["sub"] == str(data["user"]["id"])
    assert claims["email"] == email
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert claims["jti"]


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("jane@example.com", "wrong-password"),
        ("nobody@example.com", PASSWORD),
        ("jane@example.com", "é" * 72),
        ("nobody@example.com", "é" * 72),
    ],
)
def test_failed_logins_are_indistinguishable(api, email, password):
    api.register("jane@example.com")
    response = api.login(email, password)
    assert_problem(response, 401, "invalid_credentials")
    assert response.json() == {
        "type": "/problems/invalid_credentials",
        "code": "invalid_credentials",
        "title": "Unauthorized",
        "status": 401,
        "detail": "Invalid credentials",
        "success": False,
        "error": "Invalid credentials",
    }


def test_login_with_malformed_body_is_a_400(api):
    response = api.client.post("/api/v1/auth/login", json={"email": "jane@example.com"})
    assert assert_problem(response, 400, "validation_failed")["detail"] == "password: is required"


@pytest.mark.parametrize("email", ["jane@example.com", "nobody@example.com"])
@pytest.mark.parametrize("password", ["wrong-password", "é" * 72])
def test_every_login_costs_one_bcrypt_check(api, monkeypatch, email, password):
    api.register("jane@example.com")
    calls = []
    real_checkpw = bcrypt.checkpw
    monkeypatch.setattr(bcrypt, "checkpw", lambda *a: calls.append(a) or real_checkpw(*a))
    assert_problem(api.login(email, password), 401, "invalid_credentials")
    # Unknown accounts and over-long passwords are checked against a dummy hash, so a
    # login's duration does not reveal whether the email is registered.
    assert len(calls) == 1


def test_passwords_never_reach_the_logs(api, caplog):
    caplog.set_level(logging.DEBUG)
    secrets = ["sup3r-secret-pw", "tiny", "x" * 80, "y" * 100]
    for password in secrets:
        api.register("jane@example.com", password=password)
        api.login("jane@example.com", password)
    logged = caplog.text
    for password in secrets:
        assert password not in logged
    assert "$2b$" not in logged
