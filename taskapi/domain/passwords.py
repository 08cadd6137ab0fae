"""Password hashing with bcrypt: equal work whether or not the account exists."""

from __future__ import annotations

import threading
import unicodedata

import bcrypt

from taskapi.domain.errors import InvalidInput

BCRYPT_MAX_BYTES = 72


def _password_bytes(password: str) -> bytes:
    # NFKC, as NIST SP 800-63B asks, so the same password typed on two keyboards matches.
    return unicodedata.normalize("NFKC", password).encode("utf-8")


def password_fits(password: str) -> bool:
    """Whether bcrypt reads all of `password`: longer ones are refused, never truncated."""
    return len(_password_bytes(password)) <= BCRYPT_MAX_BYTES


class PasswordHasher:
    """bcrypt with a fixed cost."""

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
