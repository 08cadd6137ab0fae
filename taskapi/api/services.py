"""What handlers need from the running app, built once by create_app."""

from __future__ import annotations

from dataclasses import dataclass

import flask

from taskapi.config import Settings
from taskapi.db import Database
from taskapi.security import PasswordHasher, TokenCodec

EXTENSION_KEY = "taskapi"


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    passwords: PasswordHasher
    tokens: TokenCodec


def current() -> Services:
    """The services of the app handling this request."""
    services: Services = flask.current_app.extensions[EXTENSION_KEY]
    return services
