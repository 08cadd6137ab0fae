"""Settings: every knob TaskAPI reads from the environment, each declared once.

A setting is a field of `Settings` declared with `setting(...)`: its environment variable, its
meaning, its default (per environment where they differ) and its bounds. `from_env`, the
validation messages, `taskapi settings` and the README's configuration table are all derived
from those declarations. Values come from the process environment, then from a `.env` file in
the working directory (the environment wins). Nothing else in the package reads `os.environ`.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from dotenv import dotenv_values
from limits import RateLimitItem, parse_many

Environment = Literal["development", "production"]
LogFormat = Literal["text", "json"]
LogLevel = Literal["debug", "info", "warning", "error"]
TracesExporter = Literal["none", "otlp", "console"]

MIN_SECRET_BYTES = 32
# A rate limit setting that turns its budget off (an empty variable means the default).
NO_LIMIT = "none"
DEV_SECRET_FILE = ".taskapi-dev-secret"
DEFAULT_SQLITE_URL = "sqlite:///taskapi.db"
# The seed API's PostgreSQL variables, used when DATABASE_URL is not set.
SEED_DATABASE_DEFAULTS = {
    "DB_HOST": "localhost",
    "DB_PORT": "5432",
    "DB_USER": "postgres",
    "DB_PASSWORD": "postgres",
    "DB_NAME": "taskapi",
    "DB_SSLMODE": "disable",
}


# Marks a setting whose production default is its development default.
SAME_IN_PRODUCTION: Any = object()


class ConfigError(Exception):
    """The configuration cannot be used; the message names the variable."""


@dataclass(frozen=True)
class Declaration:
    """How one setting is read: its variable, meaning, defaults and bounds."""

    env: str
    meaning: str
    production: Any = SAME_IN_PRODUCTION
    minimum: float | None = None
    maximum: float | None = None
    # Reads the value itself from all variables (for settings built from several).
    source: Callable[[Mapping[str, str], bool], Any] | None = None
    # How the README states the default, when the value alone would not say it.
    default_text: str | None = None


def setting(
    env: str,
    meaning: str,
    default: Any = dataclasses.MISSING,
    **declared: Any,
) -> Any:
    """A `Settings` field read from `env`."""
    metadata = {"declaration": Declaration(env, meaning, **declared)}
    return dataclasses.field(default=default, metadata=metadata)


def _jwt_secret(values: Mapping[str, str], production: bool) -> str:
    secret = values.get("JWT_SECRET", "")
    if secret:
        return secret
    if production:
        raise ConfigError("JWT_SECRET is required when TASKAPI_ENV=production")
    return _development_secret(Path(DEV_SECRET_FILE))


def _traces_exporter(values: Mapping[str, str], _production: bool) -> str:
    # OpenTelemetry's own variables, read as its SDK reads them but for one thing: traces are
    # off unless asked for (the SDK's default exporter is otlp), since each costs a little.
    if values.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return "none"
    chosen = values.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not chosen:
        endpoints = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
        return "otlp" if any(values.get(name, "").strip() for name in endpoints) else "none"
    allowed = typing.get_args(TracesExporter)
    if chosen not in allowed:
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER must be one of {', '.join(allowed)}, got {chosen!r}"
        )
    return chosen


def _with_driver(url: str) -> str:
    """Heroku-style and driverless PostgreSQL URLs mean the psycopg2 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url.removeprefix(prefix)
    return url


def _database_read_url(values: Mapping[str, str], production: bool = False) -> str:
    return _with_driver(values.get("DATABASE_READ_URL", "").strip())


def database_url_from(values: Mapping[str, str], production: bool = False) -> str:
    """DATABASE_URL if set, else a PostgreSQL URL from the DB_* variables, else SQLite."""
    url = values.get("DATABASE_URL", "")
    if url:
        return _with_driver(url)
    if any(values.get(k) for k in SEED_DATABASE_DEFAULTS if k != "DB_SSLMODE"):
        part = {k: quote(values.get(k) or v, safe="") for k, v in SEED_DATABASE_DEFAULTS.items()}
        return (
            f"postgresql+psycopg2://{part['DB_USER']}:{part['DB_PASSWORD']}@{part['DB_HOST']}"
            f":{part['DB_PORT']}/{part['DB_NAME']}?sslmode={part['DB_SSLMODE']}"
        )
    return DEFAULT_SQLITE_URL


@dataclass(frozen=True)
class Settings:
    """Runtime configuration; `taskapi settings --markdown` prints it as the README's table."""

    jwt_secret: str = setting(
        "JWT_SECRET",
        "HS256 key, at least 32 bytes "
        "(`python -c 'import secrets; print(secrets.token_urlsafe(48))'`)",
        source=_jwt_secret,
        default_text="development: generated into `.taskapi-dev-secret`",
    )
    env: Environment = setting(
        "TASKAPI_ENV",
        "`production` requires `JWT_SECRET`, refuses a `BCRYPT_ROUNDS` below 12 and changes "
        "the defaults marked so",
        "development",
    )
    database_url: str = setting(
        "DATABASE_URL",
        "any SQLAlchemy URL; `postgres://` and `postgresql://` use psycopg2. Unset, the seed "
        "API's `DB_HOST` `DB_PORT` `DB_USER` `DB_PASSWORD` `DB_NAME` `DB_SSLMODE` (defaults "
        "`localhost` `5432` `postgres` `postgres` `taskapi` `disable`) build one when any is set",
        DEFAULT_SQLITE_URL,
        source=database_url_from,
    )
    host: str = setting("SERVER_HOST", "interface to bind", "127.0.0.1", production="0.0.0.0")  # noqa: S104
    port: int = setting("SERVER_PORT", "port", 8080, minimum=1, maximum=65535)
    workers: int = setting("WEB_CONCURRENCY", "worker processes", 1, minimum=1)
    bcrypt_rounds: int = setting(
        "BCRYPT_ROUNDS", "bcrypt cost (lower only in tests)", 12, minimum=4, maximum=31
    )
    bcrypt_concurrency: int = setting(
        "BCRYPT_CONCURRENCY",
        "passwords one process hashes at once; `0`: the CPU cores divided among the workers",
        0,
        minimum=0,
    )
    bcrypt_queue: int = setting(
        "BCRYPT_QUEUE",
        "requests that may wait for a bcrypt slot per process; more are answered 503",
        4,
        minimum=0,
    )
    bcrypt_max_wait: float = setting(
        "BCRYPT_MAX_WAIT",
        "seconds a request may wait for a bcrypt slot before it is answered 503",
        1.0,
        minimum=0,
    )
    refresh_token_ttl: int = setting(
        "REFRESH_TOKEN_TTL",
        "seconds a refresh token stays valid",
        30 * 24 * 3600,
        minimum=60,
        default_text="`2592000` (30 days)",
    )
    tombstone_retention: int = setting(
        "TOMBSTONE_RETENTION",
        "seconds deleted tasks are remembered for the change feed; an older `since` is a 410",
        30 * 24 * 3600,
        minimum=1,
        default_text="`2592000` (30 days)",
    )
    db_max_open_conns: int = setting(
        "DB_MAX_OPEN_CONNS",
        "database connections per process, at most (half for reads, half for writes)",
        25,
        minimum=2,
    )
    db_max_idle_conns: int = setting(
        "DB_MAX_IDLE_CONNS",
        "database connections per process kept open when idle (split the same way)",
        10,
        minimum=2,
    )
    db_conn_max_lifetime: int = setting(
        "DB_CONN_MAX_LIFETIME", "seconds before a database connection is replaced", 300, minimum=1
    )
    db_connect_timeout: int = setting(
        "DB_CONNECT_TIMEOUT", "seconds to wait for PostgreSQL to accept a connection", 3, minimum=1
    )
    db_statement_timeout: float = setting(
        "DB_STATEMENT_TIMEOUT",
        "seconds a PostgreSQL statement may run (or wait for a lock) before it is cancelled",
        5.0,
        minimum=0.001,
    )
    db_lock_timeout: float = setting(
        "DB_LOCK_TIMEOUT",
        "seconds a PostgreSQL statement may wait for another transaction's lock",
        1.0,
        minimum=0.001,
    )
    db_startup_options: bool = setting(
        "DB_STARTUP_OPTIONS",
        "send `DB_STATEMENT_TIMEOUT` and `DB_LOCK_TIMEOUT` to PostgreSQL as connection startup "
        "options; `false` behind PgBouncer in transaction mode, which refuses them: `taskapi "
        "db upgrade` then sets them on the database role",
        True,
    )
    database_read_url: str = setting(
        "DATABASE_READ_URL",
        "PostgreSQL hot standby for reads, or several hosts (`?host=a:5432&host=b:5432`: the "
        "first found in recovery); an account reads there once the standby has replayed its "
        "last write (read-your-writes), and from the primary before. Unset: every read on the "
        "primary. More than one process needs `REDIS_URL`",
        "",
        source=_database_read_url,
    )
    db_read_max_lag: float = setting(
        "DB_READ_MAX_LAG",
        "seconds a standby may lag behind the primary before its reads go to the primary (an "
        "account's own writes are always read back)",
        2.0,
        minimum=0.1,
    )
    redis_url: str = setting(
        "REDIS_URL",
        "Redis for state every worker and replica shares (rate limits), e.g. "
        "`redis://127.0.0.1:6379/0`; unset: kept in each process",
        "",
    )
    rate_limit_enabled: bool = setting("RATE_LIMIT_ENABLED", "enforce the rate limits", True)
    rate_limit_default: str = setting(
        "RATE_LIMIT_DEFAULT",
        "budget per user on authenticated operations (and per client IP on other anonymous "
        "ones), as `limits` strings like `600/minute;20/second`; `none`: no budget",
        "5000/hour;20/second",
    )
    rate_limit_auth: str = setting(
        "RATE_LIMIT_AUTH",
        "budget per client IP for register, login, refresh, password changes and account deletions",
        "30/minute",
    )
    rate_limit_auth_email: str = setting(
        "RATE_LIMIT_AUTH_EMAIL",
        "password attempts at one account from one client: per client IP and email for "
        "register and login, per login session for password changes and account deletions",
        "10/minute",
    )
    rate_limit_login_slowdown: str = setting(
        "RATE_LIMIT_LOGIN_SLOWDOWN",
        "logins of one email from all clients together before each further one waits "
        "`LOGIN_SLOWDOWN_SECONDS` (slowed, never refused); `none`: never slowed",
        "50/hour",
    )
    login_slowdown_seconds: float = setting(
        "LOGIN_SLOWDOWN_SECONDS",
        "how long a login waits once its email is over `RATE_LIMIT_LOGIN_SLOWDOWN`",
        2.0,
        minimum=0,
    )
    trusted_proxies: tuple[str, ...] = setting(
        "TRUSTED_PROXIES",
        "comma-separated addresses or networks of proxies whose `X-Forwarded-For` and "
        "`X-Forwarded-Proto` are believed; empty: the peer address is the client",
        (),
    )
    cors_allowed_origins: tuple[str, ...] = setting(
        "CORS_ALLOWED_ORIGINS",
        "comma-separated origins allowed to call the API from a browser",
        ("*",),
    )
    max_body_bytes: int = setting(
        "MAX_BODY_BYTES", "largest request body accepted", 1_048_576, minimum=1
    )
    body_timeout: float = setting(
        "REQUEST_BODY_TIMEOUT",
        "seconds a request body may take to arrive in full before a 408",
        10.0,
        minimum=0.001,
    )
    max_header_bytes: int = setting(
        "MAX_HEADER_BYTES",
        "largest request line and headers accepted; more is a 431 and the connection closes",
        16_384,
        minimum=1024,
    )
    max_headers: int = setting(
        "MAX_HEADERS",
        "most header fields a request may carry; more is a 431 and the connection closes",
        100,
        minimum=10,
    )
    header_timeout: float = setting(
        "HEADER_TIMEOUT",
        "seconds a request line and headers may take to arrive (from the connection's start, "
        "or from the first byte of a later request on it) before a 408",
        10.0,
        minimum=0.001,
    )
    max_connections: int = setting(
        "MAX_CONNECTIONS",
        "connections one worker process holds at once; more are answered 503 and closed",
        1000,
        minimum=1,
    )
    validate_responses: bool = setting(
        "VALIDATE_RESPONSES",
        "check every response against the spec (a mismatch is a 500)",
        True,
        production=False,
    )
    log_level: LogLevel = setting("LOG_LEVEL", "how much to log", "info")
    log_format: LogFormat = setting(
        "LOG_FORMAT", "log lines for people or for log collectors", "text", production="json"
    )
    access_log: bool = setting(
        "ACCESS_LOG", "one log line per request (`taskapi serve --no-access-log`: off)", True
    )
    traces_exporter: TracesExporter = setting(
        "OTEL_TRACES_EXPORTER",
        "OpenTelemetry traces (needs `pip install 'taskapi[tracing]'`): `otlp` sends them over "
        "OTLP/HTTP to `OTEL_EXPORTER_OTLP_ENDPOINT`, and is the default once that is set; "
        "the SDK's other `OTEL_*` variables apply (docs/deploying.md, Traces)",
        "none",
        source=_traces_exporter,
    )
    metrics_port: int = setting(
        "METRICS_PORT",
        "port of the Prometheus `/metrics` listener, on `SERVER_HOST`; `0`: none",
        9464,
        minimum=0,
        maximum=65535,
    )
    purge_interval: float = setting(
        "PURGE_INTERVAL_SECONDS",
        "how often each server process deletes expired refresh tokens, Idempotency-Key "
        "responses, logged-out access tokens and deleted tasks older than "
        "`TOMBSTONE_RETENTION` (`taskapi db purge` does it once); `0`: never",
        3600.0,
        minimum=0,
    )
    shutdown_drain: float = setting(
        "SHUTDOWN_DRAIN_SECONDS",
        "after SIGTERM, seconds of serving with `/ready` at 503 before the graceful stop",
        0.0,
        production=5.0,
        minimum=0,
    )
    shutdown_grace: float = setting(
        "SHUTDOWN_GRACE_SECONDS",
        "seconds in-flight requests get to finish once the server stops",
        20.0,
        minimum=0,
    )

    def __post_init__(self) -> None:
        if len(self.jwt_secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes "
                "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        for declared, value in _declared_values(self):
            _check_bounds(declared, value)
            if declared.env.startswith("RATE_LIMIT_") and isinstance(value, str):
                _check_rate_limits(declared.env, value)
        if self.env == "production" and self.bcrypt_rounds < 12:
            raise ConfigError("BCRYPT_ROUNDS below 12 is for tests only, not production")
        if self.db_max_idle_conns > self.db_max_open_conns:
            raise ConfigError("DB_MAX_IDLE_CONNS must be at most DB_MAX_OPEN_CONNS")
        if self.database_read_url and (
            self.is_sqlite or not self.database_read_url.startswith("postgresql")
        ):
            raise ConfigError("DATABASE_READ_URL takes a PostgreSQL standby of DATABASE_URL")
        if self.database_read_url and self.workers > 1 and not self.redis_url:
            raise ConfigError(
                "DATABASE_READ_URL with WEB_CONCURRENCY above 1 needs REDIS_URL: each account's "
                "last write must be known to every worker"
            )

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

        hints = typing.get_type_hints(cls)
        raw_env = values.get("TASKAPI_ENV", "").strip()
        production = bool(raw_env) and _parse(declarations()["env"], raw_env, hints["env"]) == (
            "production"
        )
        chosen: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            declared: Declaration = field.metadata["declaration"]
            if declared.source is not None:
                chosen[field.name] = declared.source(values, production)
            elif raw := values.get(declared.env, "").strip():
                chosen[field.name] = _parse(declared, raw, hints[field.name])
            elif production and declared.production is not SAME_IN_PRODUCTION:
                chosen[field.name] = declared.production
        return cls(**chosen)


def declarations() -> dict[str, Declaration]:
    """Every setting's declaration, by field name."""
    return {f.name: f.metadata["declaration"] for f in dataclasses.fields(Settings)}


def env_names() -> frozenset[str]:
    """Every environment variable Settings reads."""
    return frozenset(d.env for d in declarations().values()) | frozenset(SEED_DATABASE_DEFAULTS)


def markdown_table() -> str:
    """The README's configuration table, from the declarations."""
    hints = typing.get_type_hints(Settings)
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for field in dataclasses.fields(Settings):
        declared: Declaration = field.metadata["declaration"]
        meaning = declared.meaning
        if typing.get_origin(hints[field.name]) is Literal:
            meaning += ": " + ", ".join(f"`{v}`" for v in typing.get_args(hints[field.name]))
        rows.append(f"| `{declared.env}` | {_default_text(field, declared)} | {meaning} |")
    return "\n".join(rows)


def _default_text(field: dataclasses.Field[Any], declared: Declaration) -> str:
    if declared.default_text is not None:
        return declared.default_text
    development = _render(field.default)
    if declared.production is SAME_IN_PRODUCTION:
        return development
    return f"development {development}, production {_render(declared.production)}"


def _render(value: Any) -> str:
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, tuple):
        value = ",".join(value)
    if isinstance(value, float):
        value = f"{value:g}"
    return f"`{value}`" if value != "" else "empty"


def _declared_values(settings: Settings) -> Iterator[tuple[Declaration, Any]]:
    for field in dataclasses.fields(settings):
        yield field.metadata["declaration"], getattr(settings, field.name)


def _check_bounds(declared: Declaration, value: Any) -> None:
    if declared.minimum is not None and value < declared.minimum:
        raise ConfigError(f"{declared.env} must be at least {declared.minimum:g}, got {value}")
    if declared.maximum is not None and value > declared.maximum:
        raise ConfigError(f"{declared.env} must be at most {declared.maximum:g}, got {value}")


def parse_limits(text: str) -> list[RateLimitItem]:
    """`10/minute;100/hour` as limit items; `none` (or nothing) is no limit. Raises
    ValueError."""
    text = text.strip()
    return [] if text.lower() in ("", NO_LIMIT) else list(parse_many(text))


def _check_rate_limits(env: str, text: str) -> None:
    try:
        parse_limits(text)
    except ValueError:
        raise ConfigError(
            f"{env} must be limits like '10/minute' or '600/minute;20/second', or "
            f"'{NO_LIMIT}', got {text!r}"
        ) from None


def _parse(declared: Declaration, raw: str, kind: Any) -> Any:
    """`raw` as a value of type `kind`; a ConfigError names the variable if it is not one."""
    if typing.get_origin(kind) is Literal:
        allowed = typing.get_args(kind)
        if raw.lower() not in allowed:
            raise ConfigError(f"{declared.env} must be one of {', '.join(allowed)}, got {raw!r}")
        return raw.lower()
    if kind is bool:
        return _bool(declared.env, raw)
    if kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            article = "an integer" if kind is int else "a number"
            raise ConfigError(f"{declared.env} must be {article}, got {raw!r}") from None
    if typing.get_origin(kind) is tuple:
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    return raw


def _bool(name: str, raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


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
