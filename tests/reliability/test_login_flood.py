"""A flood of logins at bcrypt cost 12 must not starve the rest of the API.

Logins arrive open-loop at LOGIN_RATE a second (tests/bench/flood.py: each on a thread of its
own, on a clock, half of them with a wrong password) while one client times GET /health and a
task list page in turn, first without the flood, then during it. Two workers on this
machine's cores hash far fewer than 20 passwords a second, so the excess must be refused with
a quick 503 (taskapi/web/middleware/admission.py) instead of queueing for seconds in front of
everything else.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.bench import client, flood

pytestmark = [pytest.mark.reliability, pytest.mark.live]

PASSWORD = "flood-password"
LOGIN_RATE = 20.0
FLOOD_SECONDS = 8.0
QUIET_SECONDS = 3.0
LIST = "/api/v1/tasks?limit=20"
# Each figure is printed with its goal (what an idle machine should show) and its bound (what
# the test asserts: room for a loaded CI machine, where other jobs take CPU from the server),
# both named, so a figure past its goal but within its bound does not read as a failure.
LIST_P99_TARGET_MS = 100
LIST_P99_BOUND_MS = 1000
LOGIN_TARGET_MS = 2000
LOGIN_BOUND_MS = 6000


def test_a_login_flood_is_shed_and_the_task_list_stays_fast(make_server, figures):
    server = make_server()  # production: bcrypt cost 12, the default slots and queue
    with client.api_client(server.base_url) as api:
        account = client.register(api, client.Account("flood@example.com", PASSWORD, "Flood"))
        token = client.login(api, account)
        client.create_tasks(api, token, 20)
    probe = flood.Probe(server.base_url, token)
    quiet = probe.run(QUIET_SECONDS)
    with flood.LoginFlood(server.base_url, account, rate=LOGIN_RATE, seconds=FLOOD_SECONDS) as f:
        during = probe.run(FLOOD_SECONDS)
    logins = f.summary()
    statuses = logins["by_status"]
    codes = Counter(a.code for a in f.answers if a.status == 503)
    slowest = logins["latency"]["max_ms"]
    list_p99 = during[LIST]["p99_ms"]
    figures(
        f"login flood: {logins['sent']} logins in {FLOOD_SECONDS:g} s at bcrypt cost 12 "
        f"({LOGIN_RATE:g}/s open loop): "
        + ", ".join(f"{k} x{v}" for k, v in statuses.items() if v)
        + f"; login answers p50 {logins['latency']['p50_ms']:.0f} ms, max {slowest:.0f} ms "
        f"(goal {LOGIN_TARGET_MS}, asserted < {LOGIN_BOUND_MS}); GET /api/v1/tasks p99 "
        f"{quiet[LIST]['p99_ms']:.1f} ms quiet, {list_p99:.1f} ms flooded (goal "
        f"{LIST_P99_TARGET_MS}, asserted < {LIST_P99_BOUND_MS}), served "
        f"{quiet[LIST]['count']} in {QUIET_SECONDS:g} s quiet, {during[LIST]['count']} in "
        f"{FLOOD_SECONDS:g} s flooded; /health p99 {during['/health']['p99_ms']:.1f} ms flooded"
    )

    assert logins["sent"] >= LOGIN_RATE * FLOOD_SECONDS * 0.9
    # Every login answered, with a status a client can act on; the only 5xx is admission's.
    assert statuses["no answer"] == statuses["other 5xx"] == statuses["other"] == 0, statuses
    assert len(f.answers) == logins["sent"]
    assert set(codes) <= {"overloaded"}, codes
    # Logins still work, right and wrong ones alike.
    assert statuses["200"] > 0, statuses
    assert statuses["401"] > 0, statuses
    assert slowest < LOGIN_BOUND_MS, f"a login took {slowest:.0f} ms"
    # The rest of the API keeps serving, one request at a time, at its quiet pace or close.
    for phase in (quiet, during):
        assert phase[LIST]["errors"] == phase["/health"]["errors"] == 0, phase
    assert list_p99 < LIST_P99_BOUND_MS, f"GET /api/v1/tasks p99 {list_p99:.0f} ms under flood"
