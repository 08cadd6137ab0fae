"""GET /api/v1/tasks: filters, pagination, order and meta."""

from __future__ import annotations

import pytest


def list_tasks(api, headers, **params):
    response = api.client.get("/api/v1/tasks", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_no_tasks_is_an_empty_list_not_null(api, auth):
    body = list_tasks(api, auth)
    assert body == {
        "success": True,
        "data": [],
        "meta": {"page": 1, "limit": 20, "total_count": 0, "total_pages": 0},
    }


def test_newest_first_with_id_breaking_ties(api, auth):
    ids = [api.create_task(auth, title=f"t{i}")["id"] for i in range(5)]
    listed = [t["id"] for t in list_tasks(api, auth)["data"]]
    assert listed == sorted(ids, reverse=True)


def test_pages_split_the_set_without_gaps_or_overlap(api, auth):
    ids = [api.create_task(auth, title=f"t{i}")["id"] for i in range(7)]
    pages = [list_tasks(api, auth, page=p, limit=3) for p in (1, 2, 3, 4)]
    assert [p["meta"] for p in pages] == [
        {"page": p, "limit": 3, "total_count": 7, "total_pages": 3} for p in (1, 2, 3, 4)
    ]
    seen = [t["id"] for p in pages for t in p["data"]]
    assert seen == sorted(ids, reverse=True)
    assert pages[3]["data"] == []


def test_filters_combine_and_total_counts_the_filtered_set(api, auth):
    api.create_task(auth, status="pending", priority="high")
    api.create_task(auth, status="pending", priority="low")
    api.create_task(auth, status="completed", priority="high")
    assert list_tasks(api, auth, status="pending")["meta"]["total_count"] == 2
    assert list_tasks(api, auth, priority="high")["meta"]["total_count"] == 2
    both = list_tasks(api, auth, status="pending", priority="high")
    assert both["meta"]["total_count"] == 1
    assert [(t["status"], t["priority"]) for t in both["data"]] == [("pending", "high")]


def test_lists_only_the_callers_tasks(api, auth):
    other = api.user()
    api.create_task(other, title="theirs")
    mine = api.create_task(auth, title="mine")
    body = list_tasks(api, auth)
    assert [t["id"] for t in body["data"]] == [mine["id"]]
    assert body["meta"]["total_count"] == 1


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"page": 0}, "page: must be at least 1"),
        ({"page": -1}, "page: must be at least 1"),
        ({"page": 99999999999999999999}, "page: must be at most 1000000"),
        ({"limit": 0}, "limit: must be at least 1"),
        ({"limit": 101}, "limit: must be at most 100"),
        ({"limit": "1e3"}, "limit: must be an integer"),
        ({"page": "abc"}, "page: must be an integer"),
        ({"status": "done"}, "status: must be one of pending, in_progress, completed"),
        ({"priority": "urgent"}, "priority: must be one of low, medium, high"),
        ({"user_id": 1}, "user_id: is not a parameter of this operation"),
    ],
)
def test_bad_query_parameters_are_400(api, auth, params, message):
    response = api.client.get("/api/v1/tasks", params=params, headers=auth)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == message


def test_last_page_number_far_beyond_the_data_is_empty(api, auth):
    api.create_task(auth)
    body = list_tasks(api, auth, page=1000000, limit=100)
    assert body["data"] == []
    assert body["meta"]["total_count"] == 1
