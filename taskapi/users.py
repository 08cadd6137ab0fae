"""Accounts: registration, lookup, profile and password changes, and the per-request check."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, delete, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from taskapi.errors import Conflict, Unauthorized
from taskapi.models import RevokedAccessToken, User, utcnow
from taskapi.security import INVALID_TOKEN


def normalize_email(email: str) -> str:
    """Emails are unique case-insensitively: stored trimmed and lower-cased."""
    return email.strip().lower()


def register(s: Session, *, email: str, name: str, password_hash: str) -> User:
    """Create an account. Raises Conflict if the email is taken, even by a concurrent request."""
    now = utcnow()
    user = User(
        email=normalize_email(email),
        name=name,
        password_hash=password_hash,
        created_at=now,
        updated_at=now,
    )
    s.add(user)
    try:
        # The unique constraint decides; checking first would race with concurrent sign-ups.
        s.flush()
    except IntegrityError:
        raise Conflict("Email already registered") from None
    return user


def find_by_email(s: Session, email: str) -> User | None:
    return s.scalar(select(User).where(User.email == normalize_email(email)))


_TOKEN_VERSION = select(User.token_version).where(
    User.id == bindparam("user_id"),
    ~exists().where(RevokedAccessToken.jti == bindparam("jti")),
)


def authorized(s: Session, token_info: dict[str, Any]) -> int:
    """The account a verified token speaks for. Raises Unauthorized if the account is gone,
    the token was logged out, or the password changed since it was issued."""
    user_id: int = token_info["sub"]
    # Runs on every authenticated request: a Core statement on the session's connection skips
    # the ORM's per-statement work, since no objects are loaded.
    version = s.connection().scalar(_TOKEN_VERSION, {"user_id": user_id, "jti": token_info["jti"]})
    if version is None or version != token_info["ver"]:
        raise Unauthorized(INVALID_TOKEN)
    return user_id


def get(s: Session, user_id: int) -> User:
    """An account that `authorized` has just vouched for."""
    user = s.get(User, user_id)
    if user is None:
        raise Unauthorized(INVALID_TOKEN)
    return user


def rename(s: Session, user_id: int, *, name: str) -> User:
    return _update(s, user_id, name=name)


def set_password(s: Session, user_id: int, *, password_hash: str) -> User:
    """Replace the password; access tokens issued before stop working."""
    return _update(s, user_id, password_hash=password_hash, token_version=User.token_version + 1)


def _update(s: Session, user_id: int, **values: Any) -> User:
    user = s.scalar(
        update(User)
        .where(User.id == user_id)
        .values(**values, updated_at=utcnow())
        .returning(User)
        .execution_options(synchronize_session=False)
    )
    if user is None:
        raise Unauthorized(INVALID_TOKEN)
    return user


def remove(s: Session, user_id: int) -> None:
    """Delete the account; its tasks and tokens go with it (ON DELETE CASCADE)."""
    s.execute(delete(User).where(User.id == user_id))
