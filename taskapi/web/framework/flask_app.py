"""Connexion's FlaskApp with three costs of its request path taken out.

1. The WSGI bridge: requests run through `WSGIBridge` (bridge.py), on the event loop unless told
   to offload them to a thread, instead of on a2wsgi's pool (spec-first/connexion#1979, #2045).
2. Per-request decoration: each operation is decorated once (`DecorateOnce`), not on every call.
3. Routing twice: Flask takes the route Connexion matched (`RoutedFlask`).

Everything else is Connexion's own: the middleware stack, validation, security, routing, error
handling and the Flask app. What each bought: docs/performance.md, "What each change bought".
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import connexion
import flask
import werkzeug.exceptions
from asgiref.sync import async_to_sync
from connexion.apps.abstract import AbstractApp
from connexion.apps.flask import FlaskApi, FlaskASGIApp, FlaskOperation
from connexion.decorators import FlaskDecorator
from connexion.decorators.parameter import (
    SyncParameterDecorator,
    prep_kwargs,
    unwrap_decorators,
)
from connexion.frameworks import flask as flask_utils
from connexion.lifecycle import WSGIRequest
from connexion.operations import AbstractOperation
from connexion.uri_parsing import AbstractURIParser
from connexion.utils import inspect_function_arguments
from starlette.types import Scope
from werkzeug.routing import MapAdapter, Rule

from taskapi.web import context
from taskapi.web.framework.bridge import WSGIBridge

FORM_CONTENT_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class ParameterDecorator(SyncParameterDecorator):  # type: ignore[misc]
    """Connexion's parameter decorator, minus parsing what the handler cannot receive."""

    def __init__(self, *, takes_form: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.takes_form = takes_form

    def __call__(self, function: Callable[..., Any]) -> Callable[..., Any]:
        arguments, has_kwargs = inspect_function_arguments(unwrap_decorators(function))
        if not arguments and not has_kwargs:

            @functools.wraps(function)
            def without_arguments(_request: WSGIRequest) -> Any:
                return function()

            return without_arguments
        if self.takes_form:
            return super().__call__(function)  # type: ignore[no-any-return]

        @functools.wraps(function)
        def wrapper(request: WSGIRequest) -> Any:
            body = self._maybe_get_body(request, arguments=arguments, has_kwargs=has_kwargs)
            # Validation admits only the operation's content types: none of them carries files.
            kwargs = prep_kwargs(
                request,
                request_body=body,
                files={},
                arguments=arguments,
                has_kwargs=has_kwargs,
                sanitize=self.sanitize_fn,
            )
            return function(**kwargs)

        return wrapper


def _sync(function: Callable[..., Any]) -> Callable[..., Any]:
    """The handler itself, or a coroutine function run to completion (decided once)."""
    if not inspect.iscoroutinefunction(function):
        return function
    run = async_to_sync(function)

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return run(*args, **kwargs)

    return wrapper


class DecorateOnce(FlaskDecorator):  # type: ignore[misc]
    """FlaskDecorator that decorates the handler once instead of on every request.

    Connexion's FlaskOperation builds its parameter and response decorators, and inspects the
    handler's signature, on every call (`FlaskOperation.fn` is a property and
    `WSGIDecorator.__call__` calls `decorate()` each time; spec-first/connexion#2077). Here what
    can be decided when the API is added is: whether the handler is a coroutine function,
    whether it takes arguments at all (a handler that takes none is not handed a parsed
    request), and whether the operation accepts form data (if not, the request's files are not
    parsed). Reading the request through the operation's URI parser stays per request.
    """

    def __init__(self, *, uri_parser: AbstractURIParser, takes_form: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.parser = uri_parser
        self.takes_form = takes_form

    @property
    def _parameter_decorator_cls(self) -> Callable[..., ParameterDecorator]:
        return functools.partial(ParameterDecorator, takes_form=self.takes_form)

    @property
    def _sync_async_decorator(self) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return _sync

    def __call__(self, function: Callable[..., Any]) -> Callable[..., Any]:
        decorated = self.decorate(function)

        @functools.wraps(function)
        def wrapper(*_args: Any, **_kwargs: Any) -> Any:
            return decorated(self.framework.get_request(uri_parser=self.parser))

        return wrapper


class DecoratedFlaskOperation(FlaskOperation):  # type: ignore[misc]
    """A FlaskOperation whose decorated handler is built once, with its URI parser."""

    @classmethod
    def from_operation(
        cls, operation: AbstractOperation, *, pythonic_params: bool, jsonifier: Any
    ) -> DecoratedFlaskOperation:
        self = super().from_operation(
            operation, pythonic_params=pythonic_params, jsonifier=jsonifier
        )
        # What Connexion's decorator builds per request from the operation in context.
        parser = operation.uri_parser_class(operation.parameters, operation.body_definition())
        decorator = DecorateOnce(
            uri_parser=parser,
            takes_form=any(t.startswith(FORM_CONTENT_TYPES) for t in operation.consumes),
            pythonic_params=pythonic_params,
            jsonifier=jsonifier,
        )
        self.decorated = decorator(operation.function)
        return self  # type: ignore[no-any-return]

    def __call__(self, *args: Any, **kwargs: Any) -> flask.Response:
        return self.decorated(*args, **kwargs)  # type: ignore[no-any-return]


class DecoratedFlaskApi(FlaskApi):  # type: ignore[misc]
    def make_operation(self, operation: AbstractOperation) -> DecoratedFlaskOperation:
        return DecoratedFlaskOperation.from_operation(
            operation, pythonic_params=self.pythonic_params, jsonifier=self.jsonifier
        )


class RoutedFlask(flask.Flask):
    """Flask that takes the route Connexion matched instead of matching the path again.

    Every request that reaches Flask has been routed by Connexion (taskapi/web/routing.py answers
    404 for the rest), so binding the URL map to the request and matching would only find the
    same operation's rule, at a cost comparable to a small handler's. For such a request the
    rule of its operation is set directly and no URL adapter is made, so `url_for` cannot build
    URLs there; a request Connexion did not route is matched by Flask as usual.

    Flask also inspects each view on every request to tell whether it must be run as a
    coroutine; here each registered view is inspected once.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rules: dict[str, Rule] | None = None
        self._synced_views: dict[Callable[..., Any], Callable[..., Any]] | None = None

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        ensure_sync = super().ensure_sync
        if self._synced_views is None:  # Flask accepts no new views after the first request
            self._synced_views = {view: ensure_sync(view) for view in self.view_functions.values()}
        synced = self._synced_views.get(func)
        return synced if synced is not None else ensure_sync(func)

    def create_url_adapter(self, request: flask.Request | None) -> MapAdapter | None:
        if request is not None and self._routed_rule(request.environ) is not None:
            return None  # nothing to match: request_context() sets the rule
        return super().create_url_adapter(request)

    def request_context(self, environ: dict[str, Any]) -> Any:
        context = super().request_context(environ)
        rule = self._routed_rule(environ)
        if rule is not None:
            context.request.url_rule = rule
            # Connexion's request reads path parameters from view_args and converts them
            # itself, so Starlette's match (strings) serves as well as Flask's.
            context.request.view_args = dict(environ["asgi.scope"].get("path_params", {}))
        return context

    def _routed_rule(self, environ: dict[str, Any]) -> Rule | None:
        scope = environ.get("asgi.scope")
        routed = context.operation_id(scope) if scope is not None else None
        if routed is None:
            return None
        if self._rules is None:  # the URL map is complete once the first request arrives
            operations = {
                endpoint: view.operation_id
                for endpoint, view in self.view_functions.items()
                if isinstance(view, FlaskOperation)
            }
            self._rules = {
                operations[rule.endpoint]: rule
                for rule in self.url_map.iter_rules()
                if rule.endpoint in operations
            }
        return self._rules.get(routed)


class BridgedFlaskASGIApp(FlaskASGIApp):  # type: ignore[misc]
    """The Flask app behind Connexion's middleware: a RoutedFlask served through a WSGIBridge."""

    def __init__(
        self, import_name: str, server_args: dict[str, Any], offload: Callable[[Scope], bool]
    ) -> None:
        # What FlaskASGIApp.__init__ does, with a RoutedFlask and the bridge.
        self.app = RoutedFlask(import_name, **server_args)
        self.app.json = flask_utils.FlaskJSONProvider(self.app)
        self.app.url_map.converters["float"] = flask_utils.NumberConverter
        self.app.url_map.converters["int"] = flask_utils.IntegerConverter
        # Errors propagate to Connexion's exception middleware.
        self.app.config["PROPAGATE_EXCEPTIONS"] = True
        self.app.config["TRAP_BAD_REQUEST_ERRORS"] = True
        self.app.config["TRAP_HTTP_EXCEPTIONS"] = True
        self.bridge = WSGIBridge(self.app.wsgi_app, offload=offload)
        self.asgi_app = self.bridge

    def add_api(self, specification: Any, *, name: str | None = None, **kwargs: Any) -> Any:
        api = DecoratedFlaskApi(specification, **kwargs)
        self.app.register_blueprint(api.blueprint, **({"name": name} if name else {}))
        return api


class BridgedFlaskApp(connexion.FlaskApp):  # type: ignore[misc]
    """connexion.FlaskApp on a WSGIBridge; `offload(scope)` picks the requests run on a thread."""

    def __init__(
        self,
        import_name: str,
        *,
        offload: Callable[[Scope], bool],
        server_args: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        # What connexion.FlaskApp.__init__ does, with our ASGI app in place of its own.
        self._middleware_app = BridgedFlaskASGIApp(import_name, server_args or {}, offload)
        AbstractApp.__init__(self, import_name, **options)
        self.app = self._middleware_app.app
        self.app.register_error_handler(werkzeug.exceptions.HTTPException, self._http_exception)

    @property
    def bridge(self) -> WSGIBridge:
        bridge: WSGIBridge = self._middleware_app.bridge
        return bridge
