"""Settings: every knob TaskAPI reads from the environment, in one typed place.

Values come from the process environment, then from a `.env` file in the working directory
(the environment wins). Nothing else in the package reads `os.environ`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from dotenv import dotenv_values

Environment = Literal["development", "production"]

MIN_SECRET_BYTES = 32
DEV_SECRET_FILE = ".taskapi-dev-secret"
DEFAULT_SQLITE_URL = "sqlite:///taskapi.db"


class ConfigError(Exception):
    """The configuration cannot be used; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Runtime configuration. The README's configuration table documents each field."""

    jwt_secret: str = field(repr=False)
    database_url: str = DEFAULT_SQLITE_URL
    env: Environment = "development"
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    bcrypt_rounds: int = 12
    refresh_token_ttl: int = 30 * 24 * 3600
    db_max_open_conns: int = 25
    db_max_idle_conns: int = 5
    db_conn_max_lifetime: int = 300
    db_connect_timeout: int = 5
    cors_allowed_origins: tuple[str, ...] = ("*",)
    max_body_bytes: int = 1_048_576
    validate_responses: bool = True
    log_level: str = "info"

    def __post_init__(self) -> None:
        if len(self.jwt_secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes "
                "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        if not 4 <= self.bcrypt_rounds <= 31:
            raise ConfigError("BCRYPT_ROUNDS must be between 4 and 31")
        if self.refresh_token_ttl < 60:
            raise ConfigError("REFRESH_TOKEN_TTL must be at least 60 (seconds)")
        if self.env == "production" and self.bcrypt_rounds < 12:
            raise ConfigError("BCRYPT_ROUNDS below 12 is for tests only, not production")
        if self.db_max_open_conns < 1 or not 0 <= self.db_max_idle_conns <= self.db_max_open_conns:
            raise ConfigError("DB_MAX_IDLE_CONNS must be between 0 and DB_MAX_OPEN_CONNS (>= 1)")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, dotenv: Path | None = Path(".env")
    ) -> Settings:
        """Build settings from `environ` (default: the process environment) over a `.env` file."""
        values: dict[str, str] = {}
        if dotenv is not None and dotenv.is_file():
            values.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
        values.update(os.environ if environ is None else environ)

        env = values.get("TASKAPI_ENV", "development")
        if env not in ("development", "production"):
            raise ConfigError("TASKAPI_ENV must be 'development' or 'production'")
        production = env == "production"

        secret = values.get("JWT_SECRET", "")
        if not secret:
            if production:
                raise ConfigError("JWT_SECRET is required when TASKAPI_ENV=production")
            secret = _development_secret(Path(DEV_SECRET_FILE))

        return cls(
            jwt_secret=secret,
            database_url=database_url_from(values),
            env=env,  # type: ignore[arg-type]  # checked above
            host=values.get("SERVER_HOST", "0.0.0.0" if production else "127.0.0.1"),  # noqa: S104
            port=_int(values, "SERVER_PORT", 8080),
            workers=_int(values, "WEB_CONCURRENCY", 1),
            bcrypt_rounds=_int(values, "BCRYPT_ROUNDS", 12),
            refresh_token_ttl=_int(values, "REFRESH_TOKEN_TTL", 30 * 24 * 3600),
            db_max_open_conns=_int(values, "DB_MAX_OPEN_CONNS", 25),
            db_max_idle_conns=_int(values, "DB_MAX_IDLE_CONNS", 5),
            db_conn_max_lifetime=_int(values, "DB_CONN_MAX_LIFETIME", 300),
            db_connect_timeout=_int(values, "DB_CONNECT_TIMEOUT", 5),
            cors_allowed_origins=tuple(
                o.strip() for o in values.get("CORS_ALLOWED_ORIGINS", "*").split(",") if o.strip()
            ),
            max_body_bytes=_int(values, "MAX_BODY_BYTES", 1_048_576),
            validate_responses=_bool(values, "VALIDATE_RESPONSES", not production),
            log_level=values.get("LOG_LEVEL", "info").lower(),
        )


def database_url_from(values: Mapping[str, str]) -> str:
    """DATABASE_URL if set, else a PostgreSQL URL from the DB_* variables, else SQLite."""
    url = values.get("DATABASE_URL", "")
    if url:
        # Heroku-style and driverless URLs mean the psycopg2 driver.
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+psycopg2://" + url.removeprefix(prefix)
        return url
    if any(values.get(k) for k in ("DB_HOST", "DB_PORT", "DB_USER", "DB_NAME", "DB_PASSWORD")):
        user = quote(values.get("DB_USER", "postgres"), safe="")
        password = quote(values.get("DB_PASSWORD", "postgres"), safe="")
        host = values.get("DB_HOST", "localhost")
        port = values.get("DB_PORT", "5432")
        name = quote(values.get("DB_NAME", "taskapi"), safe="")
        sslmode = quote(values.get("DB_SSLMODE", "disable"), safe="")
        return f"postgresql+psycopg2://{user}:{password}@{host}:{port}/{name}?sslmode={sslmode}"
    return DEFAULT_SQLITE_URL


def _development_secret(path: Path) -> str:
    """A random secret kept in `path`, so development tokens survive restarts."""
    if path.is_file():
        secret = path.read_text().strip()
        if len(secret.encode()) >= MIN_SECRET_BYTES:
            return secret
    secret = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(secret + "\n")
    return secret


def _int(values: Mapping[str, str], name: str, default: int) -> int:
    raw = values.get(name, "")
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _bool(values: Mapping[str, str], name: str, default: bool) -> bool:
    raw = values.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")
