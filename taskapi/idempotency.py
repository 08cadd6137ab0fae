"""Idempotency keys: a retried request replays the first one's response instead of repeating it.

Follows the IETF draft "The Idempotency-Key HTTP Header Field" (and Stripe's API): keys belong
to one user and one operation and live for 24 hours; the same key with another body is a 422;
a retry while the first request still runs is a 409.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from taskapi.errors import IdempotencyKeyInUse, IdempotencyKeyReused
from taskapi.models import IdempotencyKey, utcnow

KEY_LIFETIME = timedelta(hours=24)
# A request that held its key this long without finishing died with its process.
STALE_LOCK = timedelta(seconds=60)


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: dict[str, str]
    body: str


def claim(
    s: Session, *, user_id: int, operation: str, key: str, request_hash: str
) -> StoredResponse | None:
    """Reserve `key` for a new request (None), or return the response already stored for it.

    Raises Unprocessable for a different body and Conflict while the first one runs. The
    caller commits the reservation before doing the work.
    """
    now = utcnow()
    row = s.scalar(
        select(IdempotencyKey)
        .where(
            IdempotencyKey.user_id == user_id,
            IdempotencyKey.operation == operation,
            IdempotencyKey.key == key,
        )
        .with_for_update()
    )
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
        s.delete(row)  # expired, or abandoned mid-request: start afresh
        s.flush()
    # Expired keys are dead weight; clear the user's while we are here.
    s.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.user_id == user_id, IdempotencyKey.expires_at <= now
        )
    )
    s.add(
        IdempotencyKey(
            user_id=user_id,
            operation=operation,
            key=key,
            request_hash=request_hash,
            locked_at=now,
            expires_at=now + KEY_LIFETIME,
        )
    )
    try:
        s.flush()
    except IntegrityError:
        # A concurrent request with the same key reserved it between our read and insert.
        raise IdempotencyKeyInUse() from None
    return None


def complete(
    s: Session, *, user_id: int, operation: str, key: str, response: StoredResponse
) -> None:
    """Store the response of the request that holds `key`, in the transaction of its work."""
    s.execute(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.user_id == user_id,
            IdempotencyKey.operation == operation,
            IdempotencyKey.key == key,
        )
        .values(
            locked_at=None,
            response_status=response.status,
            response_headers=json.dumps(response.headers),
            response_body=response.body,
        )
        .execution_options(synchronize_session=False)
    )


def release(s: Session, *, user_id: int, operation: str, key: str) -> None:
    """Give up a reservation whose request failed, so a retry can run it again."""
    s.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.user_id == user_id,
            IdempotencyKey.operation == operation,
            IdempotencyKey.key == key,
            IdempotencyKey.response_status.is_(None),
        )
    )
