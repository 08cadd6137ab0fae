"""Personal access tokens: long-lived bearer tokens with scopes, for scripts and CI.

A token is `tapi_` and 43 random base62 characters (256 bits): the prefix lets secret scanners
recognise a leaked one. Only its SHA-256 digest is stored, which is enough for a secret of that
strength (nothing to slow down a guesser with, as bcrypt does for passwords) and costs one
indexed read per request. The owner recognises a token by its name and its first characters.

A token holds the scopes it was granted, and `tasks:write` brings `tasks:read` with it: a
script that may change tasks may read them. Scopes are stored expanded, so the check is a
subset test (Connexion's). Deleting a token, a password change and the account's deletion
revoke it; every request reads the table, so a revocation holds on the next one everywhere.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, delete, insert, or_, select, update

from taskapi.domain.errors import TokenNotFound
from taskapi.storage.rows import PersonalTokenView
from taskapi.storage.schema import PERSONAL_ACCESS_TOKENS, utcnow

PREFIX = "tapi_"
_ALPHABET = string.digits + string.ascii_letters
# 43 base62 characters carry 43 * log2(62) = 256.1 bits.
_SECRET_LENGTH = 43
_SHAPE = re.compile(rf"{PREFIX}[0-9A-Za-z]{{{_SECRET_LENGTH}}}")
# What a listing shows of a token: enough to tell tokens apart, far too little to guess one.
DISPLAY_LENGTH = len(PREFIX) + 4
IMPLIED_SCOPES = {"tasks:write": ("tasks:read",)}
# `last_used_at` is written at most this often per token, so a busy token does not turn every
# read into a write.
LAST_USED_PRECISION = timedelta(minutes=1)


@dataclass(frozen=True)
class Created:
    """A new token: the secret, shown once, and its row."""

    token: str
    row: PersonalTokenView


@dataclass(frozen=True)
class Holder:
    """Whom a presented token speaks for, and what it may do."""

    token_id: int
    user_id: int
    scopes: tuple[str, ...]
    # Whether `last_used_at` is due to be written (mark_used).
    due_for_use_mark: bool


_LISTED = (
    PERSONAL_ACCESS_TOKENS.c.id,
    PERSONAL_ACCESS_TOKENS.c.name,
    PERSONAL_ACCESS_TOKENS.c.scopes,
    PERSONAL_ACCESS_TOKENS.c.token_prefix,
    PERSONAL_ACCESS_TOKENS.c.created_at,
    PERSONAL_ACCESS_TOKENS.c.expires_at,
    PERSONAL_ACCESS_TOKENS.c.last_used_at,
)


def well_formed(token: str) -> bool:
    """Whether `token` has the shape of a personal access token (it may still be unknown)."""
    return _SHAPE.fullmatch(token) is not None


def expand(scopes: Iterable[str]) -> tuple[str, ...]:
    """`scopes` with the ones they imply, sorted and without repeats."""
    held = set(scopes)
    for scope in list(held):
        held.update(IMPLIED_SCOPES.get(scope, ()))
    return tuple(sorted(held))


def create(
    s: Connection, *, user_id: int, name: str, scopes: Sequence[str], expires_in: int
) -> Created:
    """A new token for `user_id` with `scopes` (and those they imply), valid `expires_in`
    seconds."""
    token = PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(_SECRET_LENGTH))
    now = utcnow()
    row = s.execute(
        insert(PERSONAL_ACCESS_TOKENS)
        .values(
            user_id=user_id,
            name=name,
            scopes=" ".join(expand(scopes)),
            token_hash=_digest(token),
            token_prefix=token[:DISPLAY_LENGTH],
            created_at=now,
            expires_at=now + timedelta(seconds=expires_in),
        )
        .returning(*_LISTED)
    ).one()
    return Created(token, row)


def list_for(c: Connection, user_id: int) -> list[PersonalTokenView]:
    """The account's tokens, expired ones included until the purge removes them, newest
    first."""
    rows = c.execute(
        select(*_LISTED)
        .where(PERSONAL_ACCESS_TOKENS.c.user_id == user_id)
        .order_by(PERSONAL_ACCESS_TOKENS.c.id.desc())
    )
    return list(rows)


def get(c: Connection, *, user_id: int, token_id: int) -> PersonalTokenView:
    """One of the account's tokens. Raises TokenNotFound if it has none with that id."""
    row: PersonalTokenView | None = c.execute(
        select(*_LISTED).where(
            PERSONAL_ACCESS_TOKENS.c.id == token_id,
            PERSONAL_ACCESS_TOKENS.c.user_id == user_id,
        )
    ).one_or_none()
    if row is None:
        raise TokenNotFound()
    return row


def revoke(s: Connection, *, user_id: int, token_id: int) -> None:
    """Delete one of the account's tokens. Raises TokenNotFound if it has none with that id."""
    deleted = s.execute(
        delete(PERSONAL_ACCESS_TOKENS).where(
            PERSONAL_ACCESS_TOKENS.c.id == token_id,
            PERSONAL_ACCESS_TOKENS.c.user_id == user_id,
        )
    )
    if deleted.rowcount == 0:
        raise TokenNotFound()


def revoke_all(s: Connection, *, user_id: int) -> None:
    """Delete every token of the account (a password change)."""
    s.execute(delete(PERSONAL_ACCESS_TOKENS).where(PERSONAL_ACCESS_TOKENS.c.user_id == user_id))


_BY_DIGEST = select(
    PERSONAL_ACCESS_TOKENS.c.id,
    PERSONAL_ACCESS_TOKENS.c.user_id,
    PERSONAL_ACCESS_TOKENS.c.scopes,
    PERSONAL_ACCESS_TOKENS.c.expires_at,
    PERSONAL_ACCESS_TOKENS.c.last_used_at,
)


def holder(c: Connection, token: str) -> Holder | None:
    """Whom `token` speaks for; None if it is malformed, unknown, revoked or expired."""
    if not well_formed(token):
        return None
    row = c.execute(
        _BY_DIGEST.where(PERSONAL_ACCESS_TOKENS.c.token_hash == _digest(token))
    ).one_or_none()
    now = utcnow()
    if row is None or row.expires_at <= now:
        return None
    due = row.last_used_at is None or row.last_used_at <= now - LAST_USED_PRECISION
    return Holder(row.id, row.user_id, tuple(row.scopes.split()), due)


def mark_used(s: Connection, token_id: int) -> None:
    """Record that the token was used now, unless another request did within the minute."""
    now = utcnow()
    s.execute(
        update(PERSONAL_ACCESS_TOKENS)
        .where(
            PERSONAL_ACCESS_TOKENS.c.id == token_id,
            or_(
                PERSONAL_ACCESS_TOKENS.c.last_used_at.is_(None),
                PERSONAL_ACCESS_TOKENS.c.last_used_at <= now - LAST_USED_PRECISION,
            ),
        )
        .values(last_used_at=now)
    )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
