"""The Docker image's steps, without Docker: what the Dockerfile builds must migrate and serve.

The wheel and its dependencies, the tracing extra's included, are built and installed as the
Dockerfile does it (`pip wheel`, then a venv without pip that `pip --python` fills from those
wheels alone), the process runs outside the checkout with the image's environment, migrates a
fresh database twice, serves, answers /ready and an authenticated round trip, and exits
cleanly on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

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


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin directory of a venv laid out like the image's /opt/taskapi."""
    build = tmp_path_factory.mktemp("image")
    wheels, venv = build / "wheels", build / "venv"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    run([*pip, "wheel", "--quiet", "--wheel-dir", wheels, f"{ROOT}[tracing]"])
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    run([*pip, "--python", venv / "bin" / "python", "install", "--quiet", "--no-index",
         *sorted(wheels.glob("*.whl"))])  # fmt: skip
    assert not (venv / "bin" / "pip").exists()
    return venv / "bin"


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
