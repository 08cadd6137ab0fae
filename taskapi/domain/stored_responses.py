"""Idempotency keys: a retried request replays the first one's response instead of repeating it.

Follows the IETF draft "The Idempotency-Key HTTP Header Field" (and Stripe's API): keys belong
to one user and one operation and live for 24 hours; the same key with another body is a 422;
a retry while the first request still runs is a 409.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from taskapi.domain.errors import IdempotencyKeyInUse, IdempotencyKeyReused
from taskapi.storage.schema import IDEMPOTENCY_KEYS, utcnow

KEY_LIFETIME = timedelta(hours=24)
# A request that held its key this long without finishing died with its process.
STALE_LOCK = timedelta(seconds=60)


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: dict[str, str]
    body: str


def claim(
    s: Connection, *, user_id: int, operation: str, key: str, request_hash: str
) -> StoredResponse | None:
    """Reserve `key` for a new request (None), or return the response already stored for it.

    Raises Unprocessable for a different body and Conflict while the first one runs. The
    caller commits the reservation before doing the work.
    """
    now = utcnow()
    this_key = _key_is(user_id, operation, key)
    row = s.execute(select(IDEMPOTENCY_KEYS).where(*this_key).with_for_update()).first()
    if row is not None and row.expires_at > now:
        if row.request_hash != request_hash:
            raise IdempotencyKeyReused()
        if row.response_status is not None:
            return StoredResponse(
                row.response_status,
                json.loads(row.response_headers or "{}"),
                row.response_body or "",
            )
        if row.locked_at is not None and row.locked_at > now - STALE_LOCK:
            raise IdempotencyKeyInUse()
    if row is not None:
        # Expired, or abandoned mid-request: start afresh.
        s.execute(delete(IDEMPOTENCY_KEYS).where(*this_key))
    # Expired keys are dead weight; clear the user's while we are here.
    s.execute(
        delete(IDEMPOTENCY_KEYS).where(
            IDEMPOTENCY_KEYS.c.user_id == user_id, IDEMPOTENCY_KEYS.c.expires_at <= now
        )
    )
    try:
        s.execute(
            insert(IDEMPOTENCY_KEYS).values(
                user_id=user_id,
                operation=operation,
                key=key,
                request_hash=request_hash,
                locked_at=now,
                expires_at=now + KEY_LIFETIME,
            )
        )
    except IntegrityError:
        # A concurrent request with the same key reserved it between our read and insert.
        raise IdempotencyKeyInUse() from None
    return None


def complete(
    s: Connection, *, user_id: int, operation: str, key: str, response: StoredResponse
) -> None:
    """Store the response of the request that holds `key`, in the transaction of its work."""
    s.execute(
        update(IDEMPOTENCY_KEYS)
        .where(*_key_is(user_id, operation, key))
        .values(
            locked_at=None,
            response_status=response.status,
            response_headers=json.dumps(response.headers),
            response_body=response.body,
        )
    )


def release(s: Connection, *, user_id: int, operation: str, key: str) -> None:
    """Give up a reservation whose request failed, so a retry can run it again."""
    s.execute(
        delete(IDEMPOTENCY_KEYS).where(
            *_key_is(user_id, operation, key), IDEMPOTENCY_KEYS.c.response_status.is_(None)
        )
    )


def _key_is(user_id: int, operation: str, key: str) -> tuple[ColumnElement[bool], ...]:
    """The row of one Idempotency-Key: its owner, operation and key."""
    return (
        IDEMPOTENCY_KEYS.c.user_id == user_id,
        IDEMPOTENCY_KEYS.c.operation == operation,
        IDEMPOTENCY_KEYS.c.key == key,
    )
