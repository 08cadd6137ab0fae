"""GET /api/v1/tasks/changes: a client's copy of its tasks, kept in sync, deletes included."""

from __future__ import annotations

import base64
import time
from datetime import timedelta
from typing import Any

import pytest

from taskapi.domain import changes
from taskapi.ops import housekeeping
from taskapi.storage.schema import utcnow
from tests.conftest import assert_problem

CHANGES = "/api/v1/tasks/changes"


def sync(api: Any, auth: dict[str, str], since: str | None = None, **params: Any) -> Any:
    query = {**params, **({"since": since} if since is not None else {})}
    response = api.client.get(CHANGES, params=query, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


def follow(api: Any, auth: dict[str, str], copy: dict[int, dict], since: str | None, **params):
    """Apply pages until has_more is false, as a client does; the next `since`."""
    while True:
        body = sync(api, auth, since, **params)
        for task in body["data"]["tasks"]:
            copy[task["id"]] = task
        for gone in body["data"]["deleted"]:
            copy.pop(gone["id"], None)
        since = body["meta"]["next_since"]
        if not body["meta"]["has_more"]:
            return since


def listed(api: Any, auth: dict[str, str]) -> dict[int, dict]:
    body = api.client.get("/api/v1/tasks", params={"limit": 100}, headers=auth).json()
    return {task["id"]: task for task in body["data"]}


def test_a_first_sync_returns_every_task_and_then_nothing(api, auth):
    created = [api.create_task(auth, title=f"t{i}") for i in range(3)]
    body = sync(api, auth)
    assert [t["id"] for t in body["data"]["tasks"]] == [t["id"] for t in created]
    assert body["data"]["tasks"][0] == created[0]
    assert body["data"]["deleted"] == []
    assert body["meta"]["has_more"] is False
    again = sync(api, auth, body["meta"]["next_since"])
    assert again["data"] == {"tasks": [], "deleted": []}
    assert again["meta"]["has_more"] is False
    # Still valid after an empty answer.
    assert sync(api, auth, again["meta"]["next_since"])["data"]["tasks"] == []


def test_creates_changes_and_deletes_since_a_token(api, auth):
    kept = api.create_task(auth, title="kept")
    changed = api.create_task(auth, title="to change")
    doomed = api.create_task(auth, title="to delete")
    since = sync(api, auth)["meta"]["next_since"]
    api.client.patch(
        f"/api/v1/tasks/{changed['id']}",
        json={"status": "completed"},
        headers={**auth, "Content-Type": "application/merge-patch+json"},
    )
    assert api.client.delete(f"/api/v1/tasks/{doomed['id']}", headers=auth).status_code == 200
    fresh = api.create_task(auth, title="new")
    body = sync(api, auth, since)
    assert [t["id"] for t in body["data"]["tasks"]] == [changed["id"], fresh["id"]]
    assert body["data"]["tasks"][0]["status"] == "completed"
    (gone,) = body["data"]["deleted"]
    assert gone["id"] == doomed["id"]
    assert gone["deleted_at"].endswith("Z")
    assert kept["id"] not in [t["id"] for t in body["data"]["tasks"]]
    # A deleted task stays a 404.
    assert_problem(api.client.get(f"/api/v1/tasks/{doomed['id']}", headers=auth), 404)


def test_pages_follow_has_more_and_end_up_with_what_the_list_shows(api, auth):
    for i in range(7):
        api.create_task(auth, title=f"t{i}")
    first = sync(api, auth, limit=3)
    assert len(first["data"]["tasks"]) == 3
    assert first["meta"]["has_more"] is True
    copy: dict[int, dict] = {}
    since = follow(api, auth, copy, None, limit=3)
    assert copy == listed(api, auth)
    # A batch, a PUT and deletes, then one more sync.
    batch = api.client.post(
        "/api/v1/tasks/batch", json={"tasks": [{"title": "b1"}, {"title": "b2"}]}, headers=auth
    )
    assert batch.status_code == 201
    some = sorted(copy)[:2]
    api.client.put(f"/api/v1/tasks/{some[0]}", json={"title": "replaced"}, headers=auth)
    api.client.delete(f"/api/v1/tasks/{some[1]}", headers=auth)
    follow(api, auth, copy, since, limit=2)
    assert copy == listed(api, auth)


def test_each_account_sees_only_its_own_changes(api, auth):
    other = api.user()
    api.create_task(other, title="not yours")
    mine = api.create_task(auth, title="yours")
    body = sync(api, auth)
    assert [t["id"] for t in body["data"]["tasks"]] == [mine["id"]]
    # Another account's token is not yours.
    theirs = sync(api, other)["meta"]["next_since"]
    assert_problem(
        api.client.get(CHANGES, params={"since": theirs}, headers=auth), 400, "invalid_sync_token"
    )


def _altered(token: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[10] ^= 1
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(_altered, id="altered"),
        pytest.param(lambda token: token[:-3], id="truncated"),
        pytest.param(lambda token: "not-a-token", id="made-up"),
        pytest.param(lambda token: "%00%ff", id="binary"),
        pytest.param(lambda token: "@@@@", id="not-base64"),
    ],
)
def test_a_token_the_server_did_not_issue_is_a_400(api, auth, bad):
    token = sync(api, auth)["meta"]["next_since"]
    response = api.client.get(f"{CHANGES}?since={bad(token)}", headers=auth)
    assert_problem(response, 400, "invalid_sync_token")


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=1001", "limit=x", f"since={'a' * 201}", "since="]
)
def test_bad_parameters_are_a_400(api, auth, query):
    assert_problem(api.client.get(f"{CHANGES}?{query}", headers=auth), 400, "validation_failed")


def test_the_feed_needs_a_token(api):
    assert_problem(api.client.get(CHANGES), 401, "authentication_required")


def test_a_token_older_than_the_retention_is_a_410(make_app, settings):
    app = make_app(settings, tombstone_retention=1)
    with app.test_client() as client:
        from tests.conftest import Api

        api = Api(client)
        auth = api.user()
        since = sync(api, auth)["meta"]["next_since"]
        time.sleep(1.1)
        body = assert_problem(client.get(CHANGES, params={"since": since}, headers=auth), 410)
        assert body["code"] == "sync_token_expired"
        assert "without `since`" in body["detail"]
        # Every answer issues a fresh token: a client that polls in time never meets a 410.
        fresh = sync(api, auth)["meta"]["next_since"]
        assert sync(api, auth, fresh)["meta"]["has_more"] is False


def test_a_purge_turns_a_token_that_could_miss_a_delete_into_a_410(api, auth, services):
    doomed = api.create_task(auth, title="doomed")
    since = sync(api, auth)["meta"]["next_since"]
    api.client.delete(f"/api/v1/tasks/{doomed['id']}", headers=auth)
    later = sync(api, auth, since)
    assert [d["id"] for d in later["data"]["deleted"]] == [doomed["id"]]
    purged = housekeeping.purge(
        services.db, now=utcnow() + timedelta(seconds=61), tombstone_retention=60
    )
    assert purged is not None
    assert purged["task_tombstones"] == 1
    # The token from before the delete would now miss it: refused, never answered without it.
    assert_problem(
        api.client.get(CHANGES, params={"since": since}, headers=auth), 410, "sync_token_expired"
    )
    # The token from after it is still good.
    assert sync(api, auth, later["meta"]["next_since"])["data"] == {"tasks": [], "deleted": []}


def test_deleting_the_account_takes_its_tombstones(api, auth, services):
    from sqlalchemy import func, select

    from taskapi.storage.schema import TASK_TOMBSTONES

    task = api.create_task(auth)
    api.client.delete(f"/api/v1/tasks/{task['id']}", headers=auth)
    api.create_task(auth)
    with services.db.reading() as c:
        assert c.scalar(select(func.count()).select_from(TASK_TOMBSTONES)) == 1
    response = api.client.request(
        "DELETE", "/api/v1/auth/me", json={"password": "password123"}, headers=auth
    )
    assert response.status_code == 204, response.text
    with services.db.reading() as c:
        assert c.scalar(select(func.count()).select_from(TASK_TOMBSTONES)) == 0


def test_tokens_are_opaque_signed_and_bound_to_their_account():
    codec = changes.TokenCodec("secret" * 8, retention_seconds=60)
    token = codec.encode(changes.Position(7, (12, 34), 5, True))
    assert codec.decode(token, owner_id=7) == changes.Position(7, (12, 34), 5, True)
    with pytest.raises(changes.InvalidSyncToken):
        codec.decode(token, owner_id=8)
    with pytest.raises(changes.InvalidSyncToken):
        changes.TokenCodec("other" * 8, retention_seconds=60).decode(token, owner_id=7)


def test_a_list_answers_an_etag_that_gives_304_until_a_task_changes(api, auth):
    task = api.create_task(auth, title="one")
    query = {"status": "pending", "limit": 5}
    first = api.client.get("/api/v1/tasks", params=query, headers=auth)
    tag = first.headers["etag"]
    assert tag.startswith('W/"')

    def revalidate(etag: str, **params: Any) -> Any:
        headers = {**auth, "If-None-Match": etag}
        return api.client.get("/api/v1/tasks", params=params or query, headers=headers)

    unchanged = revalidate(tag)
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged.headers["etag"] == tag
    # Another account's writes are not yours.
    api.create_task(api.user(), title="someone else's")
    assert revalidate(tag).status_code == 304
    # Another list's tag does not revalidate this one.
    assert revalidate(tag, limit=6).status_code == 200
    # Any write of yours, even to a task this page does not show, is a 200 with a new tag.
    for write in (
        lambda: api.client.patch(
            f"/api/v1/tasks/{task['id']}",
            json={"status": "completed"},
            headers={**auth, "Content-Type": "application/merge-patch+json"},
        ),
        lambda: api.create_task(auth, title="two"),
        lambda: api.client.delete(f"/api/v1/tasks/{task['id']}", headers=auth),
    ):
        write()
        changed = revalidate(tag)
        assert changed.status_code == 200
        assert changed.headers["etag"] != tag
        tag = changed.headers["etag"]
        assert revalidate(tag).status_code == 304
