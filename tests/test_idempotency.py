"""Idempotency-Key on POST /api/v1/tasks and /api/v1/tasks/batch."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from tests.conftest import assert_problem


def post(api, auth, body, key, path="/api/v1/tasks"):
    return api.client.post(path, json=body, headers={**auth, "Idempotency-Key": key})


def task_count(api, auth):
    return api.client.get("/api/v1/tasks", headers=auth).json()["meta"]["total_count"]


def test_a_retry_replays_the_first_response_and_creates_nothing(api, auth):
    first = post(api, auth, {"title": "once"}, "key-1")
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    retry = post(api, auth, {"title": "once"}, "key-1")
    assert retry.status_code == 201
    assert retry.content == first.content
    assert retry.headers["location"] == first.headers["location"]
    assert retry.headers["etag"] == first.headers["etag"]
    assert retry.headers["idempotent-replayed"] == "true"
    assert task_count(api, auth) == 1


def test_the_same_key_with_another_body_is_422(api, auth):
    post(api, auth, {"title": "once"}, "key-1")
    response = post(api, auth, {"title": "different"}, "key-1")
    assert_problem(response, 422, "idempotency_key_reused")
    assert (
        response.json()["detail"] == "This Idempotency-Key was used with a different request body"
    )
    assert task_count(api, auth) == 1


def test_defaults_do_not_make_a_body_different(api, auth):
    post(api, auth, {"title": "once"}, "key-1")
    same = post(api, auth, {"title": "once", "status": "pending", "priority": "medium"}, "key-1")
    assert same.status_code == 201
    assert same.headers["idempotent-replayed"] == "true"


def test_keys_belong_to_one_user(api, auth):
    other = api.user()
    mine = post(api, auth, {"title": "same"}, "shared-key")
    theirs = post(api, other, {"title": "same"}, "shared-key")
    assert theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert theirs.json()["data"]["id"] != mine.json()["data"]["id"]
    assert theirs.json()["data"]["user_id"] != mine.json()["data"]["user_id"]


def test_keys_belong_to_one_operation(api, auth):
    post(api, auth, {"title": "single"}, "key-1")
    batch = post(api, auth, {"tasks": [{"title": "batch"}]}, "key-1", "/api/v1/tasks/batch")
    assert batch.status_code == 201
    assert "idempotent-replayed" not in batch.headers


def test_an_invalid_request_does_not_use_up_the_key(api, auth):
    assert_problem(post(api, auth, {"title": ""}, "key-1"), 400, "validation_failed")
    created = post(api, auth, {"title": "fixed"}, "key-1")
    assert created.status_code == 201
    assert "idempotent-replayed" not in created.headers
    assert created.json()["data"]["title"] == "fixed"


def test_a_failed_request_releases_the_key(api, auth, monkeypatch):
    import taskapi.domain.tasks

    real = taskapi.domain.tasks.create_many

    def fail_once(*args, **kwargs):
        monkeypatch.setattr(taskapi.domain.tasks, "create_many", real)
        raise RuntimeError("crash mid-request")

    monkeypatch.setattr(taskapi.domain.tasks, "create_many", fail_once)
    assert_problem(post(api, auth, {"title": "x"}, "key-1"), 500, "internal_error")
    retry = post(api, auth, {"title": "x"}, "key-1")
    assert retry.status_code == 201
    assert "idempotent-replayed" not in retry.headers
    assert task_count(api, auth) == 1


def test_a_request_still_in_flight_is_409(api, services, auth):
    post(api, auth, {"title": "x"}, "key-1")
    engine = services.db.engine
    with engine.begin() as conn:  # as if the first request were still running
        conn.execute(
            sa.text(
                "UPDATE idempotency_keys SET response_status = NULL, response_body = NULL, "
                "locked_at = expires_at"
            )
        )
    response = post(api, auth, {"title": "x"}, "key-1")
    assert_problem(response, 409, "idempotency_key_in_use")
    assert "still in progress" in response.json()["detail"]


def test_an_abandoned_lock_is_taken_over(api, services, auth):
    post(api, auth, {"title": "x"}, "key-1")
    engine = services.db.engine
    with engine.begin() as conn:  # the first request died with its process long ago
        conn.execute(
            sa.text(
                "UPDATE idempotency_keys SET response_status = NULL, response_body = NULL, "
                "locked_at = :long_ago"
            ),
            {"long_ago": "2000-01-01 00:00:00"},
        )
    retried = post(api, auth, {"title": "x"}, "key-1")
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers  # run again, not replayed
    assert api.client.get("/api/v1/tasks", headers=auth).json()["meta"]["total_count"] == 2


def test_keys_expire_after_24_hours(api, services, auth):
    post(api, auth, {"title": "x"}, "key-1")
    engine = services.db.engine
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE idempotency_keys SET expires_at = :past"),
            {"past": "2000-01-01 00:00:00"},
        )
    again = post(api, auth, {"title": "x"}, "key-1")
    assert again.status_code == 201
    assert "idempotent-replayed" not in again.headers
    assert task_count(api, auth) == 2


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_empty_or_over_long_keys_are_400(api, auth, key):
    response = post(api, auth, {"title": "x"}, key)
    assert_problem(response, 400, "validation_failed")
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"


def test_concurrent_retries_create_exactly_one_task(api, auth):
    def attempt(_):
        return post(api, auth, {"title": "racy"}, "race-key").status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(attempt, range(20)))
    assert set(statuses) <= {201, 409}
    assert 201 in statuses
    assert task_count(api, auth) == 1
