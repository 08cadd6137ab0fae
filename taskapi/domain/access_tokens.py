"""Access tokens: HS256 JWTs, the per-request check of the account behind one, and logouts.

A token speaks for its account only while the account exists, its password has not changed
since the token was issued (the token's `ver` is the account's token_version), the token was
not logged out (its `jti` is not on the deny-list) and its login session (`sid`, the refresh
token family it was issued with) was not ended. The deny-list is read and written here only.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from sqlalchemy import Connection, bindparam, delete, exists, insert, select

from taskapi.domain.errors import InvalidToken
from taskapi.storage.schema import REFRESH_TOKENS, REVOKED_ACCESS_TOKENS, USERS, utcnow

ACCESS_TOKEN_TTL = 15 * 60
TOKEN_ALGORITHM = "HS256"
# Tolerated clock skew between the servers that issue and check tokens, in seconds.
TOKEN_LEEWAY = 5


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_in: int


class TokenCodec:
    """Issues and verifies HS256 access tokens."""

    def __init__(self, secret: str, ttl: int = ACCESS_TOKEN_TTL) -> None:
        self._key = secret.encode()
        self.ttl = ttl

    def issue(self, *, user_id: int, email: str, version: int, session: str) -> AccessToken:
        """A token for the account; `version` is the account's token_version, `session` the
        login session (refresh token family) it was issued in."""
        now = int(time.time())
        claims = {
            "user_id": user_id,
            "email": email,
            "sub": str(user_id),
            "iat": now,
            "exp": now + self.ttl,
            "jti": uuid.uuid4().hex,
            "ver": version,
            "sid": session,
        }
        return AccessToken(jwt.encode(claims, self._key, algorithm=TOKEN_ALGORITHM), self.ttl)

    def decode(self, token: str) -> dict[str, Any]:
        """The verified claims. Raises jwt.InvalidTokenError for anything else."""
        claims: dict[str, Any] = jwt.decode(
            token,
            self._key,
            algorithms=[TOKEN_ALGORITHM],
            options={"require": ["exp", "iat", "sub", "jti", "user_id", "ver"]},
            leeway=TOKEN_LEEWAY,
        )
        user_id = claims["user_id"]
        if type(user_id) is not int or claims["sub"] != str(user_id):
            raise jwt.InvalidTokenError("user_id and sub disagree")
        if type(claims["ver"]) is not int or type(claims["jti"]) is not str:
            raise jwt.InvalidTokenError("malformed ver or jti")
        # Tokens issued before sessions were named have no `sid`; they expire within the TTL.
        if type(claims.get("sid", "")) is not str:
            raise jwt.InvalidTokenError("malformed sid")
        return claims


_CURRENT_VERSION = select(USERS.c.token_version).where(
    USERS.c.id == bindparam("user_id"),
    ~exists().where(REVOKED_ACCESS_TOKENS.c.jti == bindparam("jti")),
    # Revoking a session (logout, a replayed refresh token, a password change) marks its
    # refresh tokens revoked; the access tokens issued in it end with them.
    ~exists().where(
        REFRESH_TOKENS.c.family == bindparam("sid"), REFRESH_TOKENS.c.revoked_at.is_not(None)
    ),
)


def owner_of(c: Connection, claims: dict[str, Any]) -> int:
    """The id of the account verified `claims` speak for. Raises Unauthorized if the account
    is gone, the token was logged out, its session was ended, or the password changed since
    it was issued."""
    parameters = {"user_id": claims["user_id"], "jti": claims["jti"], "sid": claims.get("sid")}
    version = c.scalar(_CURRENT_VERSION, parameters)
    if version is None or version != claims["ver"]:
        raise InvalidToken()
    user_id: int = claims["user_id"]
    return user_id


def deny(s: Connection, claims: dict[str, Any]) -> None:
    """Refuse the token with these claims from now until it would have expired anyway."""
    now = utcnow()
    # Entries are only needed until their token expires; clearing them here keeps the table small.
    s.execute(delete(REVOKED_ACCESS_TOKENS).where(REVOKED_ACCESS_TOKENS.c.expires_at < now))
    s.execute(
        insert(REVOKED_ACCESS_TOKENS).values(
            jti=claims["jti"],
            user_id=claims["user_id"],
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        )
    )
