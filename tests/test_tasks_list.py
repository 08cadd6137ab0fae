"""GET /api/v1/tasks: filters, pagination, order and meta."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest

from taskapi.domain import listing
from tests.conftest import assert_problem


def list_tasks(api, headers, **params):
    response = api.client.get("/api/v1/tasks", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_no_tasks_is_an_empty_list_not_null(api, auth):
    body = list_tasks(api, auth)
    assert body == {
        "success": True,
        "data": [],
        "meta": {"page": 1, "limit": 20, "total_count": 0, "total_pages": 0, "next_cursor": None},
    }


def test_newest_first_with_id_breaking_ties(api, auth):
    ids = [api.create_task(auth, title=f"t{i}")["id"] for i in range(5)]
    listed = [t["id"] for t in list_tasks(api, auth)["data"]]
    assert listed == sorted(ids, reverse=True)


def test_pages_split_the_set_without_gaps_or_overlap(api, auth):
    ids = [api.create_task(auth, title=f"t{i}")["id"] for i in range(7)]
    pages = [list_tasks(api, auth, page=p, limit=3) for p in (1, 2, 3, 4)]
    metas = [{k: v for k, v in p["meta"].items() if k != "next_cursor"} for p in pages]
    assert metas == [
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
    assert_problem(response, 400, "validation_failed")
    assert response.json()["detail"] == message


def test_last_page_number_far_beyond_the_data_is_empty(api, auth):
    api.create_task(auth)
    body = list_tasks(api, auth, page=1000000, limit=100)
    assert body["data"] == []
    assert body["meta"]["total_count"] == 1


def batch(api, auth, *tasks):
    response = api.client.post("/api/v1/tasks/batch", json={"tasks": list(tasks)}, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()["data"]


def ids(body):
    return [t["id"] for t in body["data"]]


@pytest.mark.parametrize(
    ("sort", "expected_titles"),
    [
        ("priority", ["low", "medium-a", "medium-b", "high"]),
        ("-priority", ["high", "medium-b", "medium-a", "low"]),
        ("title", ["high", "low", "medium-a", "medium-b"]),
        ("-title", ["medium-b", "medium-a", "low", "high"]),
        ("due_date", ["medium-a", "low", "high", "medium-b"]),
        ("-due_date", ["high", "low", "medium-a", "medium-b"]),
    ],
)
def test_sorts(api, auth, sort, expected_titles):
    batch(
        api,
        auth,
        {"title": "medium-a", "priority": "medium", "due_date": "2026-01-01T00:00:00Z"},
        {"title": "high", "priority": "high", "due_date": "2026-03-01T00:00:00Z"},
        {"title": "low", "priority": "low", "due_date": "2026-02-01T00:00:00Z"},
        {"title": "medium-b", "priority": "medium"},
    )
    body = list_tasks(api, auth, sort=sort)
    assert [t["title"] for t in body["data"]] == expected_titles


def test_title_sorts_by_code_point_on_every_database(api, auth):
    batch(api, auth, {"title": "b"}, {"title": "B"}, {"title": "á"}, {"title": "a"})
    body = list_tasks(api, auth, sort="title")
    assert [t["title"] for t in body["data"]] == ["B", "a", "b", "á"]


def test_updated_at_sort_follows_writes(api, auth):
    first, second = (api.create_task(auth, title=t) for t in ("first", "second"))
    api.client.patch(f"/api/v1/tasks/{first['id']}", json={"status": "completed"}, headers=auth)
    assert ids(list_tasks(api, auth, sort="-updated_at")) == [first["id"], second["id"]]
    assert ids(list_tasks(api, auth, sort="updated_at")) == [second["id"], first["id"]]


def test_q_matches_title_or_description_ignoring_case(api, auth):
    batch(
        api,
        auth,
        {"title": "Quarterly REPORT"},
        {"title": "other", "description": "see the report draft"},
        {"title": "ÉTÉ plans"},
        {"title": "unrelated"},
    )
    assert len(list_tasks(api, auth, q="report")["data"]) == 2
    assert [t["title"] for t in list_tasks(api, auth, q="été")["data"]] == ["ÉTÉ plans"]
    assert list_tasks(api, auth, q="report")["meta"]["total_count"] == 2


def test_q_treats_like_wildcards_literally(api, auth):
    batch(
        api,
        auth,
        {"title": "100% done"},
        {"title": "1000 done"},
        {"title": "a_b"},
        {"title": "axb"},
    )
    assert [t["title"] for t in list_tasks(api, auth, q="0%")["data"]] == ["100% done"]
    assert [t["title"] for t in list_tasks(api, auth, q="a_b")["data"]] == ["a_b"]


def test_date_ranges_are_half_open(api, auth):
    batch(
        api,
        auth,
        {"title": "jan", "due_date": "2026-01-01T00:00:00Z"},
        {"title": "feb", "due_date": "2026-02-01T00:00:00Z"},
        {"title": "none"},
    )
    inside = list_tasks(
        api, auth, due_after="2026-01-01T00:00:00Z", due_before="2026-02-01T00:00:00Z"
    )
    assert [t["title"] for t in inside["data"]] == ["jan"]
    # An offset is honoured: 01:00+01:00 is midnight UTC.
    assert len(list_tasks(api, auth, due_after="2026-02-01T01:00:00+01:00")["data"]) == 1
    everything = list_tasks(api, auth, created_after="2000-01-01T00:00:00Z")
    assert everything["meta"]["total_count"] == 3
    assert list_tasks(api, auth, created_before="2000-01-01T00:00:00Z")["data"] == []


def test_filters_reject_dates_without_a_zone(api, auth):
    response = api.client.get(
        "/api/v1/tasks", params={"due_before": "2026-01-01T00:00:00"}, headers=auth
    )
    assert_problem(response, 400, "validation_failed")
    assert response.json()["errors"][0]["field"] == "due_before"


def parse_links(header):
    links = {}
    for part in header.split(", "):
        target, rel = part.split("; ")
        links[rel.removeprefix('rel="').removesuffix('"')] = target.strip("<>")
    return links


def test_link_header_names_the_neighbouring_pages(api, auth):
    batch(api, auth, *({"title": f"t{i}", "priority": "high"} for i in range(7)))
    response = api.client.get(
        "/api/v1/tasks", params={"page": 2, "limit": 3, "priority": "high"}, headers=auth
    )
    links = parse_links(response.headers["link"])
    assert set(links) == {"first", "prev", "next", "last"}
    assert links["first"] == "/api/v1/tasks?limit=3&priority=high&page=1"
    assert links["prev"].endswith("page=1")
    assert links["next"].endswith("page=3")
    assert links["last"].endswith("page=3")
    following = api.client.get(links["next"], headers=auth).json()
    assert following["meta"]["page"] == 3
    assert len(following["data"]) == 1


def test_link_header_on_the_first_and_only_page(api, auth):
    links = parse_links(api.client.get("/api/v1/tasks", headers=auth).headers["link"])
    assert set(links) == {"first", "last"}


@pytest.mark.parametrize("sort", ["-created_at", "created_at", "priority", "-due_date", "title"])
def test_a_cursor_walk_sees_every_task_once_in_order(api, auth, sort):
    # Batches share a created_at, so ties must be broken by id for the walk to be exact.
    for n in range(3):
        batch(
            api,
            auth,
            *(
                {
                    "title": f"task {n}-{i}",
                    "priority": ("low", "medium", "high")[i % 3],
                    **({"due_date": f"2026-0{1 + i % 3}-01T00:00:00Z"} if i % 2 else {}),
                }
                for i in range(5)
            ),
        )
    everything = ids(list_tasks(api, auth, sort=sort, limit=100))
    assert len(everything) == 15
    walked, cursor = [], None
    while True:
        params = {"sort": sort, "limit": 4, **({"cursor": cursor} if cursor else {})}
        body = list_tasks(api, auth, **params)
        walked += ids(body)
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            break
        assert "total_count" not in list_tasks(api, auth, cursor=cursor)["meta"]
    assert walked == everything


def test_cursor_pages_link_to_the_next_one(api, auth):
    batch(api, auth, *({"title": f"t{i}"} for i in range(5)))
    first = api.client.get("/api/v1/tasks", params={"limit": 2}, headers=auth)
    cursor = first.json()["meta"]["next_cursor"]
    second = api.client.get("/api/v1/tasks", params={"limit": 2, "cursor": cursor}, headers=auth)
    links = parse_links(second.headers["link"])
    assert set(links) == {"first", "next"}
    third = api.client.get(links["next"], headers=auth).json()
    assert len(third["data"]) == 1
    assert third["meta"]["next_cursor"] is None


def test_a_cursor_keeps_its_own_order(api, auth):
    batch(api, auth, *({"title": f"t{i}"} for i in range(4)))
    cursor = list_tasks(api, auth, sort="title", limit=2)["meta"]["next_cursor"]
    body = list_tasks(api, auth, sort="-created_at", cursor=cursor, limit=2)
    assert [t["title"] for t in body["data"]] == ["t2", "t3"]


@pytest.mark.parametrize(
    "cursor",
    ["garbage", "eyJ2IjoyfQ", "eyJ2IjoxLCJzIjoiLWNyZWF0ZWRfYXQiLCJrIjoibm9wZSIsImkiOjF9"],
)
def test_a_cursor_the_api_did_not_issue_is_400(api, auth, cursor):
    response = api.client.get("/api/v1/tasks", params={"cursor": cursor}, headers=auth)
    assert_problem(response, 400, "validation_failed")
    assert response.json()["detail"] == "cursor: is not a cursor this API issued"


def forged_cursor(sort, key, last_id=1):
    """A cursor as the API encodes one, with a key of the forger's choosing."""
    raw = json.dumps({"v": 1, "s": sort, "k": key, "i": last_id}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        ("title", "\ud800"),
        ("title", "a\u0000b"),
        ("title", "t" * 201),
        ("-created_at", "2026-01-01T00:00:00\u0000Z"),
        ("-created_at", "\udfff"),
        ("due_date", "2026-01-01T00:00:00"),
        ("priority", 7),
    ],
)
def test_a_forged_cursor_key_is_400_on_both_databases(api, auth, sort, key):
    """A cursor's decoded values are checked as strictly as the parameters they stand for."""
    api.create_task(auth)
    cursor = forged_cursor(sort, key)
    response = api.client.get("/api/v1/tasks", params={"cursor": cursor}, headers=auth)
    assert_problem(response, 400, "validation_failed")
    assert response.json()["detail"] == "cursor: is not a cursor this API issued"


def test_a_cursor_only_walks_the_callers_tasks(api, auth):
    other = api.user()
    batch(api, other, *({"title": f"theirs {i}"} for i in range(3)))
    batch(api, auth, *({"title": f"mine {i}"} for i in range(3)))
    cursor = list_tasks(api, auth, limit=1)["meta"]["next_cursor"]
    body = list_tasks(api, auth, cursor=cursor, limit=100)
    assert all(t["title"].startswith("mine") for t in body["data"])


def test_every_filter_of_a_list_query_has_its_condition():
    filters = {f.name for f in dataclasses.fields(listing.ListQuery)} - listing.PAGING
    assert set(listing._FILTERS) == filters
