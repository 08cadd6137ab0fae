"""Task CRUD: /api/v1/tasks and /api/v1/tasks/{id}."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.conftest import assert_problem

TASK_FIELDS = {
    "id",
    "user_id",
    "title",
    "description",
    "status",
    "priority",
    "due_date",
    "created_at",
    "updated_at",
}


def test_create_returns_the_task_with_defaults_and_a_location(api, auth):
    response = api.client.post("/api/v1/tasks", json={"title": "Buy milk"}, headers=auth)
    assert response.status_code == 201
    task = response.json()["data"]
    assert set(task) == TASK_FIELDS
    assert task["title"] == "Buy milk"
    assert task["description"] == ""
    assert task["status"] == "pending"
    assert task["priority"] == "medium"
    assert task["due_date"] is None
    assert task["created_at"] == task["updated_at"]
    assert response.headers["location"] == f"/api/v1/tasks/{task['id']}"


def test_create_stores_every_field(api, auth):
    body = {
        "title": "Report",
        "description": "Q3 figures",
        "status": "in_progress",
        "priority": "high",
        "due_date": "2026-02-01T17:00:00+02:00",
    }
    created = api.create_task(auth, **body)
    fetched = api.client.get(f"/api/v1/tasks/{created['id']}", headers=auth).json()["data"]
    assert fetched == created
    assert fetched["due_date"] == "2026-02-01T15:00:00Z"


def test_due_date_keeps_microseconds_and_is_returned_in_utc(api, auth):
    task = api.create_task(auth, due_date="2026-02-01T17:00:00.123456789-05:30")
    assert task["due_date"] == "2026-02-01T22:30:00.123456Z"


def test_title_counts_characters_not_bytes(api, auth):
    assert api.create_task(auth, title="😀" * 200)["title"] == "😀" * 200
    response = api.client.post("/api/v1/tasks", json={"title": "😀" * 201}, headers=auth)
    assert_problem(response, 400, "validation_failed")
    assert response.json()["detail"] == "title: at most 200 characters"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "title: is required"),
        ({"title": ""}, "title: must not be empty"),
        ({"title": None}, "title: must be a string"),
        (
            {"title": "x", "status": "done"},
            "status: must be one of pending, in_progress, completed",
        ),
        ({"title": "x", "priority": "urgent"}, "priority: must be one of low, medium, high"),
        (
            {"title": "x", "due_date": "2026-02-01T17:00:00"},
            "due_date: must be an RFC 3339 date-time with a time zone, like 2025-12-31T17:00:00Z",
        ),
        (
            {"title": "x", "due_date": "tomorrow"},
            "due_date: must be an RFC 3339 date-time with a time zone, like 2025-12-31T17:00:00Z",
        ),
        ({"title": "x", "description": 5}, "description: must be a string"),
    ],
)
def test_invalid_task_bodies_are_400_with_the_rule(api, auth, body, message):
    response = api.client.post("/api/v1/tasks", json=body, headers=auth)
    assert_problem(response, 400, "validation_failed")
    assert response.json()["detail"] == message


def test_read_only_fields_in_the_body_are_ignored(api, auth):
    body = {
        "title": "Mine",
        "id": 999,
        "user_id": 12345,
        "created_at": "2000-01-01T00:00:00Z",
        "updated_at": "2000-01-01T00:00:00Z",
    }
    task = api.client.post("/api/v1/tasks", json=body, headers=auth).json()["data"]
    assert task["id"] != 999
    assert task["user_id"] != 12345
    assert not task["created_at"].startswith("2000")
    updated = api.client.put(f"/api/v1/tasks/{task['id']}", json=body, headers=auth).json()["data"]
    assert updated["id"] == task["id"]
    assert updated["user_id"] == task["user_id"]
    assert updated["created_at"] == task["created_at"]


def test_put_replaces_writable_fields_and_bumps_updated_at(api, auth):
    task = api.create_task(
        auth, description="old", priority="high", due_date="2026-01-01T00:00:00Z"
    )
    response = api.client.put(
        f"/api/v1/tasks/{task['id']}", json={"title": "New", "status": "completed"}, headers=auth
    )
    assert response.status_code == 200
    updated = response.json()["data"]
    assert updated["title"] == "New"
    assert updated["status"] == "completed"
    # Omitted fields take their defaults: PUT replaces, it does not merge.
    assert updated["description"] == ""
    assert updated["priority"] == "medium"
    assert updated["due_date"] is None
    assert updated["created_at"] == task["created_at"]
    assert datetime.fromisoformat(updated["updated_at"]) > datetime.fromisoformat(
        task["updated_at"]
    )
    fetched = api.client.get(f"/api/v1/tasks/{task['id']}", headers=auth).json()["data"]
    assert fetched == updated


def test_put_validates_like_create_and_changes_nothing_on_error(api, auth):
    task = api.create_task(auth, title="Keep")
    response = api.client.put(f"/api/v1/tasks/{task['id']}", json={"title": ""}, headers=auth)
    assert_problem(response, 400, "validation_failed")
    fetched = api.client.get(f"/api/v1/tasks/{task['id']}", headers=auth).json()["data"]
    assert fetched == task


def test_delete_removes_the_task(api, auth):
    task = api.create_task(auth)
    url = f"/api/v1/tasks/{task['id']}"
    response = api.client.delete(url, headers=auth)
    assert response.status_code == 200
    assert response.json() == {"success": True, "data": "Task deleted successfully"}
    assert_problem(api.client.get(url, headers=auth), 404, "task_not_found")
    assert_problem(api.client.delete(url, headers=auth), 404, "task_not_found")


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_missing_task_is_404(api, auth, method):
    response = api.client.request(method, "/api/v1/tasks/424242", json={"title": "x"}, headers=auth)
    assert_problem(response, 404, "task_not_found")
    assert response.json()["detail"] == "Task not found"


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_another_users_task_is_not_found_and_untouched(api, auth, method):
    owner = api.user()
    task = api.create_task(owner, title="Private")
    missing = api.client.request(method, "/api/v1/tasks/424242", json={"title": "x"}, headers=auth)
    response = api.client.request(
        method, f"/api/v1/tasks/{task['id']}", json={"title": "Hijacked"}, headers=auth
    )
    assert_problem(response, 404, "task_not_found")
    # Same answer as for an id that never existed: no existence oracle.
    assert response.json() == missing.json()
    assert "Private" not in response.text
    fetched = api.client.get(f"/api/v1/tasks/{task['id']}", headers=owner).json()["data"]
    assert fetched == task


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/tasks/abc", 404),
        ("/api/v1/tasks/1.5", 404),
        ("/api/v1/tasks/0", 400),
        ("/api/v1/tasks/-1", 400),
        ("/api/v1/tasks/9223372036854775807", 404),
        ("/api/v1/tasks/9223372036854775808", 400),
        ("/api/v1/tasks/99999999999999999999", 400),
    ],
)
def test_odd_ids_are_4xx(api, auth, path, status):
    for method in ("get", "put", "delete"):
        response = api.client.request(method, path, json={"title": "x"}, headers=auth)
        assert_problem(response, status)


@pytest.mark.parametrize("content_type", ["application/merge-patch+json", "application/json"])
def test_patch_changes_only_the_fields_sent(api, auth, content_type):
    task = api.create_task(
        auth, description="keep", priority="high", due_date="2026-01-01T00:00:00Z"
    )
    response = api.client.patch(
        f"/api/v1/tasks/{task['id']}",
        content=b'{"status": "completed"}',
        headers={**auth, "Content-Type": content_type},
    )
    assert response.status_code == 200
    patched = response.json()["data"]
    assert patched["status"] == "completed"
    assert {k: patched[k] for k in ("title", "description", "priority", "due_date")} == {
        k: task[k] for k in ("title", "description", "priority", "due_date")
    }
    assert patched["updated_at"] > task["updated_at"]


def test_patch_null_clears_the_due_date(api, auth):
    task = api.create_task(auth, due_date="2026-01-01T00:00:00Z")
    patched = api.client.patch(f"/api/v1/tasks/{task['id']}", json={"due_date": None}, headers=auth)
    assert patched.json()["data"]["due_date"] is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"title": None}, "title: must be a string"),
        ({"title": ""}, "title: must not be empty"),
        ({"status": "done"}, "status: must be one of pending, in_progress, completed"),
        (
            {"due_date": "tomorrow"},
            "due_date: must be an RFC 3339 date-time with a time zone, like 2025-12-31T17:00:00Z",
        ),
    ],
)
def test_patch_validates_like_put(api, auth, body, message):
    task = api.create_task(auth)
    response = api.client.patch(f"/api/v1/tasks/{task['id']}", json=body, headers=auth)
    assert_problem(response, 400, "validation_failed")
    assert response.json()["detail"] == message


def test_an_empty_patch_changes_nothing(api, auth):
    task = api.create_task(auth)
    response = api.client.patch(f"/api/v1/tasks/{task['id']}", json={}, headers=auth)
    assert response.status_code == 200
    assert response.json()["data"] == task


def test_patch_ignores_read_only_fields(api, auth):
    task = api.create_task(auth)
    body = {"id": 999, "user_id": 999, "created_at": "2000-01-01T00:00:00Z", "title": "new"}
    patched = api.client.patch(f"/api/v1/tasks/{task['id']}", json=body, headers=auth).json()[
        "data"
    ]
    assert (patched["id"], patched["user_id"], patched["created_at"]) == (
        task["id"],
        task["user_id"],
        task["created_at"],
    )


def test_patch_of_another_users_task_is_404(api, auth):
    owner = api.user()
    task = api.create_task(owner)
    response = api.client.patch(f"/api/v1/tasks/{task['id']}", json={"title": "x"}, headers=auth)
    assert_problem(response, 404, "task_not_found")
    fetched = api.client.get(f"/api/v1/tasks/{task['id']}", headers=owner).json()["data"]
    assert fetched == task


def test_batch_creates_all_in_order(api, auth):
    body = {"tasks": [{"title": "one", "priority": "high"}, {"title": "two"}, {"title": "three"}]}
    response = api.client.post("/api/v1/tasks/batch", json=body, headers=auth)
    assert response.status_code == 201
    created = response.json()["data"]
    assert [t["title"] for t in created] == ["one", "two", "three"]
    assert created[0]["priority"] == "high"
    assert created[1]["status"] == "pending"
    listed = api.client.get("/api/v1/tasks", headers=auth).json()
    assert listed["meta"]["total_count"] == 3


def test_batch_is_all_or_nothing_with_errors_by_index(api, auth):
    body = {"tasks": [{"title": "fine"}, {"title": ""}, {"title": "x", "status": "done"}]}
    response = api.client.post("/api/v1/tasks/batch", json=body, headers=auth)
    assert_problem(response, 400, "validation_failed")
    assert response.json()["errors"] == [
        {"field": "tasks[1].title", "message": "must not be empty"},
        {"field": "tasks[2].status", "message": "must be one of pending, in_progress, completed"},
    ]
    assert api.client.get("/api/v1/tasks", headers=auth).json()["meta"]["total_count"] == 0


@pytest.mark.parametrize(("count", "status"), [(0, 400), (100, 201), (101, 400)])
def test_batch_takes_1_to_100_tasks(api, auth, count, status):
    body = {"tasks": [{"title": f"t{i}"} for i in range(count)]}
    response = api.client.post("/api/v1/tasks/batch", json=body, headers=auth)
    assert response.status_code == status
    created = response.json()["data"] if status == 201 else []
    assert [t["title"] for t in created] == [f"t{i}" for i in range(len(created))]
    listed = api.client.get("/api/v1/tasks", headers=auth).json()["meta"]["total_count"]
    assert listed == len(created)


def test_stats_count_your_tasks_by_status_and_priority(api, auth):
    api.create_task(auth, status="completed", priority="high")
    api.create_task(auth, status="pending", priority="high")
    api.create_task(auth, status="pending", priority="low")
    api.create_task(api.user(), status="in_progress")  # someone else's
    response = api.client.get("/api/v1/tasks/stats", headers=auth)
    assert response.json() == {
        "success": True,
        "data": {
            "total": 3,
            "by_status": {"pending": 2, "in_progress": 0, "completed": 1},
            "by_priority": {"low": 1, "medium": 0, "high": 2},
            "overdue": 0,
        },
    }


def test_overdue_means_due_before_now_and_not_completed(api, auth):
    api.create_task(auth, due_date="2020-01-01T00:00:00Z")
    api.create_task(auth, due_date="2020-01-01T00:00:00Z", status="in_progress")
    api.create_task(auth, due_date="2020-01-01T00:00:00Z", status="completed")
    api.create_task(auth, due_date="2999-01-01T00:00:00Z")
    api.create_task(auth)  # no due date
    data = api.client.get("/api/v1/tasks/stats", headers=auth).json()["data"]
    assert (data["total"], data["overdue"]) == (5, 2)


def test_stats_of_nothing_are_zeros_and_need_a_token(api, auth):
    data = api.client.get("/api/v1/tasks/stats", headers=auth).json()["data"]
    assert data["total"] == data["overdue"] == 0
    assert set(data["by_status"].values()) == set(data["by_priority"].values()) == {0}
    assert_problem(api.client.get("/api/v1/tasks/stats"), 401, "authentication_required")
