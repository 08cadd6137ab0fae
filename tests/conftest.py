"""Fixtures: every test runs once on SQLite and once on a real PostgreSQL.

SQLite: a migrated template file per run, copied for each test.
PostgreSQL: a fresh database per run (so runs never interfere), migrated once and truncated
before each test. TEST_DATABASE_URL names the server; without one reachable the PostgreSQL
half skips, unless CI=true, where it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from taskapi.app import create_app
from taskapi.config import Settings
from taskapi.storage import migrate
from taskapi.web.context import Services
from tests.serving import free_port, wait_until_serving

DEFAULT_PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
JWT_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"
PASSWORD = "password123"
GENEROUS_LIMIT = "100000/minute"


def base_settings(database_url: str) -> Settings:
    return Settings(
        jwt_secret=JWT_SECRET,
        database_url=database_url,
        bcrypt_rounds=4,
        # Budgets that a test's burst of logins never exhausts; tests/test_rate_limits.py sets
        # real ones. The limiter still runs on every request.
        rate_limit_auth=GENEROUS_LIMIT,
        rate_limit_auth_email=GENEROUS_LIMIT,
        rate_limit_login_slowdown=GENEROUS_LIMIT,
        rate_limit_default=GENEROUS_LIMIT,
        # Cost-4 hashes take a millisecond: races of many registrations queue, not 503.
        # tests/test_admission.py tests the real queue.
        bcrypt_queue=100,
        validate_responses=True,
    )


@dataclass
class Backend:
    name: str
    url: str
    template: Path | None = None

    def fresh_url(self, tmp_path: Path) -> str:
        """A database URL holding the migrated, empty schema for one test."""
        if self.template is not None:
            target = tmp_path / "taskapi.db"
            shutil.copyfile(self.template, target)
            return f"sqlite:///{target}"
        engine = sa.create_engine(self.url, poolclass=sa.NullPool)
        with engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE users, tasks RESTART IDENTITY CASCADE"))
        engine.dispose()
        return self.url


def _postgres_server_url() -> str:
    return os.environ.get("TEST_DATABASE_URL", DEFAULT_PG_URL)


def _unreachable(url: str) -> str | None:
    engine = sa.create_engine(url, poolclass=sa.NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return None
    except sa.exc.OperationalError as exc:
        return str(exc.orig).strip().splitlines()[0]
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """A PostgreSQL server URL, or a skip (a failure under CI=true) naming why there is none."""
    url = _postgres_server_url()
    problem = _unreachable(url)
    if problem:
        message = f"PostgreSQL at {make_url(url).render_as_string()} is unreachable: {problem}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true requires it; set TEST_DATABASE_URL)")
        pytest.skip(message + " (set TEST_DATABASE_URL to run these tests)")
    return url


@pytest.fixture(scope="session")
def create_postgres_database(postgres_server: str) -> Iterator[Callable[[], str]]:
    """Makes databases of their own for this run on the server; drops them at the end."""
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    created: list[str] = []

    def create() -> str:
        name = f"taskapi_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return make_url(postgres_server).set(database=name).render_as_string(hide_password=False)

    yield create
    with admin.connect() as conn:
        for name in created:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(
    scope="session",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    if request.param == "sqlite":
        template = tmp_path_factory.mktemp("sqlite") / "template.db"
        url = f"sqlite:///{template}"
        migrate.upgrade(base_settings(url))
        return Backend("sqlite", url, template)
    create: Callable[[], str] = request.getfixturevalue("create_postgres_database")
    url = create()
    migrate.upgrade(base_settings(url))
    return Backend("postgresql", url)


@pytest.fixture
def database_url(backend: Backend, tmp_path: Path) -> str:
    return backend.fresh_url(tmp_path)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return base_settings(database_url)


def services_of(app: Any) -> Services:
    """What an app built by create_app runs on: its settings, database, metrics..."""
    services: Services = app.services
    return services


@pytest.fixture
def make_app() -> Iterator[Callable[..., Any]]:
    """create_app with settings overrides; every app's engine is disposed afterwards."""
    apps: list[Any] = []

    def make(settings: Settings, **overrides: Any) -> Any:
        app = create_app(replace(settings, **overrides))
        apps.append(app)
        return app

    yield make
    for app in apps:
        services_of(app).close()


@pytest.fixture
def app(make_app: Callable[..., Any], settings: Settings) -> Any:
    return make_app(settings)


@pytest.fixture
def services(app: Any) -> Services:
    return services_of(app)


@pytest.fixture
def client(app: Any) -> Iterator[Any]:
    with app.test_client() as test_client:
        yield test_client


class Api:
    """Shortcuts for the calls most tests make first."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._count = 0

    def register(self, email: str | None = None, password: str = PASSWORD, **extra: Any) -> Any:
        self._count += 1
        body = {"email": email or f"user{self._count}@example.com", "password": password}
        body["name"] = extra.pop("name", "Test User")
        return self.client.post("/api/v1/auth/register", json={**body, **extra})

    def login(self, email: str, password: str = PASSWORD) -> Any:
        return self.client.post("/api/v1/auth/login", json={"email": email, "password": password})

    def user(self, email: str | None = None) -> dict[str, str]:
        """Register and log in a new user; returns its Authorization header."""
        response = self.register(email)
        assert response.status_code == 201, response.text
        token = self.login(response.json()["data"]["email"]).json()["data"]["token"]
        return {"Authorization": f"Bearer {token}"}

    def create_task(self, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
        response = self.client.post(
            "/api/v1/tasks", json={"title": "A task", **fields}, headers=headers
        )
        assert response.status_code == 201, response.text
        task: dict[str, Any] = response.json()["data"]
        return task


@pytest.fixture
def api(client: Any) -> Api:
    return Api(client)


@pytest.fixture
def auth(api: Api) -> dict[str, str]:
    """The Authorization header of a fresh user."""
    return api.user()


def assert_problem(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The body of an RFC 9457 problem response of `status` (and `code`), checked in full."""
    from taskapi.web.problem_types import BY_CODE

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert BY_CODE[body["code"]].status == status
    assert body["type"] == f"/problems/{body['code']}"
    if code is not None:
        assert body["code"] == code
    assert body["title"]
    assert body["detail"]
    assert body["success"] is False
    assert body["error"] == body["detail"]
    for leak in ("Traceback", "sqlalchemy", "psycopg", 'File "', "password_hash"):
        assert leak not in response.text
    return body


@contextmanager
def serving(database_url: str, workdir: Path, **settings: str) -> Iterator[str]:
    """`taskapi serve` (2 workers) on `database_url`, run in `workdir`, with `settings` as
    environment variables; yields its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "JWT_SECRET": JWT_SECRET,
        "BCRYPT_ROUNDS": "4",
        "RATE_LIMIT_AUTH": GENEROUS_LIMIT,
        "RATE_LIMIT_AUTH_EMAIL": GENEROUS_LIMIT,
        "RATE_LIMIT_LOGIN_SLOWDOWN": GENEROUS_LIMIT,
        "RATE_LIMIT_DEFAULT": GENEROUS_LIMIT,
        "BCRYPT_QUEUE": "100",
        # Short, so the test of a body that never arrives is quick.
        "REQUEST_BODY_TIMEOUT": "2",
        "VALIDATE_RESPONSES": "true",
        "LOG_LEVEL": "warning",
        **settings,
    }
    log = (workdir / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "taskapi", "serve", "--port", str(port), "--workers", "2"],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base, process, workdir / "server.log", timeout=30)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture(scope="session")
def live_server(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of `taskapi serve` (2 workers) on a database of its own."""
    workdir = tmp_path_factory.mktemp(f"live-{backend.name}")
    if backend.template is not None:
        shutil.copyfile(backend.template, workdir / "taskapi.db")
        url = f"sqlite:///{workdir / 'taskapi.db'}"
    else:
        url = Backend("postgresql", backend.url).fresh_url(workdir)
    with serving(url, workdir) as base:
        yield base


@pytest.fixture(scope="session")
def private_live_server(
    backend: Backend, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[str]:
    """Like live_server, on a database no other test writes to (the browser tests sign up
    with the spec's own example account, which the README walkthrough also uses)."""
    workdir = tmp_path_factory.mktemp(f"private-live-{backend.name}")
    if backend.template is not None:
        shutil.copyfile(backend.template, workdir / "taskapi.db")
        url = f"sqlite:///{workdir / 'taskapi.db'}"
    else:
        url = request.getfixturevalue("create_postgres_database")()
        migrate.upgrade(base_settings(url))
    with serving(url, workdir) as base:
        yield base
