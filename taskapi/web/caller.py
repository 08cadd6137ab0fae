"""Who is calling: the spec's bearerAuth, resolved once per request before any handler runs.

Connexion calls `bearer_info` (the spec's `x-bearerInfoFunc`) for every operation that declares
bearerAuth, before validation and before the handler. It verifies the JWT, then the account
behind it (`access_tokens.owner_of`: one indexed read), and returns the owner's id as `sub`,
which Connexion hands to handlers as `user`. So a handler that takes `user` gets an id that is
already vouched for, and none can skip the check.
"""

from __future__ import annotations

from typing import Any

import jwt
from connexion.exceptions import OAuthProblem

from taskapi.domain import access_tokens
from taskapi.domain.errors import InvalidToken
from taskapi.web import context


def bearer_info(token: str, request: Any) -> dict[str, Any]:
    """Connexion's x-bearerInfoFunc: the token's claims, with `sub` as the vouched owner id."""
    services = context.of(request.scope).services
    try:
        claims = services.token_codec.decode(token)
    except jwt.InvalidTokenError:
        raise OAuthProblem(detail=InvalidToken.message) from None
    with services.db.reading() as c:
        owner = access_tokens.owner_of(c, claims)
    return {**claims, "sub": owner}
