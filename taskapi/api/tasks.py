"""Operations tagged `tasks`: the caller's own tasks."""

from __future__ import annotations

import math
from typing import Any

import flask

from taskapi import tasks, timestamps, users
from taskapi.api import services
from taskapi.api.envelope import ok
from taskapi.api.serialize import task_json

DELETED = "Task deleted successfully"


def _fields(body: dict[str, Any]) -> tasks.TaskFields:
    # The spec's defaults are already applied to `body` by the request validator.
    due = body.get("due_date")
    return tasks.TaskFields(
        title=body["title"],
        description=body["description"],
        status=body["status"],
        priority=body["priority"],
        due_date=None if due is None else timestamps.parse(due),
    )


def _location(task_id: int) -> dict[str, str]:
    return {"Location": f"/api/v1/tasks/{task_id}"}


def create_task(body: dict[str, Any], token_info: dict[str, Any]) -> flask.Response:
    with services.current().db.transaction() as s:
        owner = users.authorized(s, token_info)
        task = tasks.create(s, owner_id=owner, fields=_fields(body))
    return ok(task_json(task), 201, headers=_location(task.id))


def list_tasks(
    token_info: dict[str, Any],
    page: int,
    limit: int,
    status: str | None = None,
    priority: str | None = None,
) -> flask.Response:
    query = tasks.ListQuery(status=status, priority=priority, page=page, limit=limit)
    with services.current().db.reading() as s:
        owner = users.authorized(s, token_info)
        page_tasks, total = tasks.list_owned(s, owner_id=owner, query=query)
    meta = {
        "page": page,
        "limit": limit,
        "total_count": total,
        "total_pages": math.ceil(total / limit),
    }
    return ok([task_json(t) for t in page_tasks], meta=meta)


def get_task(id: int, token_info: dict[str, Any]) -> flask.Response:
    with services.current().db.reading() as s:
        owner = users.authorized(s, token_info)
        task = tasks.get_owned(s, owner_id=owner, task_id=id)
    return ok(task_json(task))


def update_task(id: int, body: dict[str, Any], token_info: dict[str, Any]) -> flask.Response:
    with services.current().db.transaction() as s:
        owner = users.authorized(s, token_info)
        task = tasks.replace(s, owner_id=owner, task_id=id, fields=_fields(body))
    return ok(task_json(task))


def delete_task(id: int, token_info: dict[str, Any]) -> flask.Response:
    with services.current().db.transaction() as s:
        owner = users.authorized(s, token_info)
        tasks.remove(s, owner_id=owner, task_id=id)
    return ok(DELETED)
