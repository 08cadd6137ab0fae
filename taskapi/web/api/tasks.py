"""Operations tagged `tasks`: the caller's own tasks.

`user` is the caller's account id, already vouched for by the spec's bearerAuth (api/caller.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Unpack
from urllib.parse import urlencode

import flask
from sqlalchemy import Connection

from taskapi.domain import changes, listing, tasks, timestamps
from taskapi.storage.rows import TaskView
from taskapi.web import conditional, context, idempotency, spec_types
from taskapi.web.envelope import empty, ok
from taskapi.web.serialize import changes_json, stats_json, task_json

DELETED = "Task deleted successfully"
TASKS_PATH = "/api/v1/tasks"


def _date(value: str | None) -> datetime | None:
    return None if value is None else timestamps.parse(value)


def _fields(body: spec_types.TaskInput) -> tasks.TaskFields:
    # The request validator has applied the spec's defaults: every field is in `body`.
    return tasks.TaskFields(
        title=body["title"],
        description=body["description"],
        status=body["status"],
        priority=body["priority"],
        due_date=_date(body.get("due_date")),
    )


def _respond(
    task: TaskView, status: int = 200, headers: Mapping[str, str] | None = None
) -> flask.Response:
    return ok(task_json(task), status, headers={"ETag": conditional.etag(task), **(headers or {})})


def _if_match(task_id: int) -> tasks.Precondition:
    return conditional.if_match(flask.request.headers.get("If-Match"), task_id)


def create_task(body: spec_types.TaskInput, user: int) -> flask.Response:
    def work(s: Connection) -> flask.Response:
        task = tasks.create(s, owner_id=user, fields=_fields(body))
        return _respond(task, 201, {"Location": f"{TASKS_PATH}/{task.id}"})

    return idempotency.run("createTask", body, user, work, one_statement=True)


def create_task_batch(body: spec_types.TaskBatch, user: int) -> flask.Response:
    def work(s: Connection) -> flask.Response:
        created = tasks.create_many(s, owner_id=user, fields=[_fields(t) for t in body["tasks"]])
        return ok([task_json(t) for t in created], 201)

    # Stored Idempotency-Keys are scoped by this name, so it stays the 1.0.0 operationId:
    # a retry sent across an upgrade still replays instead of creating the tasks twice.
    return idempotency.run("createTasks", body, user, work)


def list_tasks(user: int, **params: Unpack[spec_types.ListTasksParametersQuery]) -> flask.Response:
    query = listing.ListQuery(
        status=params.get("status"),
        priority=params.get("priority"),
        q=params.get("q"),
        due_before=_date(params.get("due_before")),
        due_after=_date(params.get("due_after")),
        created_before=_date(params.get("created_before")),
        created_after=_date(params.get("created_after")),
        sort=listing.Sort.parse(params["sort"]),
        page=params["page"],
        limit=params["limit"],
        cursor=params.get("cursor"),
    )
    key = conditional.list_key(user, flask.request.args.items(multi=True))
    held = conditional.list_floor(flask.request.headers.get("If-None-Match"), key)
    with context.services().db.reading() as c:
        if held is not None and not changes.changed_since(c, owner_id=user, floor=held):
            return empty(304, {"ETag": conditional.list_etag(held, key)})
        page = listing.list_owned(c, owner_id=user, query=query)
    meta: spec_types.PageMeta = {"limit": query.limit, "next_cursor": page.next_cursor}
    if page.total is not None:
        meta["page"] = query.page
        meta["total_count"] = page.total
        meta["total_pages"] = math.ceil(page.total / query.limit)
    data = [task_json(t) for t in page.tasks]
    headers = {"Link": _link_header(query, meta), "ETag": conditional.list_etag(page.floor, key)}
    return ok(data, meta=meta, headers=headers)


def _link_header(query: listing.ListQuery, meta: spec_types.PageMeta) -> str:
    """RFC 8288 links to the neighbouring pages, keeping the filters, sort and limit."""
    kept = {k: v for k, v in flask.request.args.items() if k not in ("page", "cursor")}

    def url(**position: Any) -> str:
        return f"{TASKS_PATH}?{urlencode({**kept, **position})}"

    links = {"first": url(page=1)}
    if "total_pages" in meta:
        last = max(meta["total_pages"], 1)
        if query.page > 1:
            links["prev"] = url(page=min(query.page - 1, last))
        if query.page < last:
            links["next"] = url(page=query.page + 1)
        links["last"] = url(page=last)
    elif meta["next_cursor"]:
        links["next"] = url(cursor=meta["next_cursor"])
    return ", ".join(f'<{target}>; rel="{rel}"' for rel, target in links.items())


def get_task_changes(
    user: int, **params: Unpack[spec_types.GetTaskChangesParametersQuery]
) -> flask.Response:
    app = context.services()
    since = params.get("since")
    tokens = app.sync_tokens
    position = changes.Position(user) if since is None else tokens.decode(since, owner_id=user)
    with app.db.reading() as c:
        page = changes.read(c, position, limit=params["limit"])
    meta: spec_types.ChangesMeta = {
        "next_since": tokens.encode(page.next_position),
        "has_more": page.has_more,
    }
    return ok(changes_json(page), meta=meta)


def get_task_stats(user: int) -> flask.Response:
    with context.services().db.reading() as c:
        counts = tasks.stats(c, owner_id=user, now=datetime.now(UTC))
    return ok(stats_json(counts))


def get_task(id: int, user: int) -> flask.Response:
    with context.services().db.reading() as c:
        task = tasks.read_owned(c, owner_id=user, task_id=id)
    tag = conditional.etag(task)
    if conditional.none_match(flask.request.headers.get("If-None-Match"), tag):
        return empty(304, {"ETag": tag})
    # Cache-Control: no-store, as on every API response (middleware.SecurityHeaders): a task is
    # private data, and a browser's disk cache on a shared machine is out of its owner's hands.
    # A client that keeps its own copy still sends If-None-Match and gets a 304.
    return _respond(task)


def update_task(id: int, body: spec_types.TaskInput, user: int) -> flask.Response:
    with context.services().db.single_write() as s:
        task = tasks.replace(
            s, owner_id=user, task_id=id, fields=_fields(body), precondition=_if_match(id)
        )
    return _respond(task)


def patch_task(id: int, body: spec_types.TaskPatch, user: int) -> flask.Response:
    # JSON Merge Patch (RFC 7396): members present are set; `null` clears (only due_date may be).
    changes: dict[str, Any] = {k: v for k, v in body.items() if k in tasks.WRITABLE}
    if "due_date" in changes:
        changes["due_date"] = _date(changes["due_date"])
    with context.services().db.single_write() as s:
        task = tasks.patch(
            s, owner_id=user, task_id=id, changes=changes, precondition=_if_match(id)
        )
    return _respond(task)


def delete_task(id: int, user: int) -> flask.Response:
    with context.services().db.single_write() as s:
        tasks.remove(s, owner_id=user, task_id=id, precondition=_if_match(id))
    return ok(DELETED)
