# syntax=docker/dockerfile:1
# TaskAPI in two stages: install exactly the runtime set uv.lock pins (hashes checked) and the
# package itself (a wheel, which bundles the spec and the migrations) into a virtual
# environment; then copy only that environment into a slim runtime image, without uv, its
# cache or the build context. The environment carries what it was built from: the lock and a
# CycloneDX SBOM of it, in /opt/taskapi/share/taskapi/.
#
#   docker build -t taskapi .
#   docker run --rm -e DATABASE_URL=... -e JWT_SECRET=... taskapi taskapi db upgrade
#   docker run --stop-timeout 30 -p 8080:8080 -e DATABASE_URL=... -e JWT_SECRET=... taskapi

FROM python:3.11-slim AS build
WORKDIR /src
# The Makefile's UV_VERSION; tests/test_image_runtime.py checks the two agree.
RUN pip install --no-cache-dir --root-user-action=ignore uv==0.13.10
COPY pyproject.toml uv.lock README.md ./
COPY openapi/ openapi/
COPY migrations/ migrations/
COPY taskapi/ taskapi/
# Every dependency ships manylinux wheels: nothing is compiled, so no compiler is installed.
# uv's venv has no pip; uv compiles the bytecode, so a read-only root needs none.
# The tracing extra comes along, so that an OTEL_* variable alone turns traces on; until one
# does, none of it is loaded.
ENV UV_PROJECT_ENVIRONMENT=/opt/taskapi \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_NO_CACHE=1
RUN uv sync --frozen --no-editable --extra tracing --quiet \
    && mkdir -p /opt/taskapi/share/taskapi \
    && cp uv.lock /opt/taskapi/share/taskapi/ \
    && uv export --frozen --extra tracing --format cyclonedx1.5 --quiet \
        --output-file /opt/taskapi/share/taskapi/sbom.cdx.json

FROM python:3.11-slim
# A numeric user and group, so Kubernetes' runAsNonRoot can check them without /etc/passwd;
# the entry still exists for libraries that look the user up. /app is its home and workdir.
RUN groupadd --system --gid 10001 taskapi \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --create-home taskapi
COPY --from=build /opt/taskapi /opt/taskapi
# DB_MAX_OPEN_CONNS / DB_MAX_IDLE_CONNS: a worker runs at most 10 requests at once (its WSGI
# thread pool), so it never needs more than 10 connections; keeping all 10 when idle stops the
# pool from closing and reopening PostgreSQL connections under load (seed defaults: 25 and 5).
# docs/deploying.md works out the connection budget from these.
ENV PATH=/opt/taskapi/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TASKAPI_ENV=production \
    SERVER_PORT=8080 \
    METRICS_PORT=9464 \
    DB_MAX_OPEN_CONNS=10 \
    DB_MAX_IDLE_CONNS=10
USER 10001:10001
WORKDIR /app
# 8080: the API. 9464: Prometheus /metrics, a listener of its own. It binds SERVER_HOST as the
# API does; it stays private only while nothing publishes it (docker run -p 8080:8080 alone;
# compose maps it to 127.0.0.1; Kubernetes: networkpolicy.yaml admits the monitoring namespace).
EXPOSE 8080 9464
# Docker's health status means "ready for traffic": /ready answers 503 while PostgreSQL (or
# Redis) is down and while the process drains after SIGTERM. Compose waits on it. Liveness is
# /health, which never touches the database: orchestrators that restart containers (the
# Kubernetes livenessProbe) use that, so a database outage does not restart every replica.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import http.client as h, os; c = h.HTTPConnection('127.0.0.1', int(os.environ.get('SERVER_PORT', '8080')), timeout=2); c.request('GET', '/ready'); raise SystemExit(c.getresponse().status != 200)"]
# On SIGTERM taskapi serve keeps serving for SHUTDOWN_DRAIN_SECONDS (production: 5) with
# /ready at 503, then gives in-flight requests SHUTDOWN_GRACE_SECONDS (20) to finish. Docker
# waits only 10 s before SIGKILL: stop with --stop-timeout 30 (compose: stop_grace_period).
# taskapi serve handles the signal itself as PID 1 and reaps its own worker processes.
STOPSIGNAL SIGTERM
# Workers: WEB_CONCURRENCY. Migrations from the same image: `taskapi db upgrade`.
CMD ["taskapi", "serve"]
