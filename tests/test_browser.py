"""The docs pages in a real browser: Chromium, driven by tests/browser/docs.mjs.

Swagger UI's "Try it out" works on the first click, with the values the page fills in, and
its "Authorize" takes a personal access token made there; ReDoc
renders every operation; neither page asks anything of a host other than this server.
Screenshots go to reports/browser/. Without Chromium (`make browser` installs it) or the node
tools these tests skip, saying why; under CI=true they fail instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from taskapi.resources import load_spec
from tests.test_spec import VERBS

ROOT = Path(__file__).resolve().parent.parent
DRIVER = ROOT / "tests" / "browser" / "docs.mjs"
REPORTS = ROOT / "reports" / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
pytestmark = [pytest.mark.live, pytest.mark.browser]


def _missing() -> str | None:
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (`make browser` installs Debian's chromium)"
    if shutil.which("node") is None:
        return "no node on PATH (Node.js 20+ drives the browser)"
    if not (ROOT / "node_modules" / "playwright-core").is_dir():
        return "playwright-core is not installed (`make browser` runs npm ci)"
    return None


@pytest.fixture(scope="session")
def browser() -> str:
    """The Chromium to drive, or a skip (a failure under CI=true) naming what is missing."""
    problem = _missing()
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem + " (CI=true requires the browser tests)")
        pytest.skip(problem)
    return CHROMIUM


def drive(browser: str, page: str, base: str, screenshot: Path) -> dict:
    """What the page made and showed (see tests/browser/docs.mjs)."""
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["node", str(DRIVER), page, base, str(screenshot)],
        cwd=ROOT,
        env={**os.environ, "CHROMIUM": browser},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{page} could not be driven:\n{result.stderr}"
    assert screenshot.stat().st_size > 0
    shown: dict = json.loads(result.stdout)
    return shown


def assert_offline(shown: dict, base: str) -> None:
    """Every request went to this server; no CSP violation, script error or console error."""
    outside = [url for url in shown["requests"] if not url.startswith((f"{base}/", "blob:"))]
    assert outside == [], f"requests that left the server: {outside}"
    assert shown["blocked"] == []
    assert shown["violations"] == []
    assert shown["errors"] == []


def test_swagger_ui_try_it_out_works_on_the_first_click(browser, private_live_server, backend):
    shown = drive(
        browser, "swagger-ui", private_live_server, REPORTS / f"swagger-ui-{backend.name}.png"
    )
    # Chromium logs the one refusal the page is driven into (a write with a read-only token).
    refusal = "Failed to load resource: the server responded with a status of 403 (Forbidden)"
    assert shown["errors"].count(refusal) == 1
    shown["errors"].remove(refusal)
    assert_offline(shown, private_live_server)
    assert shown["servers"] == ["/ - This server"]
    assert shown["registered"]["status"] == 201, shown["registered"]
    assert shown["login"]["status"] == 200
    assert shown["created"]["status"] == 201, shown["created"]
    listed = shown["listed"]
    assert listed["status"] == 200, listed
    # Only paging and ordering were filled in, so the task just created is in the list.
    assert set(parse_qs(urlsplit(listed["url"]).query)) <= {"page", "limit", "sort"}
    assert shown["created"]["body"]["data"]["id"] in [t["id"] for t in listed["body"]["data"]]
    # Authorized with a personal access token created through "Try it out": it reads, and its
    # scopes (the example's `tasks:read`) keep it from writing.
    assert shown["personalToken"] == {"status": 201, "scopes": ["tasks:read"]}
    with_token = shown["listedWithToken"]
    assert with_token["status"] == 200, with_token
    assert with_token["body"]["data"] == listed["body"]["data"]
    assert shown["createdWithToken"]["status"] == 403, shown["createdWithToken"]
    assert shown["createdWithToken"]["body"]["code"] == "insufficient_scope"


def test_redoc_renders_every_operation_offline(browser, private_live_server, backend):
    shown = drive(browser, "redoc", private_live_server, REPORTS / f"redoc-{backend.name}.png")
    assert_offline(shown, private_live_server)
    assert shown["title"].startswith(load_spec()["info"]["title"])
    expected = sorted(
        (operation["operationId"], method.upper(), path)
        for path, item in load_spec()["paths"].items()
        for method, operation in item.items()
        if method in VERBS
    )
    rendered = sorted((o["operationId"], o["method"], o["path"]) for o in shown["operations"])
    assert rendered == expected
