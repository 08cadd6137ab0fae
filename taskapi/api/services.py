"""What handlers need from the running app, built once by create_app."""

from __future__ import annotations

from dataclasses import dataclass

import flask

from taskapi.access_tokens import TokenCodec
from taskapi.config import Settings
from taskapi.db import Database
from taskapi.metrics import Metrics
from taskapi.passwords import PasswordHasher
from taskapi.readiness import Readiness

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
