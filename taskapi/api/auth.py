"""Operations tagged `auth`: accounts, logins, token refresh and logout."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import flask

from taskapi import tokens, users
from taskapi.api import services
from taskapi.api.envelope import empty, ok
from taskapi.api.serialize import user_json
from taskapi.errors import Forbidden, Unauthorized
from taskapi.models import User

INVALID_CREDENTIALS = "Invalid credentials"
INVALID_REFRESH_TOKEN = "Invalid or expired refresh token"
WRONG_PASSWORD = "password does not match"


def register(body: dict[str, Any]) -> flask.Response:
    app = services.current()
    # Hash before the transaction: bcrypt takes ~0.3 s and must not hold a pooled connection.
    password_hash = app.passwords.hash(body["password"])
    with app.db.transaction() as s:
        user = users.register(
            s, email=body["email"], name=body["name"], password_hash=password_hash
        )
    return ok(user_json(user), 201)


def login(body: dict[str, Any]) -> flask.Response:
    app = services.current()
    with app.db.reading() as s:
        user = users.find_by_email(s, body["email"])
    # Unknown email, wrong password and a password too long for bcrypt all cost one bcrypt
    # check and give the same answer.
    password_ok = app.passwords.verify(body["password"], user.password_hash if user else None)
    if user is None or not password_ok:
        raise Unauthorized(INVALID_CREDENTIALS)
    with app.db.transaction() as s:
        refresh_token = tokens.issue(s, user_id=user.id, ttl=app.settings.refresh_token_ttl)
    return ok(_session(user, refresh_token))


def refresh_token(body: dict[str, Any]) -> flask.Response:
    app = services.current()
    with app.db.transaction() as s:
        rotated = tokens.rotate(s, body["refresh_token"], ttl=app.settings.refresh_token_ttl)
        user = users.get(s, rotated.user_id) if rotated else None
    # Outside the transaction: revoking a replayed token's family must be committed.
    if rotated is None or user is None:
        raise Unauthorized(INVALID_REFRESH_TOKEN)
    return ok(_session(user, rotated.refresh_token))


def logout(body: dict[str, Any], token_info: dict[str, Any]) -> flask.Response:
    with services.current().db.transaction() as s:
        owner = users.authorized(s, token_info)
        tokens.revoke_presented(s, body["refresh_token"], user_id=owner)
        tokens.deny_access_token(
            s, jti=token_info["jti"], user_id=owner, expires_at=_expiry(token_info)
        )
    return empty(204)


def get_me(token_info: dict[str, Any]) -> flask.Response:
    with services.current().db.reading() as s:
        user = users.get(s, users.authorized(s, token_info))
    return ok(user_json(user))


def update_me(body: dict[str, Any], token_info: dict[str, Any]) -> flask.Response:
    with services.current().db.transaction() as s:
        owner = users.authorized(s, token_info)
        user = users.rename(s, owner, name=body["name"]) if "name" in body else users.get(s, owner)
    return ok(user_json(user))


def change_password(body: dict[str, Any], token_info: dict[str, Any]) -> flask.Response:
    app = services.current()
    owner = _check_password(token_info, body["current_password"])
    password_hash = app.passwords.hash(body["new_password"], field="new_password")
    with app.db.transaction() as s:
        users.authorized(s, token_info)
        user = users.set_password(s, owner, password_hash=password_hash)
        tokens.revoke_all(s, user_id=owner)
        refresh = tokens.issue(s, user_id=owner, ttl=app.settings.refresh_token_ttl)
    # Every earlier token is retired; the caller carries on with this new session.
    return ok(_session(user, refresh))


def delete_me(body: dict[str, Any], token_info: dict[str, Any]) -> flask.Response:
    owner = _check_password(token_info, body["password"])
    with services.current().db.transaction() as s:
        users.authorized(s, token_info)
        users.remove(s, owner)
    return empty(204)


def _check_password(token_info: dict[str, Any], password: str) -> int:
    """The caller's id, if `password` is theirs. Raises Forbidden if not."""
    app = services.current()
    with app.db.reading() as s:
        user = users.get(s, users.authorized(s, token_info))
    # bcrypt outside the session, so no pooled connection waits on it.
    if not app.passwords.verify(password, user.password_hash):
        raise Forbidden(WRONG_PASSWORD)
    return user.id


def _session(user: User, refresh_token: str) -> dict[str, Any]:
    access = services.current().tokens.issue(
        user_id=user.id, email=user.email, version=user.token_version
    )
    return {
        "token": access.token,
        "refresh_token": refresh_token,
        "token_type": "Bearer",
        "expires_in": access.expires_in,
        "user": user_json(user),
    }


def _expiry(token_info: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(token_info["exp"], UTC)
