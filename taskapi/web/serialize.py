"""The spec's response shapes (web/spec_types.py), built from what the domain hands out."""

from __future__ import annotations

from typing import cast

from taskapi.domain import changes, personal_tokens, tasks, timestamps
from taskapi.ops import readiness
from taskapi.storage.rows import PersonalTokenView, TaskView, UserView
from taskapi.web import problem_types, spec_types


def user_json(user: UserView) -> spec_types.User:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "created_at": timestamps.render(user.created_at),
        "updated_at": timestamps.render(user.updated_at),
    }


def token_json(token: PersonalTokenView) -> spec_types.PersonalAccessToken:
    last_used = token.last_used_at
    return {
        "id": token.id,
        "name": token.name,
        "scopes": cast(list[spec_types.Scope], token.scopes.split()),
        "token_prefix": token.token_prefix,
        "created_at": timestamps.render(token.created_at),
        "expires_at": timestamps.render(token.expires_at),
        "last_used_at": None if last_used is None else timestamps.render(last_used),
    }


def new_token_json(created: personal_tokens.Created) -> spec_types.NewPersonalAccessToken:
    return {**token_json(created.row), "token": created.token}


def task_json(task: TaskView) -> spec_types.Task:
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


def changes_json(page: changes.Changes) -> spec_types.TaskChanges:
    return {
        "tasks": [task_json(task) for task in page.tasks],
        "deleted": [
            {"id": gone.id, "deleted_at": timestamps.render(gone.deleted_at)}
            for gone in page.deleted
        ],
    }


def stats_json(stats: tasks.Stats) -> spec_types.TaskStats:
    by_status, by_priority = stats.by_status, stats.by_priority
    return {
        "total": stats.total,
        "by_status": {
            "pending": by_status["pending"],
            "in_progress": by_status["in_progress"],
            "completed": by_status["completed"],
        },
        "by_priority": {
            "low": by_priority["low"],
            "medium": by_priority["medium"],
            "high": by_priority["high"],
        },
        "overdue": stats.overdue,
    }


def problem_type_json(problem: problem_types.ProblemType) -> spec_types.ProblemType:
    return {
        "type": problem.uri,
        "code": problem.code,
        "status": problem.status,
        "title": problem.title,
        "description": problem.description,
    }


def checks_json(checks: readiness.Checks) -> spec_types.ReadinessChecks:
    return {
        "database": checks.database,
        "redis": checks.redis,
        "shutting_down": checks.shutting_down,
    }
