"""A real Prometheus scrapes `taskapi serve`: it sees the server up and the requests it was sent,
at their rate; the alert rules load and evaluate; every query of the Grafana dashboard returns
data; and rules and dashboard name only metrics the server exports.

Prometheus is Debian's package (`make prometheus`). Without it these tests skip, saying so;
under CI=true (.ci/run installs it) they fail instead.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.metrics_server import samples, served
from tests.serving import free_port, wait_until_serving

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = os.environ.get("PROMETHEUS", "/usr/bin/prometheus")
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "taskapi.json"
JOB = "taskapi"
# Short enough that the whole module takes seconds; the rules are evaluated as often.
SCRAPE_SECONDS = 1
# Requests sent before Prometheus's "before" sample, and after it.
FIRST, SECOND = 3, 20
LIST_401 = f'taskapi_requests_total{{job="{JOB}", operation="listTasks", status="401"}}'


@dataclass(frozen=True)
class Scraped:
    """A Prometheus that scraped a server through known traffic."""

    url: str
    before: float  # Prometheus had scraped the first FIRST requests, and no more were sent
    after: float  # it had scraped all FIRST + SECOND
    exported: frozenset[str]  # the metric names the server's /metrics exported, at the end

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """The instant vector `expr` at `at` (default: after the traffic)."""
        response = httpx.get(
            f"{self.url}/api/v1/query",
            params={"query": expr, "time": str(at or self.after)},
            timeout=10,
        )
        assert response.status_code == 200, f"{expr}: {response.text}"
        result: list[dict[str, Any]] = response.json()["data"]["result"]
        return result

    def value(self, expr: str, at: float | None = None) -> float:
        (sample,) = self.query(expr, at)
        return float(sample["value"][1])


def prometheus_binary() -> str:
    """Prometheus, or a skip (a failure under CI=true) saying it is missing."""
    if not os.access(PROMETHEUS, os.X_OK):
        problem = f"no Prometheus at {PROMETHEUS} (`make prometheus` installs Debian's)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem + " (CI=true requires the Prometheus tests)")
        pytest.skip(problem)
    return PROMETHEUS


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    binary = prometheus_binary()
    workdir = tmp_path_factory.mktemp("prometheus")
    # Logins past 3 a minute are refused, so the rate-limit panels have data.
    settings = {"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_AUTH": "3/minute"}
    with (
        served(workdir, 1, **settings) as (base, metrics_url, _),
        httpx.Client(base_url=base, timeout=10) as http,
        running_prometheus(binary, workdir, metrics_url) as url,
    ):
        prometheus = Scraped(url, 0.0, 0.0, frozenset())
        for _ in range(FIRST):
            assert http.get("/api/v1/tasks").status_code == 401
        account = {"email": "prom@example.com", "password": "password123", "name": "Prom"}
        assert http.post("/api/v1/auth/register", json=account).status_code == 201
        login = {"email": account["email"], "password": account["password"]}
        statuses = {http.post("/api/v1/auth/login", json=login).status_code for _ in range(4)}
        assert 429 in statuses
        assert http.get("/ready").status_code == 200
        wait_for(prometheus, LIST_401, FIRST)
        before = time.time()
        # Spread over a few scrapes, so that the rate is one Prometheus measured.
        for _ in range(SECOND):
            assert http.get("/api/v1/tasks").status_code == 401
            http.get("/ready")
            time.sleep(0.15)
        wait_for(prometheus, LIST_401, FIRST + SECOND)
        exported = frozenset(name for name, _ in samples(metrics_url))
        yield Scraped(url, before, time.time(), exported)


@contextmanager
def running_prometheus(binary: str, workdir: Path, metrics_url: str) -> Iterator[str]:
    """Prometheus on a free loopback port, scraping `metrics_url` as job `taskapi` every
    second with the alert rules loaded, its data in `workdir`; its URL."""
    target = httpx.URL(metrics_url)
    config = {
        "global": {
            "scrape_interval": f"{SCRAPE_SECONDS}s",
            "scrape_timeout": f"{SCRAPE_SECONDS}s",
            "evaluation_interval": f"{SCRAPE_SECONDS}s",
        },
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": JOB, "static_configs": [{"targets": [f"{target.host}:{target.port}"]}]}
        ],
    }
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("a") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, process, log, timeout=30, path="/-/ready")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_for(prometheus: Scraped, expr: str, expected: float, timeout: float = 20) -> None:
    """Return once `expr` is `expected` in Prometheus now; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        seen = prometheus.query(expr, at=time.time())
        if [float(s["value"][1]) for s in seen] == [expected]:
            return
        time.sleep(0.2)
    pytest.fail(f"{expr} was not {expected} within {timeout} s: {seen}")


def test_prometheus_scrapes_taskapi(scraped):
    assert scraped.value(f'up{{job="{JOB}"}}') == 1


def test_prometheus_sees_each_request_sent_and_their_rate(scraped):
    assert scraped.value(LIST_401, at=scraped.before) == FIRST
    assert scraped.value(LIST_401) == FIRST + SECOND
    # A window from just before the second batch: Prometheus extrapolates a little past the
    # samples it has, never below what it saw.
    window = math.ceil(scraped.after - scraped.before) + 2 * SCRAPE_SECONDS
    increase = scraped.value(f"increase({LIST_401}[{window}s])")
    assert SECOND <= increase <= 2 * SECOND
    rate = scraped.value(f"rate({LIST_401}[{window}s])")
    assert rate == pytest.approx(increase / window)
    assert scraped.value(f'sum(taskapi_requests_total{{job="{JOB}", status="429"}})') >= 1


def test_the_alert_rules_load_and_evaluate(scraped):
    groups = httpx.get(f"{scraped.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    written = [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]
    assert len(rules) == len(written)
    unhealthy = [(r["name"], r["health"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert unhealthy == []
    # No request failed or was slow: the objectives' ratios are 0, not absent.
    assert scraped.value(f'taskapi:request_errors:ratio_rate5m{{job="{JOB}"}}') == 0
    assert scraped.value(f'taskapi:request_slow:ratio_rate5m{{job="{JOB}"}}') == 0
    firing = [r["name"] for r in rules if r.get("state") == "firing"]
    assert firing == []


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


def test_every_dashboard_query_returns_data(scraped):
    queries = dashboard_queries()
    assert len(queries) >= 10
    empty = []
    for title, expr in queries:
        # What Grafana substitutes: the job chosen, and a window of several scrapes.
        resolved = expr.replace("$job", JOB).replace("$__rate_interval", "1m")
        if not scraped.query(resolved):
            empty.append((title, resolved))
    assert empty == []


def test_rules_and_dashboard_name_only_exported_metrics(scraped):
    named = set(re.findall(r"\b(taskapi_[a-z_]+)", RULES.read_text() + DASHBOARD.read_text()))
    assert named
    assert sorted(named - scraped.exported) == []
