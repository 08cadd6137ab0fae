"""The spec's User and Task schemas as JSON-ready dicts."""

from __future__ import annotations

from typing import Any

from taskapi.domain import timestamps
from taskapi.storage.rows import TaskView, UserView


def user_json(user: UserView) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "created_at": timestamps.render(user.created_at),
        "updated_at": timestamps.render(user.updated_at),
    }


def task_json(task: TaskView) -> dict[str, Any]:
    return {
        "id": task.id,
        "user_id": task.user_id,
        "title": task.title,
        "description": task.description,
        "status": task.status,
        "priority": task.priority,
        "due_date": None if task.due_date is None else timestamps.render(task.due_date),
        "created_at": timestamps.render(task.created_at),
        "updated_at": timestamps.render(task.updated_at),
    }
