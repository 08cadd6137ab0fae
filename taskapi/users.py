"""Accounts: registration, lookup, profile and password changes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from taskapi.errors import AccountGone, EmailTaken
from taskapi.models import User, utcnow


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
        raise EmailTaken() from None
    return user


def find_by_email(s: Session, email: str) -> User | None:
    return s.scalar(select(User).where(User.email == normalize_email(email)))


def get(s: Session, user_id: int) -> User:
    """The account. Raises AccountGone if it was deleted (after its token was checked)."""
    user = s.get(User, user_id)
    if user is None:
        raise AccountGone()
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
        raise AccountGone()
    return user


def remove(s: Session, user_id: int) -> None:
    """Delete the account; its tasks and tokens go with it (ON DELETE CASCADE)."""
    s.execute(delete(User).where(User.id == user_id))
