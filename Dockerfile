# syntax=docker/dockerfile:1
# TaskAPI: build a wheel (which bundles the spec and the migrations), install it in a slim image.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY openapi/ openapi/
COPY migrations/ migrations/
COPY taskapi/ taskapi/
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# DB_MAX_IDLE_CONNS: each worker serves up to 10 requests at once; with fewer idle connections
# than that, the pool closes and reopens PostgreSQL connections under load (seed default: 5).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TASKAPI_ENV=production \
    SERVER_HOST=0.0.0.0 \
    SERVER_PORT=8080 \
    DB_MAX_IDLE_CONNS=10
RUN useradd --system --uid 10001 --home-dir /app --create-home taskapi
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER taskapi
WORKDIR /app
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2)"]
# uvicorn drains in-flight requests on SIGTERM for up to 20 s; Docker waits 10 s by default,
# so run with --stop-timeout 25 (compose: stop_grace_period) to let it finish.
CMD ["taskapi", "serve", "--no-access-log"]
