"""`/metrics` counts what `taskapi serve` served, with one worker as with several, and a
server's multiprocess directory does not outlive it, even when it is killed."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from tests.metrics_server import samples, served

pytestmark = pytest.mark.live


ROOT = Path(__file__).resolve().parent.parent
# The Kubernetes manifests' settings (the image's are TASKAPI_ENV=production and its defaults,
# the same but for what the manifests add), less what points at the cluster's other services.
MANIFESTS = ROOT / "deploy" / "k8s" / "base" / "config.env"
CLUSTER_ONLY = {"SERVER_PORT", "METRICS_PORT", "REDIS_URL", "SHUTDOWN_DRAIN_SECONDS"}


def manifest_settings() -> dict[str, str]:
    settings = {}
    for line in MANIFESTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            if name not in CLUSTER_ONLY and not name.startswith("DB_"):
                settings[name] = value
    return settings


@pytest.mark.parametrize(
    ("workers", "settings"),
    [
        pytest.param(1, {}, id="one-worker"),
        pytest.param(2, {}, id="two-workers"),
        pytest.param(1, {"TASKAPI_ENV": "production"}, id="image"),
        pytest.param(1, manifest_settings(), id="kubernetes"),
    ],
)
def test_metrics_count_every_request_in_every_configuration(tmp_path, workers, settings):
    with served(tmp_path, workers, **settings) as (base, metrics_url, _):
        with httpx.Client(base_url=base, timeout=10) as http:
            for _ in range(3):
                assert http.get("/api/v1/tasks").status_code == 401
            body = {"email": "metrics@example.com", "password": "password123", "name": "Metrics"}
            assert http.post("/api/v1/auth/register", json=body).status_code == 201
        seen = samples(metrics_url)

    def value(name: str, **labels: str) -> float | None:
        return seen.get((name, frozenset(labels.items())))

    assert value("taskapi_requests_total", operation="listTasks", status="401") == 3
    assert value("taskapi_requests_total", operation="register", status="201") == 1
    assert value("taskapi_request_duration_seconds_count", operation="listTasks", status="401") == 3
    buckets = [name for (name, labels) in seen if name == "taskapi_request_duration_seconds_bucket"]
    assert len(buckets) >= 12
    assert any(name == "taskapi_db_connections_in_use" for name, _ in seen)
    assert any(name == "taskapi_bcrypt_busy" for name, _ in seen)


def test_a_killed_servers_metrics_directory_is_removed_by_the_next_one(tmp_path):
    with served(tmp_path, 2) as (_, _, process):
        (directory,) = tmp_path.glob("taskapi-metrics-*")
        assert any(directory.iterdir())
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert directory.exists()  # nobody was left to remove it
    with served(tmp_path, 1):
        assert not directory.exists()
        (current,) = tmp_path.glob("taskapi-metrics-*")
    assert not current.exists()  # a server that stops removes its own
