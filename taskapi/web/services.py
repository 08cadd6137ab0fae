"""What handlers need from the running app, built once by create_app."""

from __future__ import annotations

from dataclasses import dataclass

import flask

from taskapi.config import Settings
from taskapi.domain.access_tokens import TokenCodec
from taskapi.domain.passwords import PasswordHasher
from taskapi.ops.metrics import Metrics
from taskapi.ops.readiness import Readiness
from taskapi.storage.db import Database

EXTENSION_KEY = "taskapi"


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    passwords: PasswordHasher
    token_codec: TokenCodec
    readiness: Readiness
    metrics: Metrics

    def close(self) -> None:
        """Release the database pools and the readiness probe's connection."""
        self.readiness.close()
        self.db.dispose()


def current() -> Services:
    """The services of the app handling this request."""
    services: Services = flask.current_app.extensions[EXTENSION_KEY]
    return services
