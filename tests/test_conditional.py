"""ETags and conditional requests on tasks: If-None-Match, If-Match, and lost-update safety."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import assert_problem


def get(api, auth, task_id, **headers):
    return api.client.get(f"/api/v1/tasks/{task_id}", headers={**auth, **headers})


def test_every_task_response_carries_a_strong_etag(api, auth):
    created = api.client.post("/api/v1/tasks", json={"title": "a"}, headers=auth)
    tag = created.headers["etag"]
    assert tag.startswith('"')
    assert not tag.startswith("W/")
    fetched = get(api, auth, created.json()["data"]["id"])
    assert fetched.headers["etag"] == tag
    # Never stored by a browser or a proxy; clients that keep a copy revalidate it themselves.
    assert fetched.headers["cache-control"] == "no-store"


def test_every_write_changes_the_etag(api, auth):
    task = api.create_task(auth)
    tags = {get(api, auth, task["id"]).headers["etag"]}
    put = api.client.put(f"/api/v1/tasks/{task['id']}", json={"title": "b"}, headers=auth)
    tags.add(put.headers["etag"])
    patched = api.client.patch(f"/api/v1/tasks/{task['id']}", json={"title": "c"}, headers=auth)
    tags.add(patched.headers["etag"])
    assert len(tags) == 3
    assert get(api, auth, task["id"]).headers["etag"] == patched.headers["etag"]


def test_if_none_match_with_the_current_etag_is_304(api, auth):
    task = api.create_task(auth)
    tag = get(api, auth, task["id"]).headers["etag"]
    for value in (tag, f"W/{tag}", f'"other", {tag}', "*"):
        response = get(api, auth, task["id"], **{"If-None-Match": value})
        assert response.status_code == 304, value
        assert response.content == b""
        assert response.headers["etag"] == tag


def test_if_none_match_with_an_old_etag_is_200(api, auth):
    task = api.create_task(auth)
    old = get(api, auth, task["id"]).headers["etag"]
    api.client.put(f"/api/v1/tasks/{task['id']}", json={"title": "changed"}, headers=auth)
    response = get(api, auth, task["id"], **{"If-None-Match": old})
    assert response.status_code == 200
    assert response.json()["data"]["title"] == "changed"


def test_another_users_task_is_404_even_with_its_etag(api, auth):
    owner = api.user()
    task = api.create_task(owner)
    tag = get(api, owner, task["id"]).headers["etag"]
    assert_problem(get(api, auth, task["id"], **{"If-None-Match": tag}), 404, "task_not_found")
    write = api.client.put(
        f"/api/v1/tasks/{task['id']}", json={"title": "x"}, headers={**auth, "If-Match": tag}
    )
    assert_problem(write, 404, "task_not_found")
    assert get(api, owner, task["id"]).json()["data"]["title"] == task["title"]


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_a_stale_if_match_is_412_and_changes_nothing(api, auth, method):
    task = api.create_task(auth, title="original")
    stale = get(api, auth, task["id"]).headers["etag"]
    api.client.patch(f"/api/v1/tasks/{task['id']}", json={"priority": "high"}, headers=auth)
    current = get(api, auth, task["id"]).json()["data"]
    response = api.client.request(
        method,
        f"/api/v1/tasks/{task['id']}",
        json={"title": "mine"},
        headers={**auth, "If-Match": stale},
    )
    assert_problem(response, 412, "task_changed")
    assert get(api, auth, task["id"]).json()["data"] == current


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_a_current_if_match_lets_the_write_through(api, auth, method):
    task = api.create_task(auth)
    tag = get(api, auth, task["id"]).headers["etag"]
    response = api.client.request(
        method,
        f"/api/v1/tasks/{task['id']}",
        json={"title": "mine"},
        headers={**auth, "If-Match": tag},
    )
    assert response.status_code == 200
    after = get(api, auth, task["id"])
    if method == "delete":
        assert_problem(after, 404, "task_not_found")
    else:
        assert after.json()["data"]["title"] == "mine"
        assert after.headers["etag"] != tag


@pytest.mark.parametrize(
    ("if_match", "status"),
    [("*", 200), ("W/{tag}", 412), ('"nope", {tag}', 200), ('"1-1"', 412), ("garbage", 412)],
)
def test_if_match_forms(api, auth, if_match, status):
    api.create_task(auth)  # so the task under test is not id 1
    task = api.create_task(auth)
    tag = get(api, auth, task["id"]).headers["etag"]
    response = api.client.put(
        f"/api/v1/tasks/{task['id']}",
        json={"title": "x"},
        headers={**auth, "If-Match": if_match.format(tag=tag)},
    )
    assert response.status_code == status
    stored = get(api, auth, task["id"]).json()["data"]["title"]
    assert stored == ("x" if status == 200 else task["title"])  # a 412 writes nothing


def test_if_match_on_a_missing_task_is_404(api, auth):
    response = api.client.put(
        "/api/v1/tasks/424242", json={"title": "x"}, headers={**auth, "If-Match": "*"}
    )
    assert_problem(response, 404, "task_not_found")


def test_without_if_match_writes_are_unconditional_as_in_the_seed(api, auth):
    task = api.create_task(auth)
    api.client.put(f"/api/v1/tasks/{task['id']}", json={"title": "one"}, headers=auth)
    second = api.client.put(f"/api/v1/tasks/{task['id']}", json={"title": "two"}, headers=auth)
    assert second.json()["data"]["title"] == "two"


def test_two_writers_with_the_same_etag_one_wins(api, auth):
    task = api.create_task(auth)
    tag = get(api, auth, task["id"]).headers["etag"]

    def write(title):
        return api.client.put(
            f"/api/v1/tasks/{task['id']}", json={"title": title}, headers={**auth, "If-Match": tag}
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(write, [f"writer {i}" for i in range(8)]))
    assert sorted(r.status_code for r in responses) == [200] + [412] * 7
    for lost in (r for r in responses if r.status_code == 412):
        assert_problem(lost, 412, "task_changed")
    # The task holds the winner's write, whole: no loser's title slipped in after it.
    (won,) = (r.json()["data"] for r in responses if r.status_code == 200)
    assert get(api, auth, task["id"]).json()["data"] == won


@pytest.mark.parametrize(
    ("method", "header"),
    [("PATCH", "If-Match"), ("DELETE", "If-Match"), ("GET", "If-None-Match")],
)
def test_a_precondition_of_300000_tags_is_400_before_anything_parses_it(api, auth, method, header):
    task = api.create_task(auth)
    tags = ", ".join(f'"{task["id"]}-{n}"' for n in range(300_000))
    body = {"title": "x"} if method == "PATCH" else None
    response = api.client.request(
        method, f"/api/v1/tasks/{task['id']}", json=body, headers={**auth, header: tags}
    )
    assert_problem(response, 400, "validation_failed")
    assert response.json()["detail"] == f"{header}: at most 1024 characters"
    assert api.client.get(f"/api/v1/tasks/{task['id']}", headers=auth).json()["data"] == task
