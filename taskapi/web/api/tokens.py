"""Operations tagged `tokens`: the caller's personal access tokens.

Each needs a login session (the spec's `session` scope): a personal access token cannot mint,
list or revoke tokens, so a leaked one cannot outlive its own revocation.
"""

from __future__ import annotations

import flask

from taskapi.domain import personal_tokens
from taskapi.web import context, spec_types
from taskapi.web.envelope import empty, ok
from taskapi.web.serialize import new_token_json, token_json

TOKENS_PATH = "/api/v1/auth/tokens"


def create_personal_access_token(
    body: spec_types.PersonalAccessTokenInput, user: int
) -> flask.Response:
    # The request validator has applied the spec's default `expires_in`.
    with context.services().db.single_write() as s:
        created = personal_tokens.create(
            s,
            user_id=user,
            name=body["name"],
            scopes=body["scopes"],
            expires_in=body["expires_in"],
        )
    location = f"{TOKENS_PATH}/{created.row.id}"
    return ok(new_token_json(created), 201, headers={"Location": location})


def list_personal_access_tokens(user: int) -> flask.Response:
    with context.services().db.reading() as c:
        tokens = personal_tokens.list_for(c, user)
    return ok([token_json(token) for token in tokens])


def get_personal_access_token(id: int, user: int) -> flask.Response:
    with context.services().db.reading() as c:
        token = personal_tokens.get(c, user_id=user, token_id=id)
    return ok(token_json(token))


def delete_personal_access_token(id: int, user: int) -> flask.Response:
    with context.services().db.single_write() as s:
        personal_tokens.revoke(s, user_id=user, token_id=id)
    return empty(204)
