"""The HA suite's clients (tests/test_ha.py): one thread per account, every response kept.

Writers loop POST a task, GET it back and GET the list; readers loop GET one of their tasks
and the list. Each request goes to the next replica, and a 200 that does not show the
account's own acknowledged write is marked as missed.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, replace

import httpx

from tests.client_threads import ClientThreads
from tests.conftest import PASSWORD


@dataclass(frozen=True)
class Record:
    """One response a client got: what it asked, where, when, and what came back."""

    account: int
    kind: str  # write, read (the task just written) or list
    replica: int
    started: float
    ended: float
    status: int | None  # None: the request failed at the socket
    retry_after: str | None = None
    task_id: int | None = None
    title: str = ""
    missed: bool = False  # a 200 that did not show the account's own acknowledged write


@dataclass(frozen=True)
class Account:
    user_id: int
    headers: dict[str, str]


class Clients(ClientThreads):
    """One thread per account. Writers loop POST a task, GET it back, GET the list; readers
    loop GET one of their tasks and the list. Each request goes to the next replica."""

    def __init__(self, urls: list[str], accounts: list[Account], *, write: bool) -> None:
        super().__init__(threads=len(accounts), pause=0.01)
        self.urls, self.accounts, self.write = urls, accounts, write
        # Each thread's own, so that marking its last record never touches another thread's.
        self._records: list[list[Record]] = [[] for _ in accounts]
        self.known: dict[int, tuple[int, str]] = {}  # reader's account: a task of theirs

    def _run(self, k: int) -> None:
        clients = [httpx.Client(base_url=url, timeout=10) for url in self.urls]
        account, n, mine = self.accounts[k], 0, self._records[k]

        def send(kind: str, method: str, path: str, **options: object) -> httpx.Response | None:
            # Cycle n writes through replica k + n and reads back through the next two.
            replica = (k + n + ("write", "read", "list").index(kind)) % len(clients)
            started = time.monotonic()
            try:
                response = clients[replica].request(
                    method, path, headers=account.headers, **options
                )
            except httpx.TransportError:
                mine.append(Record(k, kind, replica, started, time.monotonic(), None))
                return None
            record = Record(
                k, kind, replica, started, time.monotonic(), response.status_code,
                response.headers.get("retry-after"),
            )  # fmt: skip
            mine.append(record)
            return response

        try:
            while not self.stopped:
                n += 1
                if self.write:
                    title = f"ha {k}-{n} {uuid.uuid4().hex[:8]}"
                    created = send("write", "POST", "/api/v1/tasks", json={"title": title})
                    if created is None or created.status_code != 201:
                        self.rest()
                        continue
                    task_id = created.json()["data"]["id"]
                    mine[-1] = replace(mine[-1], task_id=task_id, title=title)
                else:
                    task_id, title = self.known[k]
                read = send("read", "GET", f"/api/v1/tasks/{task_id}")
                _check(mine, read, task_id, title)
                listed = send("list", "GET", "/api/v1/tasks?sort=-created_at&limit=5")
                _check(mine, listed, task_id)
                self.rest()
        except BaseException as error:  # reported on leaving the `with` block
            self.failures.append(error)
        finally:
            for client in clients:
                client.close()

    @property
    def records(self) -> list[Record]:
        """Every thread's records, in the order they were sent."""
        return sorted((r for mine in self._records for r in list(mine)), key=lambda r: r.started)

    def acknowledged(self, since: float = 0.0) -> int:
        return sum(
            r.kind == "write" and r.status == 201 and r.started > since for r in self.records
        )


def _check(
    mine: list[Record], response: httpx.Response | None, task_id: int, title: str = ""
) -> None:
    """Mark the thread's last record missed if a 200 does not show the task as written."""
    if response is None or response.status_code != 200:
        return
    data = response.json()["data"]
    if isinstance(data, list):
        found = any(t["id"] == task_id for t in data)
    else:
        found = data["id"] == task_id and data["title"] == title
    if not found:
        mine[-1] = replace(mine[-1], missed=True)


def sign_up(client: httpx.Client) -> Account:
    email = f"ha-{uuid.uuid4().hex[:12]}@example.com"
    body = {"email": email, "password": PASSWORD, "name": "HA User"}
    registered = client.post("/api/v1/auth/register", json=body)
    assert registered.status_code == 201, registered.text
    logged_in = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert logged_in.status_code == 200, logged_in.text
    data = logged_in.json()["data"]
    return Account(data["user"]["id"], {"Authorization": f"Bearer {data['token']}"})
