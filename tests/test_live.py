"""A real `taskapi serve` process, on each database: what clients and the README see."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSWORD, assert_problem

README = Path(__file__).resolve().parent.parent / "README.md"
pytestmark = pytest.mark.live


def readme_walkthrough() -> list[str]:
    """The shell blocks of the README's walkthrough section, in order."""
    section = README.read_text().split("## Walkthrough", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def json_documents(text: str) -> list[dict]:
    decoder, documents, index = json.JSONDecoder(), [], 0
    while index < len(text):
        if text[index].isspace():
            index += 1
            continue
        document, index = decoder.raw_decode(text, index)
        documents.append(document)
    return documents


needs_curl_and_jq = pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("jq")), reason="needs curl and jq"
)


def run_as_pasted(blocks: list[str], base_url: str) -> str:
    """Run README shell blocks against `base_url` as a strict bash script; its output."""
    script = "\n".join(blocks).replace("http://localhost:8080", base_url)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@needs_curl_and_jq
def test_readme_walkthrough_works_as_pasted(live_server):
    output = run_as_pasted(readme_walkthrough()[:1], live_server)
    health, registered, second, listed, updated, fetched, deleted = json_documents(output)
    assert health["status"] == "healthy"
    assert registered["data"]["email"] == "jane@example.com"
    assert second["data"]["priority"] == "low"
    assert [t["title"] for t in listed["data"]] == ["Write the report"]
    assert listed["meta"] == {
        "page": 1,
        "limit": 10,
        "total_count": 1,
        "total_pages": 1,
        "next_cursor": None,
    }
    assert updated["data"]["status"] == "completed"
    assert fetched == updated
    assert deleted == {"success": True, "data": "Task deleted successfully"}


@needs_curl_and_jq
def test_readme_examples_beyond_the_seed_work_as_pasted(live_server):
    blocks = readme_walkthrough()
    assert len(blocks) > 1
    out = run_as_pasted(blocks, live_server).lower()
    assert out.count("idempotent-replayed: true") == 1
    assert '"name": "jane q. doe"' in out
    assert '"status": "in_progress"' in out
    assert "\n204\n" in out  # logout
    assert "\n200\n" in out  # If-None-Match with the ETag from before the PATCH
    assert "\n2\n" in out  # the batch


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
