"""Accounts: registration, lookup by email, and the per-request account check."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from taskapi.errors import Conflict, Unauthorized
from taskapi.models import User
from taskapi.security import INVALID_TOKEN


def normalize_email(email: str) -> str:
    """Emails are unique case-insensitively: stored trimmed and lower-cased."""
    return email.strip().lower()


def register(s: Session, *, email: str, name: str, password_hash: str) -> User:
    """Create an account. Raises Conflict if the email is taken, even by a concurrent request."""
    user = User(email=normalize_email(email), name=name, password_hash=password_hash)
    s.add(user)
    try:
        # The unique constraint decides; checking first would race with concurrent sign-ups.
        s.flush()
    except IntegrityError:
        raise Conflict("Email already registered") from None
    return user


def find_by_email(s: Session, email: str) -> User | None:
    return s.scalar(select(User).where(User.email == normalize_email(email)))


def authorized(s: Session, token_info: dict[str, Any]) -> int:
    """The id of the account a verified token speaks for. Raises Unauthorized if it is gone."""
    user_id: int = token_info["sub"]
    if s.scalar(select(User.id).where(User.id == user_id)) is None:
        raise Unauthorized(INVALID_TOKEN)
    return user_id
