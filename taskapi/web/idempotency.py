"""Running a create under an Idempotency-Key: once, however often the client retries it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import flask
from sqlalchemy import Connection

from taskapi.domain import stored_responses
from taskapi.domain.stored_responses import StoredResponse
from taskapi.web import context

REPLAYED_HEADERS = ("Location", "ETag")


def run(
    operation: str,
    body: Any,
    owner: int,
    work: Callable[[Connection], flask.Response],
    *,
    one_statement: bool = False,
) -> flask.Response:
    """`work(connection)` in one transaction, at most once per Idempotency-Key of `owner`.

    Without a key, `work` that writes with `one_statement` runs as a single write
    (db.Database.single_write): atomic by itself, with no BEGIN and COMMIT round trips.
    """
    db = context.services().db
    key = flask.request.headers.get("Idempotency-Key")
    if key is None:
        with db.single_write() if one_statement else db.transaction() as s:
            return work(s)

    fingerprint = hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    scope = {"operation": operation, "key": key}
    with db.transaction() as s:
        stored = stored_responses.claim(s, user_id=owner, request_hash=fingerprint, **scope)
    if stored is not None:
        return flask.Response(
            stored.body,
            status=stored.status,
            headers={**stored.headers, "Idempotent-Replayed": "true"},
            content_type="application/json",
        )
    try:
        with db.transaction() as s:
            response = work(s)
            # Stored in the same transaction as the work: both happen, or neither.
            stored_responses.complete(s, user_id=owner, response=_storable(response), **scope)
        return response
    except Exception:
        with db.transaction() as s:
            stored_responses.release(s, user_id=owner, **scope)
        raise


def _storable(response: flask.Response) -> StoredResponse:
    headers = {k: response.headers[k] for k in REPLAYED_HEADERS if k in response.headers}
    return StoredResponse(response.status_code, headers, response.get_data(as_text=True))
