"""The Docker image's steps, without Docker: what the Dockerfile builds must migrate and serve.

The Dockerfile's own install step (its `uv sync` line, with its `UV_*` environment, read from
the file) fills a venv; it must hold exactly what uv.lock pins for the runtime set and the
extras that line names (tracing), and no pip. The
process then runs outside the checkout with the image's environment, migrates a fresh database
twice, serves, answers /ready and an authenticated round trip, and exits cleanly on SIGTERM.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from packaging.markers import Marker

from taskapi.config import env_names
from tests.conftest import JWT_SECRET
from tests.serving import free_port, wait_until_serving

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.live

SHUTDOWN_DRAIN_SECONDS = 1
SHUTDOWN_GRACE_SECONDS = 20


def run(command: list[str | Path], **kwargs: object) -> str:
    result = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, timeout=120, **kwargs
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


DOCKERFILE = (ROOT / "Dockerfile").read_text()
UV = ROOT / "build" / "uv" / "bin" / "uv"


def dockerfile_install() -> tuple[list[str], dict[str, str]]:
    """The Dockerfile's `uv sync` command and the `UV_*` variables its build stage sets."""
    command = re.search(r"RUN (uv sync [^\\&\n]*)", DOCKERFILE)
    assert command, "the Dockerfile installs with `uv sync`"
    env = dict(re.findall(r"(UV_[A-Z_]+)=(\S+)", DOCKERFILE))
    return shlex.split(command[1]), env


def locked_runtime_set(extras: list[str]) -> dict[str, str]:
    """name -> version of every package uv.lock pins for the runtime set and `extras`."""
    chosen = [option for extra in extras for option in ("--extra", extra)]
    exported = run([UV, "export", "--frozen", "--no-emit-project", "--no-hashes", "--quiet",
                    *chosen, "--format", "requirements.txt"], cwd=ROOT)  # fmt: skip
    # Markers pick the entries for this interpreter, the image's Python version.
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;]+)(?: ; (.+))?$", exported, re.MULTILINE)
    return {
        normalize(name): version
        for name, version, marker in pins
        if not marker or Marker(marker).evaluate()
    }


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin directory of a venv installed as the Dockerfile installs /opt/taskapi."""
    venv = tmp_path_factory.mktemp("image") / "venv"
    command, uv_env = dockerfile_install()
    assert uv_env["UV_PROJECT_ENVIRONMENT"] == "/opt/taskapi"
    env = {**os.environ, **uv_env, "UV_PROJECT_ENVIRONMENT": str(venv)}
    run([UV, *command[1:], "--python", sys.executable], cwd=ROOT, env=env)
    assert not (venv / "bin" / "pip").exists()
    return venv / "bin"


def test_the_dockerfile_uses_the_makefiles_uv():
    version = re.search(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert version
    assert f"uv=={version[1]}" in DOCKERFILE


def test_the_image_holds_exactly_the_locked_runtime_set(image: Path):
    listing = (
        "import importlib.metadata as m, json;"
        "print(json.dumps({d.name: d.version for d in m.distributions()}))"
    )
    installed = json.loads(run([image / "python", "-c", listing]))
    installed = {normalize(name): version for name, version in installed.items()}
    assert installed.pop("taskapi")
    command, _ = dockerfile_install()
    extras = [command[i + 1] for i, option in enumerate(command) if option == "--extra"]
    assert extras == ["tracing"]
    assert installed == locked_runtime_set(extras)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """A URL of an empty database, not yet migrated."""
    if request.param == "sqlite":
        return lambda: f"sqlite:///{tmp_path / 'fresh.db'}"
    create: Callable[[], str] = request.getfixturevalue("create_postgres_database")
    return create


def image_environment(bin_dir: Path, database_url: str, port: int) -> dict[str, str]:
    """The image's ENV, and what compose or the ConfigMap sets, on loopback ports of our own."""
    inherited = {k: v for k, v in os.environ.items() if k not in env_names()}
    return {
        **inherited,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "TASKAPI_ENV": "production",
        "JWT_SECRET": JWT_SECRET,
        "DATABASE_URL": database_url,
        "SERVER_HOST": "127.0.0.1",
        "SERVER_PORT": str(port),
        "METRICS_PORT": str(free_port()),
        "WEB_CONCURRENCY": "2",
        "DB_MAX_OPEN_CONNS": "10",
        "DB_MAX_IDLE_CONNS": "10",
        "LOG_LEVEL": "warning",
        "SHUTDOWN_DRAIN_SECONDS": str(SHUTDOWN_DRAIN_SECONDS),
        "SHUTDOWN_GRACE_SECONDS": str(SHUTDOWN_GRACE_SECONDS),
    }


def test_the_installed_wheel_migrates_serves_and_stops_cleanly(
    image: Path, fresh_database: Callable[[], str], tmp_path: Path
):
    port = free_port()
    env = image_environment(image, fresh_database(), port)
    # Outside the checkout: the spec and the migrations must come from the wheel.
    workdir = tmp_path / "app"
    workdir.mkdir()
    for _ in range(2):  # the second run finds nothing to do
        run([image / "taskapi", "db", "upgrade"], env=env, cwd=workdir)
    assert "(head)" in run([image / "taskapi", "db", "current"], env=env, cwd=workdir)

    log = tmp_path / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [image / "taskapi", "serve"], env=env, cwd=workdir, stdout=out, stderr=out
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base, server, log, timeout=30)
        wait_until_serving(base, server, log, timeout=10, path="/ready")
        with httpx.Client(base_url=base, timeout=10) as http:
            account = {"email": "image@example.com", "password": "image-password", "name": "Im"}
            assert http.post("/api/v1/auth/register", json=account).status_code == 201
            login = http.post("/api/v1/auth/login", json=account)
            assert login.status_code == 200
            headers = {"Authorization": f"Bearer {login.json()['data']['token']}"}
            created = http.post("/api/v1/tasks", json={"title": "from the image"}, headers=headers)
            assert created.status_code == 201
            listed = http.get("/api/v1/tasks", headers=headers).json()
            assert [t["title"] for t in listed["data"]] == ["from the image"]
    finally:
        stopping = time.monotonic()
        server.send_signal(signal.SIGTERM)
        try:
            returncode = server.wait(timeout=SHUTDOWN_DRAIN_SECONDS + SHUTDOWN_GRACE_SECONDS + 5)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    took = time.monotonic() - stopping
    output = log.read_text()
    assert returncode == 0, output
    assert took < SHUTDOWN_DRAIN_SECONDS + SHUTDOWN_GRACE_SECONDS, output
    assert "Traceback" not in output, output
