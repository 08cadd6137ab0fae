"""The published examples (examples/) type-check and do what they say against a live server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.live


def run(command: list[str | Path], **kwargs) -> str:
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False, **kwargs
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def assert_walkthrough(output: str) -> None:
    """Both examples print the same steps, in the same words."""
    lines = output.splitlines()
    assert len(lines) == 12, output
    assert re.fullmatch(r"registered example-[0-9a-f]{8}@example\.com", lines[0]), output
    created = re.fullmatch(r"created task (\d+): .*", lines[2])
    assert created, output
    task = created[1]
    assert lines[1:] == [
        "logged in, token expires in 900 s",
        f"created task {task}: Write the report (high, pending)",
        "created 2 tasks in one batch",
        "listed 3 tasks, highest priority first: Write the report, Build, Plan",
        f"updated task {task}: completed, due 2026-12-31 17:00 UTC",
        f"deleted task {task}: Task deleted successfully",
        f"task {task} is gone: 404 Task not found",
        "synced copy: Build, Plan; 1 deleted since the first sync; same as the list",
        'created personal access token "example script" with scopes tasks:read',
        "with the token: listed 2 tasks; a write is refused: 403 insufficient_scope",
        "revoked the token: 401 invalid_token afterwards",
    ]


@pytest.fixture(scope="session")
def sdk_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding `task_api_client`, generated from the spec as `make client` does."""
    out = tmp_path_factory.mktemp("example-sdk")
    run(
        [
            BIN / "openapi-python-client",
            "generate",
            "--path",
            ROOT / "openapi" / "openapi.yaml",
            "--meta",
            "none",
            "--output-path",
            out / "task_api_client",
        ],
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
    )
    return out


def test_python_example_type_checks_against_the_generated_sdk(sdk_path):
    # --follow-imports silent: the generated package's own typing is not ours to fix.
    command = [BIN / "mypy", "--strict", "--follow-imports", "silent", "--no-incremental"]
    run([*command, EXAMPLES / "python_sdk.py"], env={**os.environ, "MYPYPATH": str(sdk_path)})


def test_python_example_runs_against_a_live_server(sdk_path, live_server):
    env = {**os.environ, "PYTHONPATH": str(sdk_path)}
    assert_walkthrough(run([sys.executable, EXAMPLES / "python_sdk.py", live_server], env=env))


@pytest.fixture(scope="session")
def typescript_example() -> Path:
    """examples/typescript_fetch.ts type-checked against fresh types and compiled for node."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if not (npm and node and (ROOT / "node_modules" / ".bin" / "tsc").exists()):
        pytest.skip("needs Node.js and the npm tools (`npm ci`; make examples installs them)")
    run([npm, "run", "--silent", "types"], cwd=ROOT)
    run([npm, "run", "--silent", "examples"], cwd=ROOT)
    return ROOT / "build" / "examples" / "typescript_fetch.js"


def test_typescript_example_runs_against_a_live_server(typescript_example, live_server):
    node = shutil.which("node")
    assert node
    assert_walkthrough(run([node, typescript_example, live_server], cwd=ROOT))
