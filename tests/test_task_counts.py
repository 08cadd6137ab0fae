"""task_counts, which the list's total reads: its triggers keep it exact through every write."""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import replace
from itertools import product

import pytest
import sqlalchemy as sa

from taskapi.domain import tasks, users
from taskapi.domain.errors import TaskNotFound
from taskapi.storage.db import Database
from taskapi.storage.schema import TASK_PRIORITIES, TASK_STATUSES
from tests.conftest import services_of

KEYS = list(product(TASK_STATUSES, TASK_PRIORITIES))


def stored_counts(db, owner_id):
    """{(status, priority, slot): n} as task_counts has it, and as counting the tasks gives it."""
    with db.reading() as s:
        kept = s.execute(
            sa.text(
                "SELECT status, priority, slot, n FROM task_counts WHERE user_id = :u AND n <> 0"
            ),
            {"u": owner_id},
        )
        counted = s.execute(
            sa.text(
                "SELECT status, priority, id % 16, count(*) FROM tasks WHERE user_id = :u "
                "GROUP BY status, priority, id % 16"
            ),
            {"u": owner_id},
        )
        return {tuple(key): n for *key, n in kept}, {tuple(key): n for *key, n in counted}


def totals(api, headers):
    """meta.total_count for no filter and for every status, priority and pair of both."""
    filters = [{}, *({"status": s} for s in TASK_STATUSES)]
    filters += [{"priority": p} for p in TASK_PRIORITIES]
    filters += [{"status": s, "priority": p} for s, p in KEYS]
    answers = {}
    for params in filters:
        response = api.client.get("/api/v1/tasks", params={**params, "limit": 1}, headers=headers)
        assert response.status_code == 200, response.text
        answers[tuple(sorted(params.items()))] = response.json()["meta"]["total_count"]
    return answers


def expected_totals(owned):
    """The same totals, worked out from the tasks' own fields."""
    keys = Counter((t["status"], t["priority"]) for t in owned.values())
    answers = {(): len(owned)}
    for status in TASK_STATUSES:
        answers[(("status", status),)] = sum(n for (s, _), n in keys.items() if s == status)
    for priority in TASK_PRIORITIES:
        answers[(("priority", priority),)] = sum(n for (_, p), n in keys.items() if p == priority)
    for status, priority in KEYS:
        answers[(("priority", priority), ("status", status))] = keys[(status, priority)]
    return answers


def test_total_follows_creates_batches_updates_patches_and_deletes(app, api, auth):
    other = api.user()
    api.create_task(other, status="completed", priority="high")
    owned = {}
    for status, priority in [("pending", "high"), ("completed", "low"), ("pending", "high")]:
        task = api.create_task(auth, status=status, priority=priority)
        owned[task["id"]] = task
    batch = [{"title": f"b{i}", "status": s, "priority": p} for i, (s, p) in enumerate(KEYS)]
    response = api.client.post("/api/v1/tasks/batch", json={"tasks": batch}, headers=auth)
    assert response.status_code == 201, response.text
    owned |= {t["id"]: t for t in response.json()["data"]}
    assert totals(api, auth) == expected_totals(owned)

    first, second, third, fourth = list(owned)[:4]
    changes = [
        ("put", first, {"title": "moved", "status": "in_progress", "priority": "low"}),
        ("patch", second, {"priority": "medium"}),
        ("patch", third, {"title": "renamed only"}),  # status and priority stay
        ("patch", fourth, {"status": "completed", "priority": "high"}),
    ]
    for method, task_id, body in changes:
        response = getattr(api.client, method)(f"/api/v1/tasks/{task_id}", json=body, headers=auth)
        assert response.status_code == 200, response.text
        owned[task_id] = response.json()["data"]
    assert api.client.delete(f"/api/v1/tasks/{second}", headers=auth).status_code == 200
    del owned[second]
    assert totals(api, auth) == expected_totals(owned)

    kept, counted = stored_counts(
        services_of(app).db, api.client.get("/api/v1/auth/me", headers=auth).json()["data"]["id"]
    )
    assert kept == counted


def test_a_deleted_accounts_counts_go_with_it(app, api, auth):
    me = api.client.get("/api/v1/auth/me", headers=auth).json()["data"]["id"]
    ids = [api.create_task(auth, status=status)["id"] for status in TASK_STATUSES]
    db = services_of(app).db
    kept = stored_counts(db, me)[0]
    assert kept == {(s, "medium", i % 16): 1 for s, i in zip(TASK_STATUSES, ids, strict=True)}
    response = api.client.request(
        "DELETE", "/api/v1/auth/me", json={"password": "password123"}, headers=auth
    )
    assert response.status_code == 204, response.text
    with db.reading() as s:
        left = s.scalar(sa.text("SELECT count(*) FROM task_counts WHERE user_id = :u"), {"u": me})
    assert left == 0


def test_writes_by_hand_are_counted_too(app, api, auth):
    me = api.client.get("/api/v1/auth/me", headers=auth).json()["data"]["id"]
    db = services_of(app).db
    now = "2026-01-01 00:00:00"
    with db.transaction() as s:
        for i, (status, priority) in enumerate(KEYS * 3):
            s.execute(
                sa.text(
                    "INSERT INTO tasks (user_id, title, status, priority, created_at, updated_at) "
                    "VALUES (:u, :t, :s, :p, :now, :now)"
                ),
                {"u": me, "t": f"sql {i}", "s": status, "p": priority, "now": now},
            )
        s.execute(
            sa.text(
                "UPDATE tasks SET status = 'completed' WHERE user_id = :u AND priority = 'low'"
            ),
            {"u": me},
        )
        s.execute(sa.text("DELETE FROM tasks WHERE user_id = :u AND priority = 'high'"), {"u": me})
    kept, counted = stored_counts(db, me)
    assert kept == counted
    assert sum(kept.values()) == 18
    assert api.client.get("/api/v1/tasks", headers=auth).json()["meta"]["total_count"] == 18


@pytest.mark.parametrize(
    "backend", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_concurrent_writes_of_one_owner_lose_no_count(settings):
    """Threads on their own connections create, batch-create, move and delete one owner's tasks.

    Each count is an upsert in the writing transaction, taken in key order, so none is lost to a
    race and no two writers deadlock; any error (a deadlock, a lock timeout) fails the test.
    Moves and deletes pick tasks of two of the 16 slots, where concurrent writers share rows.
    """
    db = Database(replace(settings, db_max_open_conns=24, db_max_idle_conns=24))
    with db.transaction() as s:
        owner = users.register(s, email="counts@example.com", name="C", password_hash="x").id
    threads, rounds = 8, 60
    start = threading.Barrier(threads)
    errors: list[BaseException] = []
    ids: list[int] = []
    lock = threading.Lock()

    def fields(rng):
        status, priority = rng.choice(KEYS)
        return tasks.TaskFields("t", "", status, priority, None)

    def work(seed):
        rng = random.Random(seed)
        start.wait()
        try:
            for _ in range(rounds):
                action = rng.choice(("create", "batch", "move", "move", "delete"))
                with lock:
                    # Tasks of two slots only, so that writers meet on the same counts.
                    shared = [i for i in ids if i % 16 < 2]
                    target = rng.choice(shared) if shared else None
                if target is None and action in ("move", "delete"):
                    action = "create"
                made = []
                with db.transaction() as s:
                    if action == "create":
                        made = [tasks.create(s, owner_id=owner, fields=fields(rng))]
                    elif action == "batch":
                        batch = [fields(rng) for _ in range(5)]
                        made = tasks.create_many(s, owner_id=owner, fields=batch)
                    else:
                        try:
                            if action == "move":
                                tasks.replace(s, owner_id=owner, task_id=target, fields=fields(rng))
                            else:
                                tasks.remove(s, owner_id=owner, task_id=target)
                        except TaskNotFound:  # another thread deleted it first
                            pass
                with lock:
                    ids.extend(t.id for t in made)
        except BaseException as error:
            errors.append(error)

    workers = [threading.Thread(target=work, args=(seed,)) for seed in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    try:
        assert errors == []
        kept, counted = stored_counts(db, owner)
        assert len(ids) > threads * rounds / 2  # tasks created, some deleted since
        assert kept == counted
    finally:
        db.dispose()


@pytest.mark.parametrize(
    "backend", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_truncating_tasks_empties_the_counts(app, api, auth):
    api.create_task(auth)
    db = services_of(app).db
    with db.transaction() as s:
        s.execute(sa.text("TRUNCATE tasks"))
    with db.reading() as s:
        assert s.scalar(sa.text("SELECT count(*) FROM task_counts")) == 0
