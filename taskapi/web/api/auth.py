"""Operations tagged `auth`: accounts, logins, token refresh and logout.

`user` is the caller's account id, already vouched for by the spec's bearerAuth (api/caller.py).
"""

from __future__ import annotations

from typing import Any

import flask

from taskapi.domain import access_tokens, personal_tokens, refresh_tokens, users
from taskapi.domain.errors import InvalidCredentials, InvalidRefreshToken, WrongPassword
from taskapi.storage.rows import UserView
from taskapi.web import consistency, context, spec_types
from taskapi.web.envelope import empty, ok
from taskapi.web.serialize import user_json


def register(body: spec_types.RegisterRequest) -> flask.Response:
    app = context.services()
    # Hash before the transaction: bcrypt is slow (docs/performance.md) and must not hold a
    # pooled connection.
    password_hash = app.passwords.hash(body["password"])
    with app.db.transaction() as s:
        user = users.register(
            s, email=body["email"], name=body["name"], password_hash=password_hash
        )
    consistency.wrote_for(user.id)
    return ok(user_json(user), 201)


def login(body: spec_types.LoginRequest) -> flask.Response:
    app = context.services()
    with app.db.reading() as c:
        user = users.find_by_email(c, body["email"])
    # Unknown email, wrong password and a password too long for bcrypt all cost one bcrypt
    # check and give the same answer.
    password_ok = app.passwords.verify(body["password"], user.password_hash if user else None)
    if user is None or not password_ok:
        app.metrics.login_failures.inc()
        raise InvalidCredentials()
    with app.db.transaction() as s:
        issued = refresh_tokens.issue(s, user_id=user.id, ttl=app.settings.refresh_token_ttl)
    consistency.wrote_for(user.id)
    return ok(_session(user, issued))


def refresh_token(body: spec_types.RefreshRequest) -> flask.Response:
    app = context.services()
    with app.db.transaction() as s:
        rotated = refresh_tokens.rotate(
            s, body["refresh_token"], ttl=app.settings.refresh_token_ttl
        )
    # Outside the transaction: revoking a replayed token's family must be committed.
    if rotated is None:
        raise InvalidRefreshToken()
    consistency.wrote_for(rotated.user.id)
    return ok(_session(rotated.user, rotated.issued))


def logout(
    body: spec_types.RefreshRequest, user: int, token_info: dict[str, Any]
) -> flask.Response:
    with context.services().db.transaction() as s:
        refresh_tokens.revoke_presented(s, body["refresh_token"], user_id=user)
        access_tokens.deny(s, token_info)
    return empty(204)


def get_me(user: int) -> flask.Response:
    with context.services().db.reading() as c:
        account = users.get(c, user)
    return ok(user_json(account))


def update_me(body: spec_types.ProfilePatch, user: int) -> flask.Response:
    with context.services().db.transaction() as s:
        account = users.rename(s, user, name=body["name"]) if "name" in body else users.get(s, user)
    return ok(user_json(account))


def change_password(body: spec_types.PasswordChange, user: int) -> flask.Response:
    app = context.services()
    _check_password(user, body["current_password"])
    password_hash = app.passwords.hash(body["new_password"], field="new_password")
    with app.db.transaction() as s:
        account = users.set_password(s, user, password_hash=password_hash)
        refresh_tokens.revoke_all(s, user_id=user)
        # A password change is what an owner does who fears for the account: it ends every
        # credential, personal access tokens included.
        personal_tokens.revoke_all(s, user_id=user)
        issued = refresh_tokens.issue(s, user_id=user, ttl=app.settings.refresh_token_ttl)
    # Every earlier token is retired; the caller carries on with this new session.
    return ok(_session(account, issued))


def delete_me(body: spec_types.PasswordConfirmation, user: int) -> flask.Response:
    _check_password(user, body["password"])
    with context.services().db.transaction() as s:
        users.remove(s, user)
    return empty(204)


def _check_password(user: int, password: str) -> None:
    """Raises WrongPassword unless `password` is the account's."""
    app = context.services()
    with app.db.reading() as c:
        account = users.get(c, user)
    # bcrypt after the connection is back in the pool, so none waits on it.
    if not app.passwords.verify(password, account.password_hash):
        raise WrongPassword()


def _session(user: UserView, issued: refresh_tokens.Issued) -> spec_types.LoginResult:
    access = context.services().token_codec.issue(
        user_id=user.id, email=user.email, version=user.token_version, session=issued.session
    )
    return {
        "token": access.token,
        "refresh_token": issued.refresh_token,
        "token_type": "Bearer",
        "expires_in": access.expires_in,
        "user": user_json(user),
    }
