"""Who is calling: the spec's security schemes, resolved once per request before any handler runs.

Connexion tries an operation's security requirements in the spec's order, before validation and
before the handler:

- `bearerAuth` calls `bearer_info` (its `x-bearerInfoFunc`): a login session's JWT, verified,
  then the account behind it (`access_tokens.owner_of`: one indexed read). A login session
  holds every power of its account, so no scope is checked.
- `personalAccessToken` calls `personal_token_info` (its `x-tokenInfoFunc`): a `tapi_` token,
  looked up by digest (one indexed read), whose scopes Connexion then compares with the ones
  the operation lists. Lacking one is a 403 `insufficient_scope`.

Each declines the other's kind of token (NO_VALUE, web/framework/security.py says why), so the
one answer is the owning scheme's: its 401, 403, or a database error's 503.

Each returns the owner's id as `sub`, which Connexion hands to handlers as `user`. So a handler
that takes `user` gets an id that is already vouched for, and none can skip the check.
"""

from __future__ import annotations

from typing import Any

import jwt
from connexion.exceptions import OAuthProblem
from connexion.security import NO_VALUE

from taskapi.domain import access_tokens, personal_tokens
from taskapi.domain.errors import InvalidToken
from taskapi.web import consistency, context

# What an info function returns for a token that is the other scheme's.
DECLINED: object = NO_VALUE


async def bearer_info(token: str, request: Any) -> dict[str, Any] | object:
    """Connexion's x-bearerInfoFunc: the token's claims, with `sub` as the vouched owner id."""
    if token.startswith(personal_tokens.PREFIX):
        return DECLINED  # personal_token_info's to check
    services = context.of(request.scope).services
    try:
        claims = services.token_codec.decode(token)
    except jwt.InvalidTokenError:
        raise OAuthProblem(detail=InvalidToken.message) from None
    # The signature vouches for the account, so its reads may use a standby from here on.
    await consistency.follow(services.write_positions, claims["user_id"])
    try:
        with services.db.reading() as c:
            owner = access_tokens.owner_of(c, claims)
    except InvalidToken:
        if services.db.standby is None:
            raise
        # A refusal is the primary's to make: the account may be too new for the standby.
        with services.db.reading(primary=True) as c:
            owner = access_tokens.owner_of(c, claims)
    return {**claims, "sub": owner}


async def personal_token_info(token: str, request: Any) -> dict[str, Any] | object:
    """Connexion's x-tokenInfoFunc: the owner of a personal access token as `sub`, and the
    scopes it holds as `scope`."""
    if not token.startswith(personal_tokens.PREFIX):
        return DECLINED  # bearer_info's to check
    services = context.of(request.scope).services
    db = services.db
    # On the primary: until it is found, nobody knows whose token it is, so a standby could
    # still honour one its owner revoked a moment ago.
    with db.reading() as c:
        holder = personal_tokens.holder(c, token)
    if holder is None:
        raise OAuthProblem(detail=InvalidToken.message)
    await consistency.follow(services.write_positions, holder.user_id)
    if holder.due_for_use_mark:
        with db.single_write() as s:
            personal_tokens.mark_used(s, holder.token_id)
    return {"sub": holder.user_id, "scope": list(holder.scopes), "token_id": holder.token_id}
