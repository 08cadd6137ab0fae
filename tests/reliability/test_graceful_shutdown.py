"""SIGTERM with slow requests in flight: drain, finish them, refuse new connections, exit 0.

Logins at bcrypt cost 12 are the slow requests (about 0.2 s of CPU each, queued behind one
another on each worker's bcrypt slot). Once all of them are inside the server (its /metrics
say so), the serve process gets SIGTERM, as an orchestrator sends it to a container's PID 1.
Meanwhile two clients open a new connection every PROBE_INTERVAL seconds, one for /ready and
one for /health, to see what a load balancer and a new client would meet.
"""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.bench import client

pytestmark = [pytest.mark.reliability, pytest.mark.live]

IN_FLIGHT = 20
DRAIN = 1.0
GRACE = 20.0  # the default, SHUTDOWN_GRACE_SECONDS
PROBE_INTERVAL = 0.05
PROBE_TIMEOUT = 2.0
# uvicorn's supervisor looks at its signals every 0.5 s before it passes SIGTERM on.
SIGNAL_DELAY = 0.5
# A connection a worker accepted in the instant it stopped listening is closed unread
# (uvicorn closes connections that have not sent a request yet): a reset at once, never a
# wait, and at most one or so per worker.
INSTANT = 0.25
WORKERS = 2


@dataclass(frozen=True)
class Probe:
    at: float  # seconds after SIGTERM
    path: str
    outcome: int | str  # the status, or the transport error's name
    seconds: float

    @property
    def refused(self) -> bool:
        return self.outcome == "ConnectError"


def bcrypt_requests(metrics_url: str) -> float:
    """Requests holding or waiting for a bcrypt slot, over every worker."""
    text = httpx.get(metrics_url, timeout=5).text
    names = {"taskapi_bcrypt_busy", "taskapi_bcrypt_queue_depth"}
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name in names
        for sample in family.samples
    )


def test_sigterm_drains_finishes_requests_in_flight_and_exits_0(make_server, figures):
    server = make_server(
        SHUTDOWN_DRAIN_SECONDS=str(DRAIN),
        SHUTDOWN_GRACE_SECONDS=str(GRACE),
        # One slot per worker, whatever the machine's cores; every login waits its turn for
        # it rather than being refused.
        BCRYPT_CONCURRENCY="1",
        BCRYPT_QUEUE=str(IN_FLIGHT),
        BCRYPT_MAX_WAIT="30",
    )
    account = client.Account("drain@example.com", "drain-password", "Drain")
    with client.api_client(server.base_url) as api:
        client.register(api, account)
    body = {"email": account.email, "password": account.password}
    probes: list[Probe] = []
    stop_probing = threading.Event()
    terminated = 0.0

    def log_in(_: int) -> httpx.Response:
        return httpx.post(f"{server.base_url}/api/v1/auth/login", json=body, timeout=30)

    def probe(path: str) -> None:
        while not stop_probing.is_set():
            started = time.monotonic()
            try:  # a new connection each time
                response = httpx.get(f"{server.base_url}{path}", timeout=PROBE_TIMEOUT)
                outcome: int | str = response.status_code
            except httpx.TransportError as error:
                outcome = type(error).__name__
            probes.append(Probe(started - terminated, path, outcome, time.monotonic() - started))
            stop_probing.wait(PROBE_INTERVAL)

    probers = [threading.Thread(target=probe, args=(path,)) for path in ("/ready", "/health")]
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        logins = [pool.submit(log_in, i) for i in range(IN_FLIGHT)]
        deadline = time.monotonic() + 10
        while True:  # until every login is inside the server (or done), most of them inside
            inside = bcrypt_requests(server.metrics_url)
            if inside >= IN_FLIGHT // 2 and inside + sum(f.done() for f in logins) >= IN_FLIGHT:
                break
            assert time.monotonic() < deadline, "the logins never were in flight"
            time.sleep(0.02)
        terminated = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        for prober in probers:
            prober.start()
        try:
            returncode = server.process.wait(timeout=DRAIN + GRACE + 5)
        finally:
            exited = time.monotonic() - terminated
            stop_probing.set()
            for prober in probers:
                prober.join()
        answers = [future.result() for future in logins]

    ready = [p for p in probes if p.path == "/ready"]
    not_ready_at = min((p.at for p in ready if p.outcome == 503), default=None)
    served = [p for p in probes if p.path == "/health" and p.outcome == 200]
    refused_from = min((p.at for p in probes if p.refused), default=None)
    failed = [p for p in probes if isinstance(p.outcome, str) and not p.refused]
    figures(
        f"graceful shutdown: SIGTERM with {inside:.0f} of {IN_FLIGHT} logins (bcrypt cost 12) "
        f"in flight, {sum(r.status_code == 200 for r in answers)} of {IN_FLIGHT} answered 200; "
        f"exit status {returncode} "
        f"{exited:.2f} s after SIGTERM (drain {DRAIN:g} s, grace {GRACE:g} s); new connections "
        f"every {PROBE_INTERVAL * 1000:.0f} ms: /ready 503 from +{_seconds(not_ready_at)}, "
        f"/health served until +{_seconds(max((p.at for p in served), default=None))}, "
        f"refused from +{_seconds(refused_from)}; reset {len(failed)} "
        + " ".join(f"({p.outcome} at +{p.at:.2f} s after {p.seconds:.2f} s)" for p in failed)
    )

    # The requests in flight finish as they would have.
    assert [r.status_code for r in answers] == [200] * IN_FLIGHT
    assert all(r.json()["data"]["token"] for r in answers)
    # Draining: not ready, but new connections are still served.
    assert not_ready_at is not None, ready
    assert not_ready_at < SIGNAL_DELAY + DRAIN, ready
    assert all(p.outcome != 200 for p in ready if p.at > not_ready_at), ready
    assert any(p.at > not_ready_at for p in served), probes
    # Then refused at once: never accepted and left waiting until the process exits.
    assert refused_from is not None, probes
    assert refused_from < exited, probes
    assert all(p.seconds < INSTANT for p in failed), failed
    assert len(failed) <= WORKERS, failed
    assert returncode == 0
    assert exited < DRAIN + GRACE


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"
