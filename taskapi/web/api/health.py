"""Operations tagged `health`: liveness and readiness."""

from __future__ import annotations

from datetime import UTC, datetime

import flask

from taskapi.domain import timestamps
from taskapi.domain.errors import DomainError
from taskapi.web import context, spec_types
from taskapi.web.envelope import json_response, ok
from taskapi.web.serialize import checks_json


class NotReady(DomainError):
    code = "not_ready"


def get_health() -> flask.Response:
    """Liveness: the process answers. Never looks at the database."""
    now = datetime.now(UTC).replace(microsecond=0)
    health: spec_types.Health = {"status": "healthy", "time": timestamps.render(now)}
    return json_response(health)


def get_readiness() -> flask.Response:
    """Readiness: the database (and Redis) answer and the process is not draining."""
    checks = context.services().readiness.check()
    if not checks.ready:
        error = NotReady("not ready: " + ", ".join(checks.failing))
        error.extra = {"checks": checks_json(checks)}
        raise error
    return ok({"status": "ready", "checks": checks_json(checks)})
