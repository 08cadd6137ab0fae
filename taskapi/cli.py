"""The `taskapi` command: serve | db create/upgrade/downgrade/current/purge | openapi | settings."""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from collections.abc import Sequence

from taskapi import __version__, config
from taskapi.config import ConfigError, Settings

# Alembic and the server are imported where they are used: uvicorn's workers import this
# module again (multiprocessing's spawn re-imports the main module), and a worker needs neither.


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from taskapi.server import serve

    if settings.is_sqlite:
        # The embedded default needs no setup: bring its schema up to date first, in a process
        # of its own, so that this one, which supervises the workers for as long as they run,
        # never loads Alembic and SQLAlchemy.
        subprocess.run([sys.executable, "-m", "taskapi", "db", "upgrade"], check=True)
    serve(
        settings,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers or settings.workers,
        reload=args.reload,
        access_log=args.access_log,
    )
    return 0


def _db(args: argparse.Namespace, settings: Settings) -> int:
    from taskapi.storage import migrate

    # Alembic reports each migration it runs through logging.
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.action == "purge":
        return _purge(settings)
    if args.action == "create":
        print(migrate.create_database(settings))
    elif args.action == "upgrade":
        migrate.upgrade(settings, args.revision or "head")
    elif args.action == "downgrade":
        migrate.downgrade(settings, args.revision or "-1")
    else:
        migrate.current(settings)
    return 0


def _purge(settings: Settings) -> int:
    from taskapi.ops import housekeeping
    from taskapi.storage.db import Database

    db = Database(settings)
    try:
        purged = housekeeping.purge(db, tombstone_retention=settings.tombstone_retention)
    finally:
        db.dispose()
    if purged is None:
        print("another process is purging; nothing done")
        return 0
    counts = ", ".join(f"{table} {count}" for table, count in purged.items())
    print(f"expired rows deleted: {counts}")
    return 0


def _settings(settings: Settings) -> int:
    for name, declared in config.declarations().items():
        value = getattr(settings, name)
        shown = "(hidden)" if name == "jwt_secret" else value
        print(f"{declared.env}={','.join(shown) if isinstance(shown, tuple) else shown}")
    return 0


def _openapi(args: argparse.Namespace) -> int:
    from taskapi.resources import load_spec, spec_path

    if args.json:
        print(json.dumps(load_spec(), indent=2))
    else:
        print(spec_path().read_text(encoding="utf-8"), end="")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="taskapi", description=__doc__)
    root.add_argument("--version", action="version", version=f"taskapi {__version__}")
    commands = root.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the API with uvicorn")
    serve.add_argument("--host", help="interface to bind (default: SERVER_HOST)")
    serve.add_argument("--port", type=int, help="port (default: SERVER_PORT, 8080)")
    serve.add_argument("--workers", type=int, help="processes (default: WEB_CONCURRENCY, 1)")
    serve.add_argument("--reload", action="store_true", help="restart on code changes (dev)")
    serve.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one log line per request (default: ACCESS_LOG)",
    )

    db = commands.add_parser(
        "db", help="create the database, run its migrations, purge expired rows"
    )
    db.add_argument("action", choices=("create", "upgrade", "downgrade", "current", "purge"))
    db.add_argument("revision", nargs="?", help="target (default: head, or -1 to downgrade)")

    spec = commands.add_parser("openapi", help="print the OpenAPI spec")
    spec.add_argument("--json", action="store_true", help="as JSON instead of YAML")

    shown = commands.add_parser("settings", help="print the settings in effect")
    shown.add_argument(
        "--markdown", action="store_true", help="print the README's table of every setting"
    )
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "openapi":
        return _openapi(args)
    if args.command == "settings" and args.markdown:
        print(config.markdown_table())
        return 0
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"taskapi: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(args, settings)
    if args.command == "settings":
        return _settings(settings)
    return _db(args, settings)
