"""TaskAPI on a pg_auto_failover formation loses nothing when its primary changes (`make ha`).

A monitor and two data nodes with synchronous replication (tests/formation.py), a PgBouncer in
front of each node, Redis, and three `taskapi serve` replicas (tests/fleet.py). Their
DATABASE_URL names both nodes and asks libpq for the writable one; DATABASE_READ_URL names
both PgBouncers and prefers a standby (through PgBouncer 1.18, libpq cannot tell which node is
writable after a failover: tests/formation.py). Client threads, one account each
(tests/ha_clients.py), loop write, read-back and list through the replicas in turn while the
formation goes through a planned failover, then the SIGKILL of the new primary's keeper and
PostgreSQL, then that node's return as a standby; accounts that do not write then only read.
The module's fixture plays the whole run once; each test checks one rule of what was
recorded, and the figures close pytest's output.

pg_autoctl is Debian's `postgresql-15-auto-failover` (`make ha-tools`), PgBouncer Debian's
(`make pgbouncer`). Without them the tests skip, saying so; under CI=true they fail instead.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa

from taskapi.storage import replicas
from tests.fleet import Fleet, environment, require_redis, taskapi_command
from tests.formation import (
    ROLE,
    Formation,
    engine,
    pg_autoctl_binary,
    pgbouncer_binary,
    port_open,
    wait_until,
)
from tests.ha_clients import Clients, Record, sign_up

pytestmark = [pytest.mark.ha, pytest.mark.live, pytest.mark.postgres]

# A Redis database of this module's own (tests/fleet.py has 14, tests/test_rate_limits.py 15).
REDIS_URL = "redis://127.0.0.1:6379/13"
WRITERS, READERS = 4, 2
# The promises: writes come back this soon after each event (seconds).
PLANNED_RESUME, KILLED_RESUME = 3.0, 20.0
# Of the reads of accounts that have not written recently, the share the standby serves.
STANDBY_SHARE = 0.9
READ_PHASE_SECONDS = 4.0
# How soon after the rejoin the standby must take reads again.
STANDBY_BACK = 10.0


@dataclass
class Run:
    records: list[Record] = field(default_factory=list, repr=False)
    events: dict[str, float] = field(default_factory=dict)  # name: when (monotonic)
    rejoin_seconds: float = 0.0
    standby_back_seconds: float = 0.0  # from the idle readers' start to the standby's first read
    rejoined_states: dict[str, tuple[str, str]] = field(default_factory=dict)
    stored: dict[int, str] = field(default_factory=dict, repr=False)  # writers' tasks, at the end
    reads_per_node: dict[str, int] = field(default_factory=dict)  # in the read phase
    standby: str = ""
    ports: list[int] = field(default_factory=list)
    root: str = ""
    pgids: list[int] = field(default_factory=list)
    seconds: float = 0.0


def required(binary: str | None, what: str) -> None:
    if binary:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} (CI=true requires it)")
    pytest.skip(what)


def reads_on(formation: Formation, name: str) -> int:
    """Statements reading tasks that TaskAPI's role ran on node `name` (pg_stat_statements)."""
    with engine(formation.url(name)).connect() as c:
        return int(
            c.scalar(
                sa.text(
                    "SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s "
                    "JOIN pg_roles r ON r.oid = s.userid "
                    "WHERE r.rolname = :role AND s.query ILIKE 'SELECT%' "
                    "AND s.query ~* '\\mtasks\\M'"
                ),
                {"role": ROLE},
            )
            or 0
        )


def migrate(formation: Formation, workdir: str) -> None:
    """`taskapi db upgrade` straight to the primary (not through PgBouncer), which also makes
    the timeouts the role's own for DB_STARTUP_OPTIONS=false."""
    direct = formation.multi_host_url(list(formation.ports.values()), "read-write")
    result = subprocess.run(
        [*taskapi_command(), "db", "upgrade"],
        cwd=workdir,
        env=environment(direct, DB_STARTUP_OPTIONS="false"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The whole run, played once: formation, replicas, load, the three events, teardown."""
    required(pg_autoctl_binary(), "no pg_autoctl (`make ha-tools` installs Debian's)")
    required(pgbouncer_binary(), "no pgbouncer (`make pgbouncer` installs Debian's)")
    require_redis()
    import redis

    with redis.Redis.from_url(REDIS_URL) as client:
        client.flushdb()
    began = time.monotonic()
    result = Run()
    workdir = tmp_path_factory.mktemp("ha")
    formation = Formation(workdir)
    result.root, result.ports = str(formation.root), formation.all_ports()
    try:
        formation.start()
        migrate(formation, str(workdir))
        # The writes go to the nodes themselves: through PgBouncer 1.18, libpq would pick the
        # old primary after a failover (see tests/formation.py). A read from the primary is
        # never wrong, so the standby reads may go through the PgBouncers.
        bouncers = list(formation.bouncer_ports.values())
        settings = {
            "DB_STARTUP_OPTIONS": "false",
            "REDIS_URL": REDIS_URL,
            "DATABASE_READ_URL": formation.multi_host_url(bouncers, "prefer-standby"),
        }
        app_url = formation.multi_host_url(list(formation.ports.values()), "read-write")
        with Fleet(app_url, workdir, **settings) as fleet:
            result.ports += [p for r in fleet.replicas for p in (r.port, r.metrics_port)]
            play(formation, fleet, result)
        result.stored = stored_tasks(formation)
        with (workdir / "responses.jsonl").open("w") as out:  # every response, for a post-mortem
            for record in result.records:
                out.write(json.dumps(record.__dict__) + "\n")
            out.write(json.dumps({"events": result.events}) + "\n")
    finally:
        result.pgids = [p.process.pid for p in formation.keepers.values() if p.process]
        result.pgids += [p.process.pid for p in formation.bouncers.values() if p.process]
        formation.stop()
    result.seconds = time.monotonic() - began
    return result


def play(formation: Formation, fleet: Fleet, result: Run) -> None:
    urls = [r.url for r in fleet.replicas]
    writers = [sign_up(fleet.clients[k % len(fleet)]) for k in range(WRITERS)]
    readers = [sign_up(fleet.clients[k % len(fleet)]) for k in range(READERS)]
    reading = Clients(urls, readers, write=False)
    for k, account in enumerate(readers):
        title = f"reader {k}"
        created = fleet.clients[0].post(
            "/api/v1/tasks", json={"title": title}, headers=account.headers
        )
        assert created.status_code == 201, created.text
        reading.known[k] = (created.json()["data"]["id"], title)

    with Clients(urls, writers, write=True) as load:

        def resumed(after: float, count: int = 10) -> None:
            wait_until(lambda: load.acknowledged(after) >= count, 30, "writes after the event")

        resumed(0.0, 20)
        result.events["planned failover"] = time.monotonic()
        formation.perform_failover()
        formation.wait_for_roles("node2", "node1", timeout=30)
        resumed(time.monotonic())

        victim = formation.primary()
        result.events["SIGKILL of the primary"] = time.monotonic()
        formation.kill(victim)
        survivor = next(n for n in formation.names if n != victim)
        promoted = ("wait_primary", "primary")
        wait_until(
            lambda: formation.states().get(survivor, ("", ""))[1] in promoted,
            30,
            f"{survivor} promoted",
        )
        resumed(time.monotonic())

        restarted = time.monotonic()
        result.events["restart of the killed node"] = restarted
        formation.restart(victim)
        formation.wait_for_roles(survivor, victim, timeout=30)
        result.rejoin_seconds = time.monotonic() - restarted
        result.rejoined_states = formation.states()
        resumed(time.monotonic())
    result.records = load.records
    result.standby = victim

    # Accounts that have not written for the whole run only read, alone on the formation,
    # counted from the standby's first read on: the share is the steady state's, and how soon
    # the standby was back in use is a figure of its own.
    with reading:
        began = time.monotonic()
        first = reads_on(formation, victim)
        try:
            wait_until(
                lambda: reads_on(formation, victim) > first, STANDBY_BACK, "reads on the standby"
            )
            result.standby_back_seconds = time.monotonic() - began
        except TimeoutError:  # the share below fails, with the counts; the run goes on
            result.standby_back_seconds = float("inf")
        time.sleep(replicas.LEFT_OUT_FOR + replicas.REFRESH_EVERY)  # every replica, not one
        before = {name: reads_on(formation, name) for name in formation.names}
        time.sleep(READ_PHASE_SECONDS)
        after = {name: reads_on(formation, name) for name in formation.names}
    result.reads_per_node = {name: after[name] - before[name] for name in formation.names}
    result.records += [Record(**{**r.__dict__, "kind": f"idle {r.kind}"}) for r in reading.records]


def stored_tasks(formation: Formation) -> dict[int, str]:
    with engine(formation.url(formation.primary())).connect() as c:
        rows = c.execute(sa.text("SELECT id, title FROM tasks WHERE title LIKE 'ha %'")).all()
    return {int(i): str(t) for i, t in rows}


def write_gap(run: Run, event: str) -> tuple[float, float]:
    """(seconds from the event until writes succeed again, the longest stretch without an
    acknowledged write around it). Writes succeed again with the first 201 of a write sent
    after the event's last failed write."""
    times = sorted(run.events.values())
    start = run.events[event]
    end = next((t for t in times if t > start), float("inf"))
    # A write answered after the next event belongs to that event.
    writes = [
        r for r in run.records if r.kind == "write" and start - 1 <= r.started and r.ended < end
    ]
    failed = [r.started for r in writes if r.status != 201 and r.started >= start]
    last_failure = max(failed, default=start)
    acknowledged = sorted(r.ended for r in writes if r.status == 201)
    back = min((t for t in acknowledged if t > last_failure), default=float("inf"))
    stall = max((b - a for a, b in itertools.pairwise(acknowledged)), default=0)
    return (back - start if failed else 0.0), stall


@pytest.fixture(scope="module")
def figures(run: Run, request: pytest.FixtureRequest) -> Iterator[None]:
    """The run's figures, printed after the module's results."""
    statuses = Counter((r.kind.split()[-1], r.status) for r in run.records)
    lines = [f"whole run {run.seconds:.1f} s, {len(run.records)} responses"]
    for event in ("planned failover", "SIGKILL of the primary"):
        back, stall = write_gap(run, event)
        lines.append(f"{event}: writes back after {back:.2f} s, longest stall {stall:.2f} s")
    lines.append(f"killed node rejoined as a standby in {run.rejoin_seconds:.1f} s")
    lines.append(
        "statuses: " + ", ".join(f"{k}={s}: {n}" for (k, s), n in sorted(statuses.items(), key=str))
    )
    lines.append(f"standby back in use {run.standby_back_seconds:.1f} s into the idle reads")
    lines.append(f"idle accounts' reads per node (standby {run.standby}): {run.reads_per_node}")
    yield
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_sep("-", "HA: pg_auto_failover, 2 PgBouncers, 3 replicas")
        for line in lines:
            reporter.write_line(line)


@pytest.fixture(autouse=True)
def _report(figures: None) -> None:
    """Every test of the module prints the figures once, at its end."""


def test_every_failure_is_a_503_with_retry_after(run):
    failures = [r for r in run.records if r.status not in (200, 201)]
    assert [r for r in failures if r.status == 500] == []
    assert [r for r in failures if r.status != 503 or not r.retry_after] == []


def test_writes_resume_soon_after_each_failover(run):
    planned, _ = write_gap(run, "planned failover")
    killed, _ = write_gap(run, "SIGKILL of the primary")
    assert planned <= PLANNED_RESUME
    assert killed <= KILLED_RESUME


def test_no_acknowledged_write_is_lost(run):
    acknowledged = {
        r.task_id: r.title for r in run.records if r.kind == "write" and r.status == 201
    }
    assert len(acknowledged) > 100
    missing = {i: t for i, t in acknowledged.items() if run.stored.get(i) != t}
    assert missing == {}


def test_every_read_shows_the_clients_own_earlier_write(run):
    reads = [r for r in run.records if r.kind in ("read", "list") and r.status == 200]
    assert len(reads) > 100
    assert [r for r in run.records if r.missed] == []


def test_accounts_with_no_recent_write_read_from_the_standby(run):
    served = sum(run.reads_per_node.values())
    assert served >= 50, run.reads_per_node
    assert run.reads_per_node[run.standby] >= STANDBY_SHARE * served, run.reads_per_node


def test_the_killed_node_rejoins_as_a_standby(run):
    assert run.rejoined_states[run.standby] == ("secondary", "secondary")


def test_nothing_is_left_behind(run):
    assert not os.path.exists(run.root)
    assert [p for p in run.ports if port_open(p)] == []
    # PostgreSQL's sockets and their locks, in Debian's default directory, went with it.
    assert [p for p in run.ports if os.path.exists(f"/var/run/postgresql/.s.PGSQL.{p}.lock")] == []
    alive = []
    for pgid in run.pgids:
        try:
            os.killpg(pgid, 0)
            alive.append(pgid)
        except ProcessLookupError:
            pass
    assert alive == []
    ours = re.compile(re.escape(run.root))
    leftovers = []
    for proc in os.listdir("/proc"):
        if proc.isdigit():
            try:
                with open(f"/proc/{proc}/cmdline", "rb") as f:
                    if ours.search(f.read().decode(errors="replace")):
                        leftovers.append(proc)
            except OSError:
                pass
    assert leftovers == []
