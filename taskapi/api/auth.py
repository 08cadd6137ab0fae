"""Operations tagged `auth`: registration and login."""

from __future__ import annotations

from typing import Any

import flask

from taskapi import users
from taskapi.api import services
from taskapi.api.envelope import ok
from taskapi.api.serialize import user_json
from taskapi.errors import Unauthorized

INVALID_CREDENTIALS = "Invalid credentials"


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
    token = app.tokens.issue(user_id=user.id, email=user.email)
    return ok({"token": token.token, "user": user_json(user)})
