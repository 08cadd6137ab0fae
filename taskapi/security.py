"""Password hashing and access tokens. CPU only: nothing here touches the database."""

from __future__ import annotations

import threading
import time
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Any

import bcrypt
import jwt
from connexion.exceptions import OAuthProblem

from taskapi.errors import InvalidInput

BCRYPT_MAX_BYTES = 72
ACCESS_TOKEN_TTL = 15 * 60
TOKEN_ALGORITHM = "HS256"
# Tolerated clock skew between the servers that issue and check tokens, in seconds.
TOKEN_LEEWAY = 5
INVALID_TOKEN = "Invalid or expired token"
# Where TokensMiddleware puts the app's TokenCodec for bearer_info (which runs before Flask).
SCOPE_KEY = "taskapi.tokens"


def _password_bytes(password: str) -> bytes:
    # NFKC, as NIST SP 800-63B asks, so the same password typed on two keyboards matches.
    return unicodedata.normalize("NFKC", password).encode("utf-8")


def password_fits(password: str) -> bool:
    """Whether bcrypt reads all of `password`: longer ones are refused, never truncated."""
    return len(_password_bytes(password)) <= BCRYPT_MAX_BYTES


class PasswordHasher:
    """bcrypt with a fixed cost, and equal work whether or not the account exists."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self._dummy: bytes | None = None
        self._lock = threading.Lock()

    def hash(self, password: str, *, field: str = "password") -> str:
        """Hash a new password. Raises InvalidInput (naming `field`) if bcrypt cannot take
        all of it."""
        if not password_fits(password):
            raise InvalidInput(field, f"at most {BCRYPT_MAX_BYTES} bytes when UTF-8 encoded")
        return bcrypt.hashpw(_password_bytes(password), bcrypt.gensalt(self.rounds)).decode()

    def verify(self, password: str, hashed: str | None) -> bool:
        """True if `password` matches `hashed`. Costs one bcrypt check in every case."""
        raw = _password_bytes(password)
        if hashed is None or len(raw) > BCRYPT_MAX_BYTES:
            # Unknown account or a password no hash can match: spend the same time anyway,
            # so neither the status nor the timing tells an attacker which case this was.
            bcrypt.checkpw(b"not the password", self._dummy_hash())
            return False
        return bcrypt.checkpw(raw, hashed.encode("ascii"))

    def _dummy_hash(self) -> bytes:
        with self._lock:
            if self._dummy is None:
                self._dummy = bcrypt.hashpw(b"dummy password", bcrypt.gensalt(self.rounds))
            return self._dummy


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_in: int


class TokenCodec:
    """Issues and checks HS256 access tokens."""

    def __init__(self, secret: str, ttl: int = ACCESS_TOKEN_TTL) -> None:
        self._key = secret.encode()
        self.ttl = ttl

    def issue(self, *, user_id: int, email: str, version: int) -> AccessToken:
        """A token for the account; `version` is the account's token_version."""
        now = int(time.time())
        claims = {
            "user_id": user_id,
            "email": email,
            "sub": str(user_id),
            "iat": now,
            "exp": now + self.ttl,
            "jti": uuid.uuid4().hex,
            "ver": version,
        }
        token = jwt.encode(claims, self._key, algorithm=TOKEN_ALGORITHM)
        return AccessToken(token=token, expires_in=self.ttl)

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
        return claims


def bearer_info(token: str, request: Any) -> dict[str, Any]:
    """Connexion's x-bearerInfoFunc: the token's claims, with `sub` as the integer user id."""
    codec: TokenCodec = request.scope[SCOPE_KEY]
    try:
        claims = codec.decode(token)
    except jwt.InvalidTokenError:
        raise OAuthProblem(detail=INVALID_TOKEN) from None
    return {**claims, "sub": claims["user_id"]}
