"""An SDK generated from the spec (openapi-python-client) drives the README walkthrough."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PASSWORD

SPEC = Path(__file__).resolve().parent.parent / "openapi" / "openapi.yaml"
pytestmark = pytest.mark.live


def generate(source: list[str], out: Path) -> Path:
    """Runs openapi-python-client on `source` (--path FILE or --url URL); the package's path."""
    bin_dir = Path(sys.executable).parent
    package = out / "taskapi_client"
    command = [bin_dir / "openapi-python-client", "generate", *source, "--meta", "none"]
    result = subprocess.run(
        [*command, "--output-path", package],
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout, result.stdout
    return package


def sources(package: Path) -> dict[str, str]:
    return {str(f.relative_to(package)): f.read_text() for f in sorted(package.rglob("*.py"))}


@pytest.fixture(scope="session")
def sdk_path(tmp_path_factory):
    return generate(["--path", str(SPEC)], tmp_path_factory.mktemp("sdk"))


@pytest.fixture(scope="session")
def sdk(sdk_path):
    """The generated package `taskapi_client`, imported from a temporary directory."""
    sys.path.insert(0, str(sdk_path.parent))
    try:
        yield importlib.import_module("taskapi_client")
    finally:
        sys.path.remove(str(sdk_path.parent))


@pytest.mark.parametrize("document", ["openapi.json", "openapi.yaml"])
def test_a_client_generated_from_the_served_spec_is_the_one_from_the_file(
    sdk_path, live_server, tmp_path, document
):
    served = generate(["--url", f"{live_server}/{document}"], tmp_path)
    models = sorted(p.stem for p in (served / "models").glob("*.py") if p.stem != "__init__")
    assert "task" in models
    assert "create_task_response_401_errors_item" not in models
    assert models == sorted(
        p.stem for p in (sdk_path / "models").glob("*.py") if p.stem != "__init__"
    )
    assert sources(served) == sources(sdk_path)


def test_sdk_names_read_well(sdk):
    """Sort values by name, and one-task and batch creates that do not look alike."""
    from taskapi_client.api import tasks
    from taskapi_client.models import ListTasksSort

    modules = {module.name for module in pkgutil.iter_modules(tasks.__path__)}
    assert {"create_task", "create_task_batch"} <= modules
    assert "create_tasks" not in modules

    assert ListTasksSort.CREATED_AT_DESC == "-created_at"
    assert ListTasksSort.PRIORITY_DESC == "-priority"
    assert ListTasksSort.TITLE == "title"
    assert not [name for name in ListTasksSort.__members__ if name.startswith("VALUE_")]


def test_walkthrough_through_the_generated_client(sdk, live_server):
    from taskapi_client import AuthenticatedClient, Client

    with Client(base_url=live_server) as public:
        token = _sign_up(public)
    with AuthenticatedClient(base_url=live_server, token=token) as client:
        _manage_tasks(client)


def _sign_up(public):
    from taskapi_client.api.auth import login, register
    from taskapi_client.api.health import get_health
    from taskapi_client.models import LoginRequest, Problem, RegisterRequest

    assert get_health.sync(client=public).status.value == "healthy"

    email = f"sdk-{os.urandom(4).hex()}@example.com"
    created_user = register.sync(
        client=public, body=RegisterRequest(email=email, password=PASSWORD, name="Sdk User")
    )
    assert created_user.data.email == email
    taken = register.sync_detailed(
        client=public, body=RegisterRequest(email=email, password=PASSWORD, name="Sdk User")
    )
    assert taken.status_code == 409
    assert isinstance(taken.parsed, Problem)
    assert taken.parsed.error == "Email already registered"

    return login.sync(client=public, body=LoginRequest(email=email, password=PASSWORD)).data.token


def _manage_tasks(client):
    from taskapi_client.api.tasks import create_task, delete_task, get_task, list_tasks, update_task
    from taskapi_client.models import Problem, TaskInput, TaskPriority, TaskStatus

    response = create_task.sync_detailed(
        client=client,
        body=TaskInput(title="Write the report", priority=TaskPriority.HIGH),
    )
    assert response.status_code == 201
    task = response.parsed.data
    assert response.headers["location"] == f"/api/v1/tasks/{task.id}"
    assert task.status is TaskStatus.PENDING
    create_task.sync(client=client, body=TaskInput(title="Buy milk", priority=TaskPriority.LOW))

    page = list_tasks.sync(client=client, status=TaskStatus.PENDING, priority=TaskPriority.HIGH)
    assert [t.id for t in page.data] == [task.id]
    assert page.meta.total_count == 1

    assert get_task.sync(client=client, id=task.id).data.title == "Write the report"
    updated = update_task.sync(
        client=client,
        id=task.id,
        body=TaskInput(title="Write the report", status=TaskStatus.COMPLETED),
    ).data
    assert updated.status is TaskStatus.COMPLETED
    assert updated.updated_at > task.updated_at

    assert delete_task.sync(client=client, id=task.id).data == "Task deleted successfully"
    gone = get_task.sync_detailed(client=client, id=task.id)
    assert gone.status_code == 404
    assert isinstance(gone.parsed, Problem)
