"""A real `taskapi serve` process, on each database: what clients see (the README's own blocks
run in tests/test_readme.py)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import PASSWORD, assert_problem

pytestmark = pytest.mark.live


def test_live_server_speaks_the_seed_protocol(live_server):
    with httpx.Client(base_url=live_server, timeout=10) as http:
        health = http.get("/health")
        assert health.json()["status"] == "healthy"
        assert "server" not in health.headers
        email = f"live-{time.monotonic_ns()}@example.com"
        body = {"email": email, "password": PASSWORD, "name": "Live"}
        assert http.post("/api/v1/auth/register", json=body).status_code == 201
        token = http.post("/api/v1/auth/login", json=body).json()["data"]["token"]
        headers = {"Authorization": f"Bearer {token}"}
        created = http.post("/api/v1/tasks", json={"title": "live"}, headers=headers)
        assert created.status_code == 201
        assert http.get(created.headers["location"], headers=headers).status_code == 200
        assert_problem(http.get("/api/v1/tasks"), 401, "authentication_required")


def test_concurrent_duplicate_registrations_never_500(live_server):
    email = f"race-{time.monotonic_ns()}@example.com"

    def register(i: int) -> httpx.Response:
        body = {"email": email.upper() if i % 2 else email, "password": PASSWORD, "name": "Race"}
        return httpx.post(f"{live_server}/api/v1/auth/register", json=body, timeout=30)

    with ThreadPoolExecutor(max_workers=25) as pool:
        responses = list(pool.map(register, range(50)))
    (created,) = (r for r in responses if r.status_code == 201)
    for taken in (r for r in responses if r is not created):
        assert_problem(taken, 409, "email_taken")
    # The one account that won is the one that logs in.
    login = httpx.post(
        f"{live_server}/api/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=30
    )
    assert login.json()["data"]["user"] == created.json()["data"]


def test_concurrent_creates_all_land(live_server):
    with httpx.Client(base_url=live_server, timeout=30) as http:
        body = {
            "email": f"w-{time.monotonic_ns()}@example.com",
            "password": PASSWORD,
            "name": "Writer",
        }
        http.post("/api/v1/auth/register", json=body)
        token = http.post("/api/v1/auth/login", json=body).json()["data"]["token"]
    headers = {"Authorization": f"Bearer {token}"}

    def create(i: int) -> int:
        return httpx.post(
            f"{live_server}/api/v1/tasks", json={"title": f"t{i}"}, headers=headers, timeout=30
        ).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(create, range(100)))
    assert statuses == [201] * 100
    listed = httpx.get(f"{live_server}/api/v1/tasks", headers=headers, timeout=10).json()
    assert listed["meta"]["total_count"] == 100
