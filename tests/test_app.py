"""The app factory, the settings, and the `taskapi` command."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlalchemy as sa

from taskapi.cli import main
from taskapi.config import DEV_SECRET_FILE, ConfigError, Settings
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
    assert (settings.db_max_open_conns, settings.db_max_idle_conns) == (25, 5)
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


def test_cors_origins_are_a_comma_separated_list(workdir):
    settings = Settings.from_env({"CORS_ALLOWED_ORIGINS": "https://a.example, https://b.example"})
    assert settings.cors_allowed_origins == ("https://a.example", "https://b.example")


def test_each_app_has_its_own_database(make_app, tmp_path):
    from taskapi.cli import migrate

    clients = []
    for name in ("one", "two"):
        settings = base_settings(f"sqlite:///{tmp_path / name}.db")
        migrate(settings)
        clients.append(make_app(settings).test_client())
    body = {"email": "jane@example.com", "password": "password123", "name": "Jane"}
    assert clients[0].post("/api/v1/auth/register", json=body).status_code == 201
    assert clients[1].post("/api/v1/auth/register", json=body).status_code == 201


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
