"""A primary that turns read-only under the service, as a demoted one does during a failover:
writes get a 503 with Retry-After, never a 500, and the pool drops its connections, so the
service writes again as soon as a writable server answers."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from taskapi.storage import migrate
from tests.conftest import Api, assert_problem, base_settings

pytestmark = pytest.mark.postgres


@pytest.fixture
def primary(create_postgres_database, postgres_server):
    """(URL of a migrated database of its own, a function that makes it read-only or not)."""
    url = create_postgres_database()
    migrate.upgrade(base_settings(url))
    name = make_url(url).database
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)

    def read_only(on: bool) -> None:
        """New sessions of the database are read-only (or not); turning it on ends the
        existing ones, as a demotion ends a primary's sessions."""
        with admin.connect() as c:
            c.execute(sa.text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {on}'))
            if not on:
                return
            c.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )

    yield url, read_only
    admin.dispose()


def test_writes_to_a_read_only_primary_are_503_and_resume_once_it_is_writable(make_app, primary):
    url, read_only = primary
    app = make_app(base_settings(url))
    with app.test_client() as client:
        api = Api(client)
        auth = api.user()
        api.create_task(auth)
        read_only(True)
        for _ in range(3):  # the ended connections, then read-only ones
            response = client.post("/api/v1/tasks", json={"title": "No"}, headers=auth)
            assert_problem(response, 503, "database_unavailable")
            assert response.headers["Retry-After"]
        assert client.get("/api/v1/tasks", headers=auth).status_code == 200
        read_only(False)
        # The read-only connections were dropped, not handed out again.
        created = client.post("/api/v1/tasks", json={"title": "Yes"}, headers=auth)
        assert created.status_code == 201, created.text


def test_a_url_that_asks_for_the_writable_host_serves_reads_too(make_app, primary):
    """`target_session_attrs=read-write` finds the primary among several hosts; the read pool's
    sessions are read-only by default, which libpq takes for "not writable", so that pool asks
    for the primary instead (`primary`)."""
    url, _ = primary
    app = make_app(base_settings(f"{url}?target_session_attrs=read-write"))
    with app.test_client() as client:
        api = Api(client)
        auth = api.user()
        task = api.create_task(auth)
        assert client.get(f"/api/v1/tasks/{task['id']}", headers=auth).status_code == 200
