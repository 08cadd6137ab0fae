"""create_app(): the one place where TaskAPI is wired together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from connexion.datastructures import MediaTypeDict
from connexion.middleware import ConnexionMiddleware, MiddlewarePosition
from connexion.middleware.routing import RoutingMiddleware
from connexion.options import SwaggerUIOptions

from taskapi.access_tokens import TokenCodec
from taskapi.api.caller import ServicesMiddleware
from taskapi.api.services import EXTENSION_KEY, Services
from taskapi.config import Settings
from taskapi.db import Database
from taskapi.docs import DocsMiddleware
from taskapi.errors import register_error_handlers
from taskapi.flask_app import FlaskApp
from taskapi.middleware import (
    BodyLimitMiddleware,
    CORSMiddleware,
    HeadAsGetMiddleware,
    SecurityHeadersMiddleware,
)
from taskapi.passwords import PasswordHasher
from taskapi.policies import runs_on_thread
from taskapi.resources import load_spec
from taskapi.routing import ExactRoutingMiddleware, RoutedOnlyMiddleware, Routes, TagResolver
from taskapi.validation import BodyValidator, ParamValidator


def connexion_middlewares() -> list[Any]:
    """Connexion's own stack, with its router replaced by one that answers the spec's paths
    only. A new list each time: add_middleware inserts into it."""
    return [
        ExactRoutingMiddleware if m is RoutingMiddleware else m
        for m in ConnexionMiddleware.default_middlewares
    ]


def create_app(settings: Settings | None = None) -> FlaskApp:
    """A TaskAPI ASGI app for `settings` (default: from the environment)."""
    settings = settings or Settings.from_env()
    spec = load_spec()
    db = Database(settings)
    services = Services(
        settings=settings,
        db=db,
        passwords=PasswordHasher(settings.bcrypt_rounds),
        token_codec=TokenCodec(settings.jwt_secret),
    )

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        yield
        app.bridge.close()
        db.dispose()

    app = FlaskApp(
        __name__,
        offload=runs_on_thread,
        lifespan=lifespan,
        middlewares=connexion_middlewares(),
        # taskapi/docs serves the spec as written and the docs pages instead.
        swagger_ui_options=SwaggerUIOptions(serve_spec=False, swagger_ui=False),
    )
    app.app.extensions[EXTENSION_KEY] = services
    app.add_api(
        spec,
        resolver=TagResolver(spec),
        strict_validation=True,
        validate_responses=settings.validate_responses,
        validator_map={
            "body": MediaTypeDict({"*/*json": BodyValidator}),
            "parameter": ParamValidator,
        },
    )
    register_error_handlers(app, Routes(spec))
    # Outermost first: these also see (and decorate) error responses.
    app.add_middleware(HeadAsGetMiddleware, position=MiddlewarePosition.BEFORE_EXCEPTION)
    app.add_middleware(SecurityHeadersMiddleware, position=MiddlewarePosition.BEFORE_EXCEPTION)
    app.add_middleware(
        CORSMiddleware,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        allow_origins=settings.cors_allowed_origins,
    )
    app.add_middleware(
        BodyLimitMiddleware,
        position=MiddlewarePosition.BEFORE_SWAGGER,
        max_bytes=settings.max_body_bytes,
    )
    app.add_middleware(DocsMiddleware, position=MiddlewarePosition.BEFORE_SWAGGER)
    app.add_middleware(
        ServicesMiddleware, position=MiddlewarePosition.BEFORE_SECURITY, services=services
    )
    app.add_middleware(RoutedOnlyMiddleware, position=MiddlewarePosition.BEFORE_CONTEXT)
    return app
