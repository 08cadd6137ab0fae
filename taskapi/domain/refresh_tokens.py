"""Login sessions: rotating refresh tokens.

A login starts a family of refresh tokens. Each refresh uses one up and issues its successor in
the same family. Presenting a used token again means it was stolen or replayed, so the whole
family is revoked (OAuth 2.0 Security BCP, refresh token rotation). A family is a login
session: the access tokens issued with its refresh tokens carry its id (`sid`) and stop
working when it is revoked (access_tokens.py). Only SHA-256 digests of refresh tokens are
stored.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection, case, insert, select, update

from taskapi.domain import users
from taskapi.storage.rows import UserView
from taskapi.storage.schema import REFRESH_TOKENS, utcnow

# Far longer than an access token lives (15 minutes), whatever the clocks of the servers.
REVOKED_KEPT = timedelta(hours=1)


@dataclass(frozen=True)
class Issued:
    """A new refresh token, and the login session (family) it belongs to."""

    refresh_token: str
    session: str


@dataclass(frozen=True)
class Rotated:
    user: UserView
    issued: Issued


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def issue(s: Connection, *, user_id: int, ttl: int, family: str | None = None) -> Issued:
    """A new refresh token for `user_id`: of a new family (a login) unless one is given."""
    token = secrets.token_urlsafe(32)
    family = family or uuid.uuid4().hex
    now = utcnow()
    s.execute(
        insert(REFRESH_TOKENS).values(
            user_id=user_id,
            family=family,
            token_hash=_digest(token),
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
        )
    )
    return Issued(token, family)


def rotate(s: Connection, presented: str, *, ttl: int) -> Rotated | None:
    """Use up `presented` and issue its successor; None if it cannot be used.

    A token that was already used revokes its whole family. The caller commits that even
    though it answers 401.
    """
    now = utcnow()
    digest = _digest(presented)
    owner = s.scalar(select(REFRESH_TOKENS.c.user_id).where(REFRESH_TOKENS.c.token_hash == digest))
    account = None if owner is None else users.lock(s, owner)
    if account is None:
        return None
    # One statement claims the token, so two concurrent refreshes cannot both succeed.
    claimed = s.execute(
        update(REFRESH_TOKENS)
        .where(
            REFRESH_TOKENS.c.token_hash == digest,
            REFRESH_TOKENS.c.used_at.is_(None),
            REFRESH_TOKENS.c.revoked_at.is_(None),
            REFRESH_TOKENS.c.expires_at > now,
        )
        .values(used_at=now)
        .returning(REFRESH_TOKENS.c.user_id, REFRESH_TOKENS.c.family)
    ).first()
    if claimed is not None:
        user_id, family = claimed
        return Rotated(account, issue(s, user_id=user_id, ttl=ttl, family=family))
    replayed_family = s.scalar(
        select(REFRESH_TOKENS.c.family).where(
            REFRESH_TOKENS.c.token_hash == digest, REFRESH_TOKENS.c.used_at.is_not(None)
        )
    )
    if replayed_family is not None:
        _revoke(s, REFRESH_TOKENS.c.family == replayed_family, now)
    return None


def revoke_presented(s: Connection, presented: str, *, user_id: int) -> None:
    """Log out the session `presented` belongs to, if it is one of `user_id`'s."""
    users.lock(s, user_id)
    family = s.scalar(
        select(REFRESH_TOKENS.c.family).where(
            REFRESH_TOKENS.c.token_hash == _digest(presented), REFRESH_TOKENS.c.user_id == user_id
        )
    )
    if family is not None:
        _revoke(s, REFRESH_TOKENS.c.family == family, utcnow())


def revoke_all(s: Connection, *, user_id: int) -> None:
    """Log out every session of `user_id`."""
    users.lock(s, user_id)
    _revoke(s, REFRESH_TOKENS.c.user_id == user_id, utcnow())


def _revoke(s: Connection, which: ColumnElement[bool], now: datetime) -> None:
    # A revoked token is kept only while an access token of its session could still be
    # presented (access_tokens.owner_of looks for it), then the purge deletes it.
    kept_until = now + REVOKED_KEPT
    s.execute(
        update(REFRESH_TOKENS)
        .where(which, REFRESH_TOKENS.c.revoked_at.is_(None))
        .values(
            revoked_at=now,
            expires_at=case(
                (REFRESH_TOKENS.c.expires_at > kept_until, kept_until),
                else_=REFRESH_TOKENS.c.expires_at,
            ),
        )
    )
