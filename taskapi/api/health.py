"""Liveness: answers without touching the database."""

from __future__ import annotations

from datetime import UTC, datetime

import flask

from taskapi import timestamps
from taskapi.api.envelope import json_response


def get_health() -> flask.Response:
    now = datetime.now(UTC).replace(microsecond=0)
    return json_response({"status": "healthy", "time": timestamps.render(now)})
