"""A pg_auto_failover formation on loopback, for tests/test_ha.py: a monitor and two data nodes
with synchronous replication, each node behind a PgBouncer of its own, all in one temporary
directory.

Every PostgreSQL runs under its node's `pg_autoctl run` (the keeper), which owns it; each
keeper leads a process group of its own, so a SIGKILL of the group takes a node down at once,
as the loss of its machine would. As root, PostgreSQL and pg_autoctl (which refuse root) run
as `postgres`, PgBouncer as `nobody`. The monitor's timeouts are tuned down from their
defaults (docs/reliability.md has what each costs), and a node joins after a CHECKPOINT on the
primary, so its base backup need not wait for a spread one.

PgBouncer (1.18, Debian 12) cannot carry a multi-host URL's `target_session_attrs=read-write`
through a failover: it answers every client's login with the parameters its first server
connection reported, `in_hot_standby` among them, and libpq 14+ decides on those without
asking the server. After a switch, the old primary's PgBouncer still says `in_hot_standby=off`
and libpq keeps choosing it; TaskAPI then answered 503 (read-only) to every write for as long
as it was tried. So writes go to the nodes directly, and only the standby reads go through the
PgBouncers; TaskAPI finds the standby among them by asking each server, not libpq (and picking
the primary by mistake would cost load, not correctness). A node's PgBouncer is killed and
restarted with it, as a sidecar in the node's pod would be.
"""

from __future__ import annotations

import configparser
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa

from tests.bench.postgres import server_bin_dir
from tests.serving import free_port

ROOT = Path(__file__).resolve().parent.parent
PGBOUNCER_INI = ROOT / "deploy" / "pgbouncer" / "pgbouncer.ini"
DATABASE = "taskapi"
ROLE = "taskapi"
# The monitor's health checks: a node that misses one check for 4 s is unhealthy, and a primary
# cut off from the monitor demotes itself after 7 s (pgautofailover.* GUCs).
MONITOR_SETTINGS = {
    "health_check_period": 1000,
    "health_check_timeout": 1000,
    "health_check_max_retries": 1,
    "health_check_retry_delay": 500,
    "node_considered_unhealthy_timeout": 4000,
    "primary_demote_timeout": 7000,
}
# A keeper that reaches neither the monitor nor its standby for 5 s demotes its primary.
NETWORK_PARTITION_TIMEOUT = 5
COMMAND_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


def pg_autoctl_binary() -> str | None:
    return shutil.which("pg_autoctl")


def pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer") or shutil.which("/usr/sbin/pgbouncer")


def engine(url: str) -> sa.Engine:
    """Unpooled, autocommit, and quick to give up on a server that is down."""
    return sa.create_engine(
        url,
        poolclass=sa.NullPool,
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 2},
    )


def url(port: int, *, user: str = "postgres", database: str = DATABASE) -> str:
    return f"postgresql+psycopg2://{user}@127.0.0.1:{port}/{database}"


def port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """`condition()`'s first true value, polled every 0.1 s; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(0.1)


class Process:
    """A long-running child in a process group of its own, its output in `log`."""

    def __init__(self, command: list[str], log: Path, **popen: Any) -> None:
        self.command, self.log, self.popen = command, log, popen
        self.process: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None

    def start(self) -> None:
        self._out = self.log.open("ab")
        try:
            self.process = subprocess.Popen(
                self.command,
                stdout=self._out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self.popen,
            )
        except BaseException:
            self._out.close()
            raise

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole group: no shutdown of anything in it."""
        self._signal_group(signal.SIGKILL)
        self._reap(STOP_TIMEOUT)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """`sig` to the leader, then SIGKILL to whatever of the group outlives STOP_TIMEOUT."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(sig)
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_TIMEOUT)
        self.kill()

    def group_alive(self) -> bool:
        if self.process is None:
            return False
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def _signal_group(self, sig: int) -> None:
        if self.process is not None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def _reap(self, timeout: float) -> None:
        if self.process is not None:
            self.process.wait(timeout=timeout)
            # Children of the group (a postmaster's backends) go once their parent is gone.
            wait_until(lambda: not self.group_alive(), timeout, f"{self.command[0]}'s group")
        if self._out is not None:
            self._out.close()
            self._out = None


class Formation:
    """Monitor, node1 (the first primary) and node2, with a PgBouncer in front of each node."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        autoctl = pg_autoctl_binary()
        assert autoctl, "no pg_autoctl"
        self.binary = autoctl
        self.root = Path(tempfile.mkdtemp(prefix="taskapi-ha-"))
        self.as_root = os.geteuid() == 0
        # PgBouncer (as nobody) reads its files in the tree; the data directories stay private.
        self.root.chmod(0o755)
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self.monitor_port = free_port()
        self.names = ["node1", "node2"]
        self.ports = {name: free_port() for name in self.names}
        self.bouncer_ports = {name: free_port() for name in self.names}
        self.keepers: dict[str, Process] = {}
        self.bouncers: dict[str, Process] = {}
        bindir = server_bin_dir()
        self.env = {
            "PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "PG_CONFIG": str(bindir / "pg_config"),
            "HOME": str(self.root),
            "XDG_CONFIG_HOME": str(self.root / "config"),
            "XDG_DATA_HOME": str(self.root / "share"),
            "XDG_RUNTIME_DIR": str(self.root / "run"),
            "LANG": "C.UTF-8",
        }
        self.monitor_uri = (
            f"postgres://autoctl_node@127.0.0.1:{self.monitor_port}/pg_auto_failover"
            "?sslmode=disable"
        )

    # -- running pg_autoctl as the unprivileged user ------------------------------------------

    def _as_user(self) -> dict[str, Any]:
        if not self.as_root:
            return {}
        return {"user": "postgres", "group": "postgres", "extra_groups": []}

    def autoctl(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> str:
        """Run `pg_autoctl args`; its output, or an error with it. Killed, group and all, on
        timeout."""
        log = self.root / "commands.log"
        with log.open("ab") as out:
            out.write(f"$ pg_autoctl {' '.join(args)}\n".encode())
        command = Process([self.binary, *args], log, cwd=self.root, env=self.env, **self._as_user())
        command.start()
        assert command.process is not None
        try:
            code = command.process.wait(timeout=timeout)
        finally:
            command.kill()
        if code != 0:
            raise RuntimeError(f"pg_autoctl {args[0]} {args[1]} exited with {code}; see {log}")
        return log.read_text(errors="replace")

    def _keeper(self, name: str) -> Process:
        run = [self.binary, "run", "--pgdata", str(self.root / name)]
        log = self.root / f"{name}.log"
        return Process(run, log, cwd=self.root, env=self.env, **self._as_user())

    def _create_node(self, name: str) -> None:
        self.autoctl(
            "create", "postgres", "--pgdata", str(self.root / name), "--name", name,
            "--pgport", str(self.ports[name]), "--hostname", "127.0.0.1", "--listen", "127.0.0.1",
            "--auth", "trust", "--no-ssl", "--dbname", DATABASE, "--monitor", self.monitor_uri,
        )  # fmt: skip
        self.autoctl(
            "config", "set", "--pgdata", str(self.root / name),
            "timeout.network_partition_timeout", str(NETWORK_PARTITION_TIMEOUT),
        )  # fmt: skip
        self.keepers[name] = self._keeper(name)
        self.keepers[name].start()

    # -- the formation's life -----------------------------------------------------------------

    def start(self) -> None:
        for folder in ("config", "share", "run"):
            (self.root / folder).mkdir(mode=0o700)
            if self.as_root:
                shutil.chown(self.root / folder, "postgres", "postgres")
        self.autoctl(
            "create", "monitor", "--pgdata", str(self.root / "monitor"),
            "--pgport", str(self.monitor_port), "--hostname", "127.0.0.1",
            "--listen", "127.0.0.1", "--auth", "trust", "--no-ssl",
        )  # fmt: skip
        self.keepers["monitor"] = self._keeper("monitor")
        self.keepers["monitor"].start()
        monitor = url(self.monitor_port, database="pg_auto_failover")
        wait_until(lambda: self._answers(monitor), 30, "the monitor")
        with engine(monitor).connect() as c:
            for name, value in MONITOR_SETTINGS.items():
                c.execute(sa.text(f"ALTER SYSTEM SET pgautofailover.{name} = {value}"))
            c.execute(sa.text("SELECT pg_reload_conf()"))

        self._create_node("node1")
        # The monitor has it as single from its registration on, before its keeper runs it.
        wait_until(lambda: self.states().get("node1") == ("single", "single"), 30, "node1")
        wait_until(lambda: self._answers(self.url("node1")), 30, "node1's PostgreSQL")
        with engine(self.url("node1", database="postgres")).connect() as c:
            c.execute(sa.text(f'CREATE ROLE "{ROLE}" LOGIN'))
            c.execute(sa.text(f'ALTER DATABASE "{DATABASE}" OWNER TO "{ROLE}"'))
        with engine(self.url("node1")).connect() as c:
            # pg_auto_failover preloads and creates it; reads are counted on each node with it.
            c.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
            c.execute(sa.text("CHECKPOINT"))
        self._create_node("node2")
        self.wait_for_roles("node1", "node2", timeout=60)
        for name in self.names:
            self._start_bouncer(name)

    def stop(self) -> None:
        """Stop everything, whatever state it is in, and remove the directory."""
        try:
            for process in [*self.bouncers.values(), *self.keepers.values()]:
                if process.running:
                    assert process.process is not None
                    process.process.send_signal(signal.SIGTERM)
            for process in [*self.bouncers.values(), *self.keepers.values()]:
                process.stop()
        finally:
            self._keep_logs()
            shutil.rmtree(self.root, ignore_errors=True)

    def _keep_logs(self) -> None:
        """The keepers', PostgreSQL's and PgBouncer's logs, copied to `logs` before the
        directory goes."""
        for log in self.root.glob("**/*.log"):
            if log.is_file():
                target = self.logs / log.relative_to(self.root).as_posix().replace("/", "_")
                shutil.copyfile(log, target)

    def __enter__(self) -> Formation:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- what the monitor says, and the moves ---------------------------------------------------

    def states(self) -> dict[str, tuple[str, str]]:
        """Each data node's (reported, assigned) state on the monitor; {} when it is down."""
        try:
            with engine(url(self.monitor_port, database="pg_auto_failover")).connect() as c:
                rows = c.execute(
                    sa.text("SELECT nodename, reportedstate, goalstate FROM pgautofailover.node")
                ).all()
        except sa.exc.OperationalError:
            return {}
        return {name: (str(reported), str(goal)) for name, reported, goal in rows}

    def wait_for_roles(self, primary: str, secondary: str, *, timeout: float) -> None:
        """Until `primary` is the primary and `secondary` its streaming standby, both settled."""
        wanted = {primary: ("primary", "primary"), secondary: ("secondary", "secondary")}
        wait_until(
            lambda: self.states() == wanted, timeout, f"{primary} primary, {secondary} standby"
        )

    def primary(self) -> str:
        """The data node the monitor has as primary (or on its way to be one)."""
        for name, (_, goal) in self.states().items():
            if goal in ("primary", "wait_primary", "single"):
                return name
        raise AssertionError(f"no primary: {self.states()}")

    def perform_failover(self) -> None:
        self.autoctl("perform", "failover", "--monitor", self.monitor_uri, "--wait", "30")

    def kill(self, name: str) -> None:
        """SIGKILL to the node's keeper and everything it runs, its PostgreSQL included, and to
        its PgBouncer: the loss of the node's machine, or of a pod with PgBouncer as sidecar."""
        self.keepers[name].kill()
        self.bouncers[name].kill()

    def restart(self, name: str) -> None:
        """The node's keeper and PgBouncer started again on their ports and directories."""
        self.keepers[name] = self._keeper(name)
        self.keepers[name].start()
        self._start_bouncer(name)

    # -- addresses ------------------------------------------------------------------------------

    def url(self, name: str, *, database: str = DATABASE, user: str = "postgres") -> str:
        return url(self.ports[name], user=user, database=database)

    def multi_host_url(self, ports: list[int], target_session_attrs: str) -> str:
        hosts = "&".join(f"host=127.0.0.1:{port}" for port in ports)
        return (
            f"postgresql+psycopg2://{ROLE}@/{DATABASE}?{hosts}"
            f"&target_session_attrs={target_session_attrs}"
        )

    def all_ports(self) -> list[int]:
        return [self.monitor_port, *self.ports.values(), *self.bouncer_ports.values()]

    @staticmethod
    def _answers(database_url: str) -> bool:
        try:
            with engine(database_url).connect():
                return True
        except sa.exc.OperationalError:
            return False

    def _start_bouncer(self, name: str) -> None:
        """PgBouncer with deploy/pgbouncer/pgbouncer.ini in front of node `name`, on loopback."""
        binary = pgbouncer_binary()
        assert binary, "no pgbouncer"
        workdir = self.root / f"pgbouncer-{name}"
        workdir.mkdir(exist_ok=True)
        workdir.chmod(0o777)  # nobody writes its log and pid there
        config = configparser.ConfigParser(inline_comment_prefixes=(";",))
        config.read(PGBOUNCER_INI)
        config["databases"] = {
            DATABASE: f"host=127.0.0.1 port={self.ports[name]} dbname={DATABASE}"
        }
        users = workdir / "userlist.txt"
        users.write_text(f'"{ROLE}" ""\n')
        config["pgbouncer"].update(
            listen_addr="127.0.0.1",
            listen_port=str(self.bouncer_ports[name]),
            auth_type="trust",
            auth_file=str(users),
            unix_socket_dir="",
            logfile=str(workdir / "pgbouncer.log"),
            pidfile=str(workdir / "pgbouncer.pid"),
        )
        ini = workdir / "pgbouncer.ini"
        with ini.open("w") as out:
            config.write(out)
        for written in (users, ini):
            written.chmod(0o644)
        as_user = ["-u", "nobody"] if self.as_root else []
        bouncer = Process([binary, *as_user, str(ini)], workdir / "stdout.log")
        bouncer.start()
        self.bouncers[name] = bouncer
        wait_until(lambda: port_open(self.bouncer_ports[name]), 10, f"PgBouncer for {name}")
