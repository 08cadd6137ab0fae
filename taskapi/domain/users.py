"""Accounts: registration, lookup, profile and password changes.

Accounts are read and written as rows of `users` (models.UserView), as tasks are: no ORM object
is worth building for one row that is serialized and dropped.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from taskapi.domain.errors import AccountGone, EmailTaken
from taskapi.storage.rows import UserView
from taskapi.storage.schema import USERS, utcnow


def normalize_email(email: str) -> str:
    """Emails are unique case-insensitively: stored trimmed and lower-cased."""
    return email.strip().lower()


def register(s: Connection, *, email: str, name: str, password_hash: str) -> UserView:
    """Create an account. Raises Conflict if the email is taken, even by a concurrent request."""
    now = utcnow()
    statement = (
        insert(USERS)
        .values(
            email=normalize_email(email),
            name=name,
            password_hash=password_hash,
            created_at=now,
            updated_at=now,
        )
        .returning(*USERS.c)
    )
    try:
        # The unique constraint decides; checking first would race with concurrent sign-ups.
        return s.execute(statement).one()
    except IntegrityError:
        raise EmailTaken() from None


def find_by_email(c: Connection, email: str) -> UserView | None:
    return c.execute(select(*USERS.c).where(USERS.c.email == normalize_email(email))).first()


def lock(s: Connection, user_id: int) -> UserView | None:
    """The account, its row locked until the transaction ends (None if it is gone).

    Everything that issues or revokes an account's refresh tokens takes this lock first, so
    they run one after another. Under READ COMMITTED an UPDATE that revokes a session's
    tokens does not see a token that a concurrent refresh inserts and commits after the
    UPDATE began: without the lock, a refresh racing a logout or a password change kept its
    new token. (FOR NO KEY UPDATE: task inserts, which take a key-share lock on the owner
    through their foreign key, are not held up. SQLite runs one writer at a time anyway.)
    """
    statement = select(*USERS.c).where(USERS.c.id == user_id).with_for_update(key_share=True)
    return s.execute(statement).first()


def get(c: Connection, user_id: int) -> UserView:
    """The account. Raises AccountGone if it was deleted (after its token was checked)."""
    user = c.execute(select(*USERS.c).where(USERS.c.id == user_id)).first()
    if user is None:
        raise AccountGone()
    return user


def rename(s: Connection, user_id: int, *, name: str) -> UserView:
    return _update(s, user_id, name=name)


def set_password(s: Connection, user_id: int, *, password_hash: str) -> UserView:
    """Replace the password; access tokens issued before stop working."""
    return _update(s, user_id, password_hash=password_hash, token_version=USERS.c.token_version + 1)


def _update(s: Connection, user_id: int, **values: Any) -> UserView:
    statement = (
        update(USERS)
        .where(USERS.c.id == user_id)
        .values(**values, updated_at=utcnow())
        .returning(*USERS.c)
    )
    user = s.execute(statement).first()
    if user is None:
        raise AccountGone()
    return user


def remove(s: Connection, user_id: int) -> None:
    """Delete the account; its tasks and tokens go with it (ON DELETE CASCADE)."""
    s.execute(delete(USERS).where(USERS.c.id == user_id))
