"""create_app(): the one place where TaskAPI is wired together."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import connexion
from connexion.datastructures import MediaTypeDict
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from connexion.resolver import Resolver
from connexion.utils import get_function_from_name

from taskapi.api.services import EXTENSION_KEY, Services
from taskapi.config import Settings
from taskapi.db import Database, make_engine
from taskapi.docs import DocsMiddleware
from taskapi.errors import HTTP_METHODS, Routes, register_error_handlers
from taskapi.middleware import (
    BodyLimitMiddleware,
    CORSMiddleware,
    HeadAsGetMiddleware,
    SecurityHeadersMiddleware,
    TokensMiddleware,
)
from taskapi.resources import load_spec
from taskapi.security import PasswordHasher, TokenCodec
from taskapi.validation import BodyValidator, ParamValidator


class TagResolver(Resolver):  # type: ignore[misc]
    """operationId `createTask` tagged `tasks` -> taskapi.api.tasks.create_task."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self._tags = {
            operation["operationId"]: operation["tags"][0]
            for item in spec["paths"].values()
            for method, operation in item.items()
            if method in HTTP_METHODS
        }
        super().__init__(function_resolver=self._function)

    def _function(self, operation_id: str) -> Callable[..., Any]:
        name = re.sub(r"(?<!^)(?=[A-Z])", "_", operation_id).lower()
        function: Callable[..., Any] = get_function_from_name(
            f"taskapi.api.{self._tags[operation_id]}.{name}"
        )
        return function


def create_app(settings: Settings | None = None) -> connexion.FlaskApp:
    """A TaskAPI ASGI app for `settings` (default: from the environment)."""
    settings = settings or Settings.from_env()
    spec = load_spec()
    db = Database(make_engine(settings))
    services = Services(
        settings=settings,
        db=db,
        passwords=PasswordHasher(settings.bcrypt_rounds),
        tokens=TokenCodec(settings.jwt_secret),
    )

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        yield
        db.dispose()

    app = connexion.FlaskApp(
        __name__,
        lifespan=lifespan,
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
        TokensMiddleware, position=MiddlewarePosition.BEFORE_SECURITY, codec=services.tokens
    )
    return app
