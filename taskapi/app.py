"""create_app(): the one place where TaskAPI is wired together.

The services a request uses, the rate limiter and the bcrypt admission are built here, once per
app, and the middleware every request passes through is `middleware_stack`, in order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from functools import partial
from typing import TYPE_CHECKING, Any

from connexion.datastructures import MediaTypeDict
from connexion.middleware.context import ContextMiddleware
from connexion.middleware.exceptions import ExceptionMiddleware
from connexion.middleware.lifespan import LifespanMiddleware
from connexion.middleware.response_validation import ResponseValidationMiddleware
from connexion.middleware.security import SecurityMiddleware
from connexion.middleware.server_error import ServerErrorMiddleware
from connexion.options import SwaggerUIOptions
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from taskapi.config import ConfigError, Settings
from taskapi.domain import changes
from taskapi.domain.access_tokens import TokenCodec
from taskapi.domain.passwords import PasswordHasher
from taskapi.ops import housekeeping
from taskapi.ops import metrics as metrics_module
from taskapi.ops.metrics import Metrics
from taskapi.ops.readiness import Readiness
from taskapi.resources import load_spec
from taskapi.storage.db import Database
from taskapi.storage.write_positions import WritePositions
from taskapi.web import context
from taskapi.web.context import Services
from taskapi.web.docs import DocsMiddleware
from taskapi.web.error_handlers import register_error_handlers
from taskapi.web.framework.flask_app import BridgedFlaskApp
from taskapi.web.framework.routing import ExactRoutingMiddleware
from taskapi.web.framework.security import SECURITY_MAP
from taskapi.web.framework.uvicorn import drain_on_sigterm
from taskapi.web.framework.validators import (
    BodyValidator,
    ParamValidator,
    RequestValidationMiddleware,
)
from taskapi.web.middleware.admission import Admission, AdmissionMiddleware, default_slots
from taskapi.web.middleware.auth_failures import AuthFailureLimitMiddleware
from taskapi.web.middleware.body_limit import BodyLimitMiddleware
from taskapi.web.middleware.headers import (
    CORSMiddleware,
    HeadAsGetMiddleware,
    SecurityHeadersMiddleware,
)
from taskapi.web.middleware.observability import RequestMiddleware
from taskapi.web.middleware.ratelimit import RateLimiter, RateLimitMiddleware
from taskapi.web.middleware.read_your_writes import ReadYourWritesMiddleware
from taskapi.web.routing import RoutedOnlyMiddleware, Routes, TagResolver, spec_operations

if TYPE_CHECKING:
    from taskapi.ops.tracing import Tracing


def middleware_stack(
    settings: Settings,
    spec: dict[str, Any],
    *,
    services: Services,
    limiter: RateLimiter,
    admission: Admission,
    tracing: Tracing | None = None,
) -> list[Any]:
    """Connexion's default stack with ours in between, outermost first:

      [TracingMiddleware (the request's span), when traces are on]
      RequestMiddleware (request id, access log, metrics)
      [ProxyHeadersMiddleware: the client address, when TRUSTED_PROXIES is set]
      Connexion's ServerError
        HeadAsGet, SecurityHeaders, CORS        (they see error responses too)
      Connexion's Exception (every error becomes a problem response)
        BodyLimit (413, 408), Docs (/openapi.*, /ui/, /redoc)
      ExactRouting (Connexion's, without redirects)
        [ReadYourWrites (each account's last write, for reads from a standby), with
          DATABASE_READ_URL]
        [AuthFailureLimit (each refused token counts per IP), when RATE_LIMIT_ENABLED]
      Connexion's Security (bearerAuth: a login session's JWT and the account behind it;
        personalAccessToken: a `tapi_` token and its scopes; web/caller.py)
        [RateLimit (per IP, user, email), when RATE_LIMIT_ENABLED]
      RequestValidation (Connexion's, built once per operation)
      [Connexion's ResponseValidation, when VALIDATE_RESPONSES]
      Connexion's Lifespan
        RoutedOnly (404 for anything no operation matched), Admission (bcrypt slots)
      Connexion's Context, then the WSGIBridge and Flask: the handler in api/<tag>.py.

    Connexion's Routing and RequestValidation are replaced by subclasses; its SwaggerUI layer
    is left out (taskapi/web/docs serves the spec and the docs pages), and so is ResponseValidation
    unless responses are validated, since it would only pass requests on.
    """
    templates = {op_id: path for op_id, (_, path, _) in spec_operations(spec).items()}
    traced = []
    if tracing is not None:
        # Imported only now: with traces off, OpenTelemetry is never loaded.
        from taskapi.web.middleware.tracing import TracingMiddleware

        traced = [partial(TracingMiddleware, tracer_provider=tracing.provider, templates=templates)]
    return [
        *traced,
        partial(
            RequestMiddleware,
            services=services,
            access_log=settings.access_log,
            templates=templates,
        ),
        *(
            [partial(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))]
            if settings.trusted_proxies
            else []
        ),
        ServerErrorMiddleware,
        HeadAsGetMiddleware,
        SecurityHeadersMiddleware,
        partial(CORSMiddleware, allow_origins=settings.cors_allowed_origins),
        ExceptionMiddleware,
        partial(
            BodyLimitMiddleware, max_bytes=settings.max_body_bytes, timeout=settings.body_timeout
        ),
        DocsMiddleware,
        ExactRoutingMiddleware,
        *(
            [partial(ReadYourWritesMiddleware, positions=services.write_positions)]
            if services.write_positions is not None
            else []
        ),
        *(
            [partial(AuthFailureLimitMiddleware, limiter=limiter)]
            if settings.rate_limit_enabled
            else []
        ),
        SecurityMiddleware,
        *([partial(RateLimitMiddleware, limiter=limiter)] if settings.rate_limit_enabled else []),
        RequestValidationMiddleware,
        *([ResponseValidationMiddleware] if settings.validate_responses else []),
        LifespanMiddleware,
        RoutedOnlyMiddleware,
        partial(AdmissionMiddleware, admission=admission),
        ContextMiddleware,
    ]


class TaskAPI(BridgedFlaskApp):
    """The ASGI app create_app builds, and the services it runs on (for tests and tools)."""

    services: Services


def create_app(settings: Settings | None = None) -> TaskAPI:
    """A TaskAPI ASGI app for `settings` (default: from the environment)."""
    settings = settings or Settings.from_env()
    spec = load_spec()
    tracing = _tracing(settings)
    db = Database(settings)
    metrics = Metrics()
    metrics.watch_pool(db.engine, "write", limit=db.pool_limits["write"])
    metrics.watch_pool(db.read_engine, "read", limit=db.pool_limits["read"])
    if db.standby is not None:
        for engine in db.standby.engines:
            metrics.watch_pool(engine, "standby", limit=db.pool_limits["read"])
        reads = {server: metrics.db_reads.labels(server).inc for server in ("standby", "primary")}
        db.count_read = lambda server: reads[server]()
    services = Services(
        settings=settings,
        db=db,
        passwords=PasswordHasher(settings.bcrypt_rounds),
        token_codec=TokenCodec(settings.jwt_secret),
        sync_tokens=changes.TokenCodec(settings.jwt_secret, settings.tombstone_retention),
        readiness=Readiness(db, settings.redis_url),
        metrics=metrics,
        write_positions=(
            WritePositions(settings.redis_url, max_lag=settings.db_read_max_lag)
            if db.standby is not None
            else None
        ),
    )
    limiter = RateLimiter(
        default=settings.rate_limit_default,
        auth=settings.rate_limit_auth,
        auth_email=settings.rate_limit_auth_email,
        login_slowdown=settings.rate_limit_login_slowdown,
        slowdown_seconds=settings.login_slowdown_seconds,
        redis_url=settings.redis_url if settings.rate_limit_enabled else "",
        on_fallback=metrics.rate_limit_fallbacks.inc,
        on_rejected=lambda budget: metrics.rate_limited.labels(budget).inc(),
        on_slowed=metrics.logins_slowed.inc,
    )
    admission = Admission(
        slots=settings.bcrypt_concurrency or default_slots(settings.workers),
        queue=settings.bcrypt_queue,
        max_wait=settings.bcrypt_max_wait,
        on_change=metrics.bcrypt,
        on_refused=metrics.overloaded.inc,
        wait_span=tracing.span("bcrypt slot wait") if tracing else nullcontext,
    )
    if tracing:
        tracing.watch(db.engine)
        tracing.watch(db.read_engine)
        for engine in db.standby.engines if db.standby else []:
            tracing.watch(engine)

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        drain_on_sigterm(settings.shutdown_drain)
        with metrics_module.worker_process(), tracing.running() if tracing else nullcontext():
            async with housekeeping.periodically(
                db, settings.purge_interval, tombstone_retention=settings.tombstone_retention
            ):
                yield
            app.bridge.close()
            await limiter.close()
            if services.write_positions is not None:
                await services.write_positions.close()
            services.close()

    app = TaskAPI(
        __name__,
        offload=context.runs_on_thread,
        lifespan=lifespan,
        middlewares=middleware_stack(
            settings,
            spec,
            services=services,
            limiter=limiter,
            admission=admission,
            tracing=tracing,
        ),
        # taskapi/web/docs serves the spec as written and the docs pages instead.
        swagger_ui_options=SwaggerUIOptions(serve_spec=False, swagger_ui=False),
    )
    app.services = services
    app.add_api(
        spec,
        resolver=TagResolver(spec),
        security_map=SECURITY_MAP,
        strict_validation=True,
        validate_responses=settings.validate_responses,
        validator_map={
            "body": MediaTypeDict({"*/*json": BodyValidator}),
            "parameter": ParamValidator,
        },
    )
    register_error_handlers(app, Routes(spec))
    return app


def _tracing(settings: Settings) -> Tracing | None:
    """OpenTelemetry's tracer provider when OTEL_TRACES_EXPORTER asks for traces, else None."""
    if settings.traces_exporter == "none":
        return None
    try:
        # Imported only now: with traces off, OpenTelemetry is never loaded.
        from taskapi.ops.tracing import Tracing
    except ImportError as error:
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER={settings.traces_exporter} needs OpenTelemetry: "
            f"pip install 'taskapi[tracing]' ({error})"
        ) from None
    return Tracing(settings.traces_exporter)
