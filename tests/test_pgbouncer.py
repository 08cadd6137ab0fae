"""TaskAPI through PgBouncer in transaction mode, with deploy/pgbouncer/pgbouncer.ini.

With DB_STARTUP_OPTIONS=false the timeouts are the database role's own, set by the migration
step, and every operation works with a server connection lent per transaction. With the
default, PgBouncer refuses the connections (the startup `options`), which the test shows too.
Without a pgbouncer binary (`make pgbouncer` installs Debian's) the tests skip; under CI=true
they fail instead.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from taskapi.storage import migrate
from tests.conftest import Api, assert_problem, base_settings
from tests.serving import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.live]

ROOT = Path(__file__).resolve().parent.parent
INI = ROOT / "deploy" / "pgbouncer" / "pgbouncer.ini"


def pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or shutil.which("/usr/sbin/pgbouncer")
    if found:
        return found
    reason = "no pgbouncer (`make pgbouncer` installs Debian's)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason + " (CI=true requires it)")
    pytest.skip(reason)


@pytest.fixture
def database(postgres_server: str) -> Iterator[str]:
    """A database of its own, owned by a role of its own, migrated with the role's defaults
    set; its direct URL."""
    name = f"taskapi_pgb_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE ROLE "{name}" LOGIN'))
        c.execute(sa.text(f'CREATE DATABASE "{name}" OWNER "{name}"'))
    direct = make_url(postgres_server).set(username=name, password=None, database=name)
    url = direct.render_as_string(hide_password=False)
    try:
        migrate.upgrade(replace(base_settings(url), db_startup_options=False))
        yield url
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            c.execute(sa.text(f'DROP ROLE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture
def pgbouncer(database: str) -> Iterator[str]:
    """PgBouncer with deploy/pgbouncer/pgbouncer.ini, on loopback; TaskAPI's URL through it."""
    binary = pgbouncer_binary()
    direct = make_url(database)
    config = configparser.ConfigParser(inline_comment_prefixes=(";",))
    config.read(INI)
    port = free_port()
    config["databases"] = {
        direct.database: f"host={direct.host} port={direct.port} dbname={direct.database}"
    }
    # PgBouncer refuses to run as root; as root, it runs as nobody, which must read and write
    # its directory (pytest's are private to their owner).
    workdir = Path(tempfile.mkdtemp(prefix="taskapi-pgbouncer-"))
    workdir.chmod(0o777)
    users = workdir / "userlist.txt"
    users.write_text(f'"{direct.username}" ""\n')
    listener = config["pgbouncer"]
    listener.update(
        listen_addr="127.0.0.1",
        listen_port=str(port),
        auth_type="trust",
        auth_file=str(users),
        unix_socket_dir="",
        logfile=str(workdir / "pgbouncer.log"),
        pidfile=str(workdir / "pgbouncer.pid"),
    )
    assert listener["pool_mode"] == "transaction"
    ini = workdir / "pgbouncer.ini"
    with ini.open("w") as out:
        config.write(out)
    for written in (users, ini):
        written.chmod(0o644)
    as_user = ["-u", "nobody"] if os.geteuid() == 0 else []
    process = subprocess.Popen(
        [binary, *as_user, str(ini)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 10
        url = direct.set(port=port).render_as_string(hide_password=False)
        probe = sa.create_engine(url, poolclass=sa.NullPool)
        while True:
            try:
                with probe.connect():
                    break
            except sa.exc.OperationalError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        probe.dispose()
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def test_every_kind_of_operation_works_through_pgbouncer(make_app, pgbouncer):
    app = make_app(replace(base_settings(pgbouncer), db_startup_options=False))
    with app.test_client() as client:
        api = Api(client)
        auth = api.user()
        task = api.create_task(auth, title="Through PgBouncer")
        batch = {"tasks": [{"title": "One"}, {"title": "Two"}]}
        assert client.post("/api/v1/tasks/batch", json=batch, headers=auth).status_code == 201
        keyed = {**auth, "Idempotency-Key": "pgbouncer-1"}
        for _ in range(2):
            replayed = client.post("/api/v1/tasks", json={"title": "Once"}, headers=keyed)
            assert replayed.status_code == 201
        etag = client.get(f"/api/v1/tasks/{task['id']}", headers=auth).headers["ETag"]
        patched = client.patch(
            f"/api/v1/tasks/{task['id']}",
            json={"status": "completed"},
            headers={**auth, "If-Match": etag},
        )
        assert patched.status_code == 200
        listed = client.get("/api/v1/tasks?sort=title", headers=auth).json()
        assert [t["title"] for t in listed["data"]] == ["Once", "One", "Through PgBouncer", "Two"]
        assert client.get("/api/v1/tasks/changes", headers=auth).status_code == 200
        assert client.get("/api/v1/tasks/stats", headers=auth).json()["data"]["total"] == 4
        with app.services.db.reading() as c:
            assert c.scalar(sa.text("SHOW statement_timeout")) == "5s"
            assert c.scalar(sa.text("SHOW lock_timeout")) == "1s"


def test_startup_options_are_refused_by_pgbouncer(make_app, pgbouncer):
    """Why DB_STARTUP_OPTIONS=false exists: with the default, nothing gets through."""
    app = make_app(base_settings(pgbouncer))
    with app.test_client() as client:
        assert_problem(Api(client).register(), 503, "database_unavailable")
