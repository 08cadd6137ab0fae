"""The API as the harness uses it: accounts, logins, and seeding tasks through HTTP."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

STATUSES = ("pending", "in_progress", "completed")
PRIORITIES = ("low", "medium", "high")
SEED_CLIENTS = 8
TIMEOUT = 30.0


@dataclass(frozen=True)
class Account:
    email: str
    password: str
    name: str
    id: int = 0


@dataclass(frozen=True)
class Seeded:
    a: Account
    b: Account
    task_ids_a: list[int]


def _data(response: httpx.Response, expected: int, what: str) -> Any:
    if response.status_code != expected:
        raise RuntimeError(f"{what}: {response.status_code} {response.text[:500]}")
    return response.json()["data"]


def register(client: httpx.Client, account: Account) -> Account:
    """Create the account; the same account with the id the API gave it."""
    body = {"email": account.email, "password": account.password, "name": account.name}
    user = _data(client.post("/api/v1/auth/register", json=body), 201, "register")
    return Account(account.email, account.password, account.name, int(user["id"]))


def login(client: httpx.Client, account: Account) -> str:
    """A fresh access token (they last 15 minutes, so each scenario logs in anew)."""
    body = {"email": account.email, "password": account.password}
    return str(_data(client.post("/api/v1/auth/login", json=body), 200, "login")["token"])


def seed_task(index: int) -> dict[str, Any]:
    """The body of the index-th seeded task: statuses and priorities vary, a quarter are due."""
    body: dict[str, Any] = {
        "title": f"Seeded task {index}",
        "description": f"Task {index}, created through the API before the scenarios run",
        "status": STATUSES[index % len(STATUSES)],
        # A period prime to the statuses' gives every status/priority pair.
        "priority": PRIORITIES[(index // len(STATUSES)) % len(PRIORITIES)],
    }
    if index % 4 == 0:
        body["due_date"] = f"2027-{1 + index % 12:02d}-{1 + index % 28:02d}T17:00:00Z"
    return body


def create_tasks(client: httpx.Client, token: str, count: int) -> list[int]:
    """Create `count` tasks with SEED_CLIENTS concurrent requests; their ids."""
    headers = {"Authorization": f"Bearer {token}"}

    def create(index: int) -> int:
        response = client.post("/api/v1/tasks", json=seed_task(index), headers=headers)
        return int(_data(response, 201, "create task")["id"])

    with ThreadPoolExecutor(SEED_CLIENTS) as pool:
        return list(pool.map(create, range(count)))


def api_client(base_url: str) -> httpx.Client:
    limits = httpx.Limits(max_connections=SEED_CLIENTS, max_keepalive_connections=SEED_CLIENTS)
    return httpx.Client(base_url=base_url, timeout=TIMEOUT, limits=limits)


def seed(base_url: str, tasks_per_user: int) -> Seeded:
    """Users A and B, each with `tasks_per_user` tasks; A's task ids."""
    with api_client(base_url) as client:
        a = register(client, Account("bench-a@example.com", "bench-password-a", "Bench A"))
        b = register(client, Account("bench-b@example.com", "bench-password-b", "Bench B"))
        ids_a = create_tasks(client, login(client, a), tasks_per_user)
        create_tasks(client, login(client, b), tasks_per_user)
    return Seeded(a, b, ids_a)
