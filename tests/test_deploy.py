"""The deployment files agree with the app: settings, ports, probe paths and shutdown timing.

The Kubernetes manifests are rendered by the kustomize inside the dev extras' kubectl, as
`make deploy-check` renders them; no cluster is needed.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from dotenv import dotenv_values

from taskapi.config import SAME_IN_PRODUCTION, ConfigError, Settings, declarations, env_names
from taskapi.resources import load_spec

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
KUBECTL = Path(sys.executable).parent / "kubectl"
OVERLAYS = ["base", "overlays/production"]
# Read by a library rather than by Settings: prometheus_client's multiprocess directory.
LIBRARY_ENV = frozenset({"PROMETHEUS_MULTIPROC_DIR"})
# The Dockerfile's own: Python's and the shell's.
IMAGE_ENV = frozenset({"PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"})
# PostgreSQL's default max_connections, less superuser_reserved_connections.
POSTGRES_CONNECTIONS = 100 - 3
A_SECRET = "a-real-secret-that-is-long-enough-for-hs256"


def production_default(env: str) -> Any:
    """The value Settings uses for `env` with TASKAPI_ENV=production and nothing else set."""
    field = next(f for f in dataclasses.fields(Settings) if f.metadata["declaration"].env == env)
    declared = declarations()[field.name]
    return field.default if declared.production is SAME_IN_PRODUCTION else declared.production


def seconds(duration: str) -> float:
    """A compose duration such as `30s` or `1m30s`."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


# --- docker compose and .env.example -----------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def env_example() -> dict[str, str]:
    return {k: v or "" for k, v in dotenv_values(ROOT / ".env.example").items()}


def taskapi_services() -> dict[str, dict[str, Any]]:
    """The compose services that run this repository's image (not postgres or redis)."""
    return {name: s for name, s in compose()["services"].items() if "build" in s}


def compose_environment(service: dict[str, Any]) -> dict[str, str]:
    """What the service's container gets: its env_file (a copy of .env.example) and environment."""
    assert service["env_file"] == ".env"
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {**env_example(), **{k: str(v) for k, v in environment.items()}}


def test_compose_runs_the_migrations_and_the_api_from_this_image():
    assert set(taskapi_services()) == {"migrate", "api"}


@pytest.mark.parametrize("name", ["migrate", "api"])
def test_compose_and_env_example_set_only_variables_settings_reads(name):
    service = taskapi_services()[name]
    assert set(compose_environment(service)) <= env_names()


def test_env_example_values_are_valid_settings_once_the_secrets_are_filled_in():
    values = {**compose_environment(taskapi_services()["api"]), "JWT_SECRET": A_SECRET}
    values["DB_PASSWORD"] = "secret"
    settings = Settings.from_env(values, dotenv=None)
    assert settings.env == "production"
    assert settings.database_url.startswith("postgresql+psycopg2://taskapi:secret@db:5432/")


def test_env_example_holds_no_secret():
    example = env_example()
    assert example["JWT_SECRET"] == ""
    assert example["DB_PASSWORD"] == ""
    with pytest.raises(ConfigError, match="JWT_SECRET is required"):
        Settings.from_env(compose_environment(taskapi_services()["api"]), dotenv=None)


def test_compose_api_waits_for_a_healthy_database_and_redis_and_finished_migrations():
    services = compose()["services"]
    assert services["api"]["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert services["migrate"]["command"] == ["taskapi", "db", "upgrade"]
    assert services["db"]["image"].startswith("postgres:16")
    assert "healthcheck" in services["db"]
    assert "healthcheck" in services["redis"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["db"]["volumes"])


def test_compose_stop_grace_period_covers_drain_and_grace():
    environment = compose_environment(taskapi_services()["api"])
    drain = float(
        environment.get("SHUTDOWN_DRAIN_SECONDS") or production_default("SHUTDOWN_DRAIN_SECONDS")
    )
    grace = float(
        environment.get("SHUTDOWN_GRACE_SECONDS") or production_default("SHUTDOWN_GRACE_SECONDS")
    )
    assert seconds(compose()["services"]["api"]["stop_grace_period"]) > drain + grace


def test_compose_publishes_the_api_and_keeps_metrics_on_the_host():
    ports = compose()["services"]["api"]["ports"]
    assert f"{production_default('SERVER_PORT')}:{production_default('SERVER_PORT')}" in ports
    metrics = production_default("METRICS_PORT")
    assert f"127.0.0.1:{metrics}:{metrics}" in ports


# --- Dockerfile --------------------------------------------------------------------------


def dockerfile_instructions(name: str) -> list[str]:
    """The arguments of every `name` instruction of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    return [m.group(1) for m in re.finditer(rf"^{name}\s+(.*)$", text, re.M)]


def image_user() -> tuple[int, int]:
    (user,) = dockerfile_instructions("USER")
    uid, gid = user.split(":")
    return int(uid), int(gid)


def test_dockerfile_runs_as_a_numeric_non_root_user():
    uid, gid = image_user()
    assert uid >= 10000
    assert gid >= 10000


def test_dockerfile_exposes_the_api_and_metrics_ports_and_health_checks_readiness():
    (exposed,) = dockerfile_instructions("EXPOSE")
    ports = {int(p) for p in exposed.split()}
    assert ports == {production_default("SERVER_PORT"), production_default("METRICS_PORT")}
    (healthcheck,) = dockerfile_instructions("HEALTHCHECK")
    assert "'/ready'" in healthcheck
    assert dockerfile_instructions("STOPSIGNAL") == ["SIGTERM"]
    assert dockerfile_instructions("CMD") == ['["taskapi", "serve"]']


def test_dockerfile_sets_only_settings_taskapi_reads():
    # The build stage's ENV is uv's; the runtime stage's comes last.
    *build, environment = dockerfile_instructions("ENV")
    assert all(name.startswith("UV_") for env in build for name in re.findall(r"(\w+)=", env))
    names = set(re.findall(r"(\w+)=", environment))
    assert names
    assert names - IMAGE_ENV <= env_names()


# --- Kubernetes --------------------------------------------------------------------------


def render(overlay: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(K8S / overlay)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


def one(documents: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    (found,) = [
        d
        for d in documents
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    return found


def secret_example() -> dict[str, str]:
    loaded: dict[str, Any] = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    data: dict[str, str] = loaded["stringData"]
    return data


def pod_environment(documents: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """What the container's process sees: its envFrom ConfigMap and Secret, then its env."""
    values: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            values.update(one(documents, "ConfigMap", name)["data"])
        else:
            assert source["secretRef"]["name"] == "taskapi"
            values.update(secret_example())
    values.update({e["name"]: e["value"] for e in container.get("env", [])})
    return values


def api_pod(documents: list[dict[str, Any]]) -> dict[str, Any]:
    pod: dict[str, Any] = one(documents, "Deployment", "taskapi")["spec"]["template"]["spec"]
    return pod


def migration_pod(documents: list[dict[str, Any]]) -> dict[str, Any]:
    pod: dict[str, Any] = one(documents, "Job", "taskapi-migrate")["spec"]["template"]["spec"]
    return pod


def container_ports(container: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container["ports"]}


def test_probes_use_the_specs_health_and_ready_paths_on_the_api_port(rendered):
    (api,) = api_pod(rendered)["containers"]
    paths = load_spec()["paths"]
    probes = {
        kind: api[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes["startupProbe"]["path"] == "/health"
    assert probes["livenessProbe"]["path"] == "/health"
    assert probes["readinessProbe"]["path"] == "/ready"
    for probe in probes.values():
        assert "get" in paths.get(probe["path"], {}), f"the spec has no GET {probe['path']}"
        assert container_ports(api)[probe["port"]] == production_default("SERVER_PORT")


def test_container_ports_are_the_ports_taskapi_listens_on(rendered):
    (api,) = api_pod(rendered)["containers"]
    environment = pod_environment(rendered, api)
    ports = container_ports(api)
    assert ports == {
        "http": production_default("SERVER_PORT"),
        "metrics": production_default("METRICS_PORT"),
    }
    assert int(environment.get("SERVER_PORT", ports["http"])) == ports["http"]
    assert int(environment.get("METRICS_PORT", ports["metrics"])) == ports["metrics"]
    pod_metadata = one(rendered, "Deployment", "taskapi")["spec"]["template"]["metadata"]
    assert pod_metadata["annotations"]["prometheus.io/port"] == str(ports["metrics"])
    service = one(rendered, "Service", "taskapi")
    assert {p["targetPort"] for p in service["spec"]["ports"]} == set(ports)


def test_pods_set_only_variables_settings_reads_and_valid_values(rendered):
    for pod in (api_pod(rendered), migration_pod(rendered)):
        (container,) = pod["containers"]
        environment = pod_environment(rendered, container)
        assert set(environment) - LIBRARY_ENV <= env_names()
        settings_env = {k: v for k, v in environment.items() if k not in LIBRARY_ENV}
        settings = Settings.from_env({**settings_env, "JWT_SECRET": A_SECRET}, dotenv=None)
        assert settings.env == "production"
        assert not settings.is_sqlite


def test_secret_example_is_placeholders_taskapi_refuses():
    secret = secret_example()
    assert set(secret) <= env_names()
    with pytest.raises(ConfigError, match="JWT_SECRET must be at least"):
        Settings.from_env({"TASKAPI_ENV": "production", **secret}, dotenv=None)


def test_termination_grace_covers_prestop_drain_and_grace(rendered):
    pod = api_pod(rendered)
    (api,) = pod["containers"]
    environment = pod_environment(rendered, api)
    drain = float(
        environment.get("SHUTDOWN_DRAIN_SECONDS", production_default("SHUTDOWN_DRAIN_SECONDS"))
    )
    grace = float(
        environment.get("SHUTDOWN_GRACE_SECONDS", production_default("SHUTDOWN_GRACE_SECONDS"))
    )
    pre_stop = api["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop > 0
    assert pod["terminationGracePeriodSeconds"] > pre_stop + drain + grace


def test_pods_run_as_the_images_user_read_only_and_unprivileged(rendered):
    uid, gid = image_user()
    for pod in (api_pod(rendered), migration_pod(rendered)):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == uid
        assert pod["securityContext"]["runAsGroup"] == gid
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        (container,) = pod["containers"]
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        }
        assert container["resources"]["requests"]
        assert container["resources"]["limits"]
        empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        mounted = {m["mountPath"] for m in container["volumeMounts"] if m["name"] in empty_dirs}
        assert "/tmp" in mounted  # noqa: S108 (a mount path in a manifest)
    (api,) = api_pod(rendered)["containers"]
    assert pod_environment(rendered, api)["PROMETHEUS_MULTIPROC_DIR"] in {
        m["mountPath"] for m in api["volumeMounts"]
    }


def test_migration_job_runs_db_upgrade_once_from_the_same_image_and_config(rendered):
    (api,) = api_pod(rendered)["containers"]
    (migrate,) = migration_pod(rendered)["containers"]
    assert migrate["command"] == ["taskapi", "db", "upgrade"]
    assert migrate["image"] == api["image"]
    assert migrate["envFrom"] == api["envFrom"]
    assert migration_pod(rendered)["restartPolicy"] == "Never"


def test_api_pods_spread_across_nodes(rendered):
    spread = api_pod(rendered)["topologySpreadConstraints"]
    by_node = [c for c in spread if c["topologyKey"] == "kubernetes.io/hostname"]
    assert by_node
    assert by_node[0]["whenUnsatisfiable"] == "DoNotSchedule"


def test_network_policy_admits_the_api_port_and_metrics_from_monitoring_only(rendered):
    (api,) = api_pod(rendered)["containers"]
    ports = container_ports(api)
    policy = one(rendered, "NetworkPolicy", "taskapi")["spec"]
    public, metrics = policy["ingress"]
    assert "from" not in public
    assert [p["port"] for p in public["ports"]] == [ports["http"]]
    assert [p["port"] for p in metrics["ports"]] == [ports["metrics"]]
    assert metrics["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    egress_ports = sorted(p["port"] for rule in policy["egress"] for p in rule["ports"])
    assert egress_ports == [53, 53, 5432, 6379]


def test_production_runs_three_replicas_within_the_connection_budget():
    documents = render("overlays/production")
    hpa = one(documents, "HorizontalPodAutoscaler", "taskapi")["spec"]
    assert hpa["minReplicas"] == 3
    deployment = one(documents, "Deployment", "taskapi")["spec"]
    assert "replicas" not in deployment  # the autoscaler owns the count
    (api,) = deployment["template"]["spec"]["containers"]
    environment = pod_environment(documents, api)
    pods = hpa["maxReplicas"] + deployment["strategy"]["rollingUpdate"]["maxSurge"]
    per_pod = int(environment["WEB_CONCURRENCY"]) * int(environment["DB_MAX_OPEN_CONNS"])
    migration = 1
    assert pods * per_pod + migration <= POSTGRES_CONNECTIONS


def test_service_monitor_scrapes_the_services_metrics_port_as_the_taskapi_job(rendered):
    monitor: dict[str, Any] = yaml.safe_load(
        (K8S / "monitoring" / "servicemonitor.yaml").read_text()
    )
    assert monitor["kind"] == "ServiceMonitor"
    service = one(rendered, "Service", "taskapi")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    # The operator names the job after the Service, as the alert rules expect.
    assert "jobLabel" not in monitor["spec"]
    assert service["metadata"]["name"] == "taskapi"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    (api,) = api_pod(rendered)["containers"]
    annotations = one(rendered, "Deployment", "taskapi")["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert endpoint["path"] == annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/scrape"] == "true"
    assert container_ports(api)[endpoint["port"]] == int(annotations["prometheus.io/port"])


# --- Prometheus alerts -------------------------------------------------------------------

PROMETHEUS_RULES = ROOT / "deploy" / "prometheus"


def alert_rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load((PROMETHEUS_RULES / "alerts.yml").read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"] if "alert" in rule]


def test_every_alert_has_a_severity_a_runbook_and_a_test_that_fires_it():
    rules = alert_rules()
    assert len(rules) >= 10
    tests = yaml.safe_load((PROMETHEUS_RULES / "alerts_test.yml").read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    runbook = (ROOT / "docs" / "deploying.md").read_text()
    for rule in rules:
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
        assert rule["annotations"]["runbook"] == "docs/deploying.md#alerts", rule["alert"]
        assert rule["alert"] in fired, f"no test in alerts_test.yml fires {rule['alert']}"
        assert f"| `{rule['alert']}` |" in runbook, (
            f"docs/deploying.md does not explain {rule['alert']}"
        )
    assert "\n### Alerts\n" in runbook
