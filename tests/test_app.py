"""The app factory, the settings, and the `taskapi` command."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from connexion.middleware import ConnexionMiddleware
from connexion.middleware.response_validation import ResponseValidationMiddleware
from connexion.middleware.swagger_ui import SwaggerUIMiddleware

from taskapi.app import create_app
from taskapi.cli import main
from taskapi.config import DEV_SECRET_FILE, ConfigError, Settings, markdown_table
from taskapi.storage import migrate
from tests.conftest import JWT_SECRET, base_settings


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults_are_the_embedded_sqlite_database_in_development(workdir):
    settings = Settings.from_env({})
    assert settings.env == "development"
    assert settings.database_url == "sqlite:///taskapi.db"
    assert settings.port == 8080
    assert settings.bcrypt_rounds == 12
    assert (settings.db_max_open_conns, settings.db_max_idle_conns) == (25, 10)
    assert settings.db_conn_max_lifetime == 300


def test_development_secret_is_generated_once_and_kept(workdir):
    first = Settings.from_env({}).jwt_secret
    assert len(first) >= 32
    assert (workdir / DEV_SECRET_FILE).stat().st_mode & 0o777 == 0o600
    assert Settings.from_env({}).jwt_secret == first


def test_production_refuses_to_start_without_a_secret(workdir):
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        Settings.from_env({"TASKAPI_ENV": "production"})
    assert not (workdir / DEV_SECRET_FILE).exists()


def test_short_secrets_are_refused(workdir):
    with pytest.raises(ConfigError, match="JWT_SECRET must be at least 32 bytes"):
        Settings.from_env({"TASKAPI_ENV": "production", "JWT_SECRET": "too-short"})


def test_production_refuses_test_bcrypt_costs(workdir):
    with pytest.raises(ConfigError, match="BCRYPT_ROUNDS"):
        Settings.from_env(
            {"TASKAPI_ENV": "production", "JWT_SECRET": JWT_SECRET, "BCRYPT_ROUNDS": "4"}
        )


def test_seed_database_variables_build_a_postgresql_url(workdir):
    settings = Settings.from_env(
        {"DB_HOST": "db", "DB_USER": "app", "DB_PASSWORD": "p@ss:word", "DB_NAME": "tasks"}
    )
    assert settings.database_url == (
        "postgresql+psycopg2://app:p%40ss%3Aword@db:5432/tasks?sslmode=disable"
    )


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgres://u@h/d", "postgresql+psycopg2://u@h/d"),
        ("postgresql://u@h/d", "postgresql+psycopg2://u@h/d"),
        ("postgresql+psycopg2://u@h/d", "postgresql+psycopg2://u@h/d"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_database_url_wins_and_is_normalised(workdir, given, used):
    settings = Settings.from_env({"DATABASE_URL": given, "DB_HOST": "ignored"})
    assert settings.database_url == used


def test_dotenv_is_read_and_the_environment_wins(workdir):
    (workdir / ".env").write_text("SERVER_PORT=9000\nLOG_LEVEL=debug\n")
    settings = Settings.from_env({"SERVER_PORT": "9100"})
    assert settings.port == 9100
    assert settings.log_level == "debug"


def test_bad_numbers_name_their_variable(workdir):
    with pytest.raises(ConfigError, match="SERVER_PORT must be an integer"):
        Settings.from_env({"SERVER_PORT": "eighty"})


def test_bounds_and_choices_name_their_variable(workdir):
    with pytest.raises(ConfigError, match="SERVER_PORT must be at most 65535, got 70000"):
        Settings.from_env({"SERVER_PORT": "70000"})
    with pytest.raises(ConfigError, match="LOG_FORMAT must be one of text, json, got 'xml'"):
        Settings.from_env({"LOG_FORMAT": "xml"})
    with pytest.raises(ConfigError, match="RATE_LIMIT_ENABLED must be true or false"):
        Settings.from_env({"RATE_LIMIT_ENABLED": "maybe"})


def test_production_changes_only_the_defaults_declared_for_it(workdir):
    development = Settings.from_env({"JWT_SECRET": JWT_SECRET})
    production = Settings.from_env({"TASKAPI_ENV": "production", "JWT_SECRET": JWT_SECRET})
    assert (development.host, production.host) == ("127.0.0.1", "0.0.0.0")  # noqa: S104
    assert (development.log_format, production.log_format) == ("text", "json")
    assert (development.validate_responses, production.validate_responses) == (True, False)
    assert production.port == development.port == 8080
    explicit = Settings.from_env(
        {"TASKAPI_ENV": "production", "JWT_SECRET": JWT_SECRET, "LOG_FORMAT": "text"}
    )
    assert explicit.log_format == "text"


def test_readme_configuration_table_is_the_declared_settings():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    table = "\n".join(line for line in section.splitlines() if line.startswith("|"))
    assert table == markdown_table(), "regenerate it with: taskapi settings --markdown"


def test_cli_prints_the_settings_in_effect_without_the_secret(workdir, monkeypatch, capsys):
    monkeypatch.setenv("JWT_SECRET", JWT_SECRET)
    monkeypatch.setenv("SERVER_PORT", "9001")
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    assert "SERVER_PORT=9001\n" in out
    assert "JWT_SECRET=(hidden)\n" in out
    assert JWT_SECRET not in out


def test_cors_origins_are_a_comma_separated_list(workdir):
    settings = Settings.from_env({"CORS_ALLOWED_ORIGINS": "https://a.example, https://b.example"})
    assert settings.cors_allowed_origins == ("https://a.example", "https://b.example")


def test_each_app_has_its_own_database(make_app, tmp_path):
    clients = []
    for name in ("one", "two"):
        settings = base_settings(f"sqlite:///{tmp_path / name}.db")
        migrate.upgrade(settings)
        clients.append(make_app(settings).test_client())
    body = {"email": "jane@example.com", "password": "password123", "name": "Jane"}
    # The same email registers in each: neither database sees the other's accounts.
    ids = [
        client.post("/api/v1/auth/register", json=body).json()["data"]["id"] for client in clients
    ]
    assert ids == [1, 1]
    assert clients[1].post("/api/v1/auth/login", json=body).json()["data"]["user"]["id"] == 1


def test_cli_prints_the_spec(capsys):
    assert main(["openapi"]) == 0
    assert capsys.readouterr().out.startswith("openapi: 3.0.3")
    assert main(["openapi", "--json"]) == 0
    assert '"openapi": "3.0.3"' in capsys.readouterr().out


def test_cli_migrates_up_and_down(workdir, monkeypatch):
    url = f"sqlite:///{workdir / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    assert main(["db", "upgrade"]) == 0
    assert {"users", "tasks"} <= set(sa.inspect(engine).get_table_names())
    assert main(["db", "current"]) == 0
    assert main(["db", "downgrade", "base"]) == 0
    assert "tasks" not in sa.inspect(engine).get_table_names()
    engine.dispose()


def test_serve_refuses_an_insecure_production_config_in_one_line(workdir):
    result = subprocess.run(
        [sys.executable, "-m", "taskapi", "serve"],
        env={"TASKAPI_ENV": "production", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "JWT_SECRET" in result.stderr


@pytest.mark.parametrize("validate_responses", [False, True])
def test_the_stack_keeps_every_connexion_layer_that_does_something(tmp_path, validate_responses):
    settings = base_settings(f"sqlite:///{tmp_path / 'unused.db'}")
    app = create_app(replace(settings, validate_responses=validate_responses))
    stack = [getattr(m, "func", m) for m in app.middleware.middlewares]
    # taskapi/web/docs serves the spec and the pages in place of Swagger UI's layer; response
    # validation's layer only passes requests on when responses are not validated.
    left_out = (
        (SwaggerUIMiddleware,)
        if validate_responses
        else (
            SwaggerUIMiddleware,
            ResponseValidationMiddleware,
        )
    )
    kept = [m for m in ConnexionMiddleware.default_middlewares if m not in left_out]
    # Each of the others in Connexion's order, itself or a subclass of it.
    positions = [next(i for i, ours in enumerate(stack) if issubclass(ours, m)) for m in kept]
    assert positions == sorted(positions)
    assert [m for m in stack if issubclass(m, left_out)] == []


def server_environment(workdir: Path, **env: str) -> dict[str, str]:
    """A process environment with a secret, a SQLite file and `env` as its settings."""
    return {
        "PATH": "/usr/bin:/bin",
        "JWT_SECRET": JWT_SECRET,
        "DATABASE_URL": f"sqlite:///{workdir / 'unused.db'}",
        **env,
    }


def in_a_new_interpreter(script: str, workdir: Path, **env: str) -> subprocess.CompletedProcess:
    """`script` run by a fresh interpreter in `server_environment(workdir, **env)`."""
    return subprocess.run(
        [sys.executable, "-c", script],
        env=server_environment(workdir, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_a_server_process_sets_the_apps_objects_aside_from_the_garbage_collector(workdir):
    # In a process of its own: frozen objects stay frozen for the life of the process.
    script = (
        "import gc\n"
        "from taskapi.server import serving_app\n"
        "serving_app()\n"
        "print(gc.get_freeze_count(), len(gc.get_objects()))\n"
    )
    frozen, tracked = map(int, in_a_new_interpreter(script, workdir).stdout.split())
    assert frozen > 10_000
    assert tracked < frozen / 10


def test_a_server_process_starts_without_warnings(workdir):
    # Printed on every worker's start, a warning no setting can answer is noise in the logs.
    script = (
        "import sys\n"
        "sys.modules['httpx2'] = None  # a development dependency only\n"
        "from taskapi.server import serving_app\n"
        "serving_app()\n"
    )
    assert in_a_new_interpreter(script, workdir, TASKAPI_ENV="production").stderr == ""


def test_a_server_process_never_imports_the_orm(workdir):
    # SQLAlchemy's ORM is about 6 MB of every worker's memory; TaskAPI runs on its Core alone.
    env = {"BCRYPT_ROUNDS": "4", "DATABASE_URL": f"sqlite:///{workdir / 'core.db'}"}
    subprocess.run(
        [sys.executable, "-m", "taskapi", "db", "upgrade"],
        env=server_environment(workdir, **env),
        check=True,
    )
    script = (
        "import sys\n"
        "from taskapi.server import serving_app\n"
        "with serving_app().test_client() as client:\n"
        "    account = {'email': 'core@example.com', 'password': 'password123', 'name': 'Core'}\n"
        "    assert client.post('/api/v1/auth/register', json=account).status_code == 201\n"
        "    login = client.post('/api/v1/auth/login', json=account).json()['data']\n"
        "    me = {'Authorization': 'Bearer ' + login['token']}\n"
        "    task = client.post('/api/v1/tasks', json={'title': 't'}, headers=me)\n"
        "    assert task.status_code == 201\n"
        "    assert client.get('/api/v1/tasks', headers=me).status_code == 200\n"
        "    refreshed = {'refresh_token': login['refresh_token']}\n"
        "    assert client.post('/api/v1/auth/refresh', json=refreshed).status_code == 200\n"
        "print(sorted(name for name in sys.modules if name.startswith('sqlalchemy.orm')))\n"
    )
    result = in_a_new_interpreter(script, workdir, **env)
    assert result.stdout.strip() == "[]"


def test_a_server_process_loads_no_opentelemetry_while_traces_are_off(workdir):
    """Installed with the dev extras, OpenTelemetry stays out of a server whose environment
    does not ask for traces; asked, it is loaded."""
    script = (
        "import sys\n"
        "from taskapi.server import serving_app\n"
        "with serving_app().test_client() as client:\n"
        "    assert client.get('/api/v1/tasks').status_code == 401\n"
        "print(sorted(name for name in sys.modules if name.startswith('opentelemetry')))\n"
    )
    assert in_a_new_interpreter(script, workdir).stdout.strip() == "[]"
    console = in_a_new_interpreter(script, workdir, OTEL_TRACES_EXPORTER="console")
    assert "opentelemetry.sdk.trace" in console.stdout


def test_a_server_process_never_runs_the_modules_it_does_not_use(workdir):
    """requests, httpx, Starlette's test client and a2wsgi, which Connexion imports, are stood
    in for in a serving process (web/framework/deferred_imports.py); each still works when
    used."""
    script = (
        "import sys\n"
        "from taskapi.server import serving_app\n"
        "from taskapi.web.framework.deferred_imports import DEFERRED, loaded\n"
        "app = serving_app()\n"
        "print(sorted(name for name in DEFERRED if loaded(name)))\n"
        "prefixes = ('httpx.', 'requests.', 'urllib3')\n"
        "print(sorted(n for n in sys.modules if n.startswith(prefixes)))\n"
        "import requests\n"
        "print(requests.codes.ok, loaded('requests'))\n"
        "with app.test_client() as client:\n"
        "    print(client.get('/health').status_code, loaded('starlette.testclient'))\n"
    )
    lines = in_a_new_interpreter(script, workdir).stdout.splitlines()
    assert lines == ["[]", "[]", "200 True", "200 True"]
