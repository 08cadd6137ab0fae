"""TaskAPI from Python, through the SDK that openapi-python-client generates from the spec.

    make client && pip install ./build/client        # the package task_api_client
    python examples/python_sdk.py http://localhost:8080

Signs up a new account, logs in, then creates, lists, updates and deletes tasks, printing a
line per step, while keeping a copy of the account's tasks in sync through the change feed.
Last, it gives a script a read-only personal access token, uses it, and revokes it. Every
function and model below is generated from openapi/openapi.yaml.
"""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime
from typing import TypeVar

from task_api_client import AuthenticatedClient, Client
from task_api_client.api.auth import login, register
from task_api_client.api.tasks import (
    create_task,
    create_task_batch,
    delete_task,
    get_task,
    get_task_changes,
    list_tasks,
    update_task,
)
from task_api_client.api.tokens import create_personal_access_token, delete_personal_access_token
from task_api_client.models import (
    ListTasksSort,
    LoginRequest,
    PersonalAccessTokenInput,
    Problem,
    RegisterRequest,
    Scope,
    Task,
    TaskBatch,
    TaskInput,
    TaskPriority,
    TaskStatus,
)
from task_api_client.types import UNSET, Unset

T = TypeVar("T")


def expect(result: T | Problem | None, action: str) -> T:
    """The parsed success body; a documented error (a Problem) ends the example with its detail."""
    if isinstance(result, Problem):
        raise SystemExit(f"{action}: {result.status} {result.detail}")
    if result is None:
        raise SystemExit(f"{action}: an undocumented response")
    return result


def sync(client: AuthenticatedClient, copy: dict[int, Task], since: str | Unset) -> tuple[str, int]:
    """Bring `copy` up to date from `since` (UNSET: from nothing), page by page, in order:
    upsert each task, drop each deleted id. The next `since`, and how many deletes came."""
    deletes = 0
    while True:
        page = expect(get_task_changes.sync(client=client, since=since, limit=100), "sync")
        for changed in page.data.tasks:
            copy[changed.id] = changed
        for gone in page.data.deleted:
            copy.pop(gone.id, None)
        deletes += len(page.data.deleted)
        since = page.meta.next_since
        if not page.meta.has_more:
            return since, deletes


def main(base_url: str) -> None:
    email = f"example-{uuid.uuid4().hex[:8]}@example.com"
    password = "correct-horse-battery"

    with Client(base_url=base_url) as public:
        account = RegisterRequest(email=email, password=password, name="Jane Doe")
        user = expect(register.sync(client=public, body=account), "register").data
        print(f"registered {user.email}")
        session = expect(
            login.sync(client=public, body=LoginRequest(email=email, password=password)), "log in"
        ).data
        print(f"logged in, token expires in {session.expires_in} s")

    with AuthenticatedClient(base_url=base_url, token=session.token) as client:
        copy: dict[int, Task] = {}
        since, _ = sync(client, copy, UNSET)

        report = TaskInput(
            title="Write the report",
            priority=TaskPriority.HIGH,
            due_date=datetime(2026, 12, 31, 17, 0, tzinfo=UTC),
        )
        task = expect(create_task.sync(client=client, body=report), "create").data
        print(f"created task {task.id}: {task.title} ({task.priority}, {task.status})")

        batch = TaskBatch(tasks=[TaskInput(title="Plan"), TaskInput(title="Build")])
        created = expect(create_task_batch.sync(client=client, body=batch), "create many").data
        print(f"created {len(created)} tasks in one batch")

        page = expect(
            list_tasks.sync(client=client, sort=ListTasksSort.PRIORITY_DESC, limit=10), "list"
        )
        titles = ", ".join(t.title for t in page.data)
        print(f"listed {page.meta.total_count} tasks, highest priority first: {titles}")

        # PUT replaces every writable field: send those to keep along with the change.
        done = TaskInput(
            title=task.title,
            priority=task.priority,
            due_date=task.due_date,
            status=TaskStatus.COMPLETED,
        )
        task = expect(update_task.sync(client=client, id=task.id, body=done), "update").data
        print(f"updated task {task.id}: {task.status}, due {task.due_date:%Y-%m-%d %H:%M} UTC")

        deleted = expect(delete_task.sync(client=client, id=task.id), "delete").data
        print(f"deleted task {task.id}: {deleted}")

        gone = get_task.sync(client=client, id=task.id)
        if isinstance(gone, Problem):
            print(f"task {task.id} is gone: {gone.status} {gone.detail}")

        since, deletes = sync(client, copy, since)
        listed = expect(list_tasks.sync(client=client, limit=100), "list").data
        if {t.id: t.to_dict() for t in listed} != {i: t.to_dict() for i, t in copy.items()}:
            raise SystemExit("the synced copy differs from the list")
        kept = ", ".join(sorted(t.title for t in copy.values()))
        print(f"synced copy: {kept}; {deletes} deleted since the first sync; same as the list")

        # A script gets a token of its own, with only the powers it needs, and no password.
        grant = PersonalAccessTokenInput(name="example script", scopes=[Scope.TASKSREAD])
        pat = expect(create_personal_access_token.sync(client=client, body=grant), "token").data
        scopes = ", ".join(str(scope) for scope in pat.scopes)
        print(f'created personal access token "{pat.name}" with scopes {scopes}')
        script_token = pat.token

    with AuthenticatedClient(base_url=base_url, token=script_token) as script:
        readable = expect(list_tasks.sync(client=script), "list with the token")
        refused = create_task.sync(client=script, body=TaskInput(title="Not allowed"))
        if not isinstance(refused, Problem):
            raise SystemExit("a read-only token could write")
        print(
            f"with the token: listed {readable.meta.total_count} tasks; "
            f"a write is refused: {refused.status} {refused.code}"
        )

    with AuthenticatedClient(base_url=base_url, token=session.token) as client:
        revoked = delete_personal_access_token.sync_detailed(client=client, id=pat.id)
        if revoked.status_code != 204:
            raise SystemExit(f"revoke: {revoked.status_code}")
    with AuthenticatedClient(base_url=base_url, token=script_token) as script:
        after = list_tasks.sync(client=script)
        if not isinstance(after, Problem):
            raise SystemExit("a revoked token still works")
        print(f"revoked the token: {after.status} {after.code} afterwards")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://localhost:8080")
