"""Request validation from the spec, on Connexion's validators, with messages a person can act on.

Connexion validates every request against openapi.yaml with the validators it ships:
`DefaultsJSONRequestBodyValidator` (which also fills in the spec's `default`s) for JSON bodies
and `ParameterValidator` for query, path and header parameters, on its Draft 4 validator that
knows OpenAPI's `nullable`. On top of them, and only through the hooks they are built for
(`_parse` and `_validate` of a body validator, `validate_request` of the parameter one):

1. messages name the field and the rule (`title: at most 200 characters`), in `detail` and as
   a list in `errors`, instead of a dump of the JSON schema;
2. what the databases cannot store (unpaired surrogates) or Python cannot parse (deep nesting)
   is a 400, not a 500;
3. `date-time` values must be RFC 3339 with a time zone and representable in UTC, and `int64`
   values must fit in 64 bits (Connexion checks neither);
4. each schema is compiled once, not on every request, and so is the parameter validator of
   an operation without a request body (`RequestValidationMiddleware`);
5. a JSON body sent without a Content-Type (or as merge-patch+json) reaches Flask as JSON.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import jsonschema
import rfc3339_validator
from connexion.exceptions import ProblemException
from connexion.json_schema import Draft4RequestValidator
from connexion.middleware import request_validation
from connexion.operations import AbstractOperation
from connexion.validators import DefaultsJSONRequestBodyValidator, ParameterValidator
from jsonschema import FormatChecker, ValidationError
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskapi.domain import timestamps

INT64 = (-(2**63), 2**63 - 1)
FORMAT_CHECKER = FormatChecker(formats=())


@FORMAT_CHECKER.checks("date-time")
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not rfc3339_validator.validate_rfc3339(value):
        return False
    try:
        timestamps.parse(value)
    except ValueError:
        return False
    return True


@FORMAT_CHECKER.checks("int64")
def _is_int64(value: object) -> bool:
    return not isinstance(value, int) or INT64[0] <= value <= INT64[1]


FORMAT_MESSAGES = {
    "date-time": "must be an RFC 3339 date-time with a time zone, like 2025-12-31T17:00:00Z",
    "int64": "is out of range",
}

# Connexion's request validator (nullable-aware) with Connexion's defaults-setting added...
_WithDefaults = DefaultsJSONRequestBodyValidator.extend_with_set_default(Draft4RequestValidator)
_set_defaults = _WithDefaults.VALIDATORS["properties"]
_check_properties = Draft4RequestValidator.VALIDATORS["properties"]


def _defaults_on_objects(validator: Any, properties: Any, instance: Any, schema: Any) -> Any:
    # ...which calls setdefault on whatever the body is, so `null` or `[]` raised
    # AttributeError (a 500) where the `type` rule should say "must be a JSON object".
    rule = _set_defaults if isinstance(instance, dict) else _check_properties
    yield from rule(validator, properties, instance, schema)


RequestValidator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    _WithDefaults, {"properties": _defaults_on_objects}
)
_compiled: dict[int, tuple[Mapping[str, Any], Any]] = {}


def validator_for(schema: Mapping[str, Any]) -> Any:
    """The compiled validator of `schema`, built on first use."""
    # Connexion hands over the same resolved schema objects on every request, so `id` is a
    # stable key; the cached tuple keeps the schema alive so the id is never reused.
    entry = _compiled.get(id(schema))
    if entry is None:
        entry = (schema, RequestValidator(schema, format_checker=FORMAT_CHECKER))
        _compiled[id(schema)] = entry
    return entry[1]


def field_name(path: Any) -> str:
    """`tasks[2].title` from a jsonschema path deque."""
    name = ""
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name


TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "object": "a JSON object",
    "array": "an array",
    "boolean": "true or false",
}
RULE_MESSAGES = {
    "maxLength": "at most {} characters",
    "minimum": "must be at least {}",
    "maximum": "must be at most {}",
    "minItems": "must have at least {} items",
    "maxItems": "must have at most {} items",
    "minProperties": "must not be empty",
    "additionalProperties": "has unknown fields",
}


def describe(error: ValidationError, *, root: str = "request body") -> tuple[str, str]:
    """(field, message) in plain words for one schema violation."""
    rule = error.validator
    limit: Any = error.validator_value
    schema: Any = error.schema
    field = field_name(error.absolute_path)
    if rule == "required":
        # jsonschema reports each missing property as its own error, named only in the message.
        missing = next((n for n in limit if error.message.startswith(f"{n!r} ")), str(limit))
        return (f"{field}.{missing}" if field else missing), "is required"
    field = field or root
    if rule == "type":
        return field, f"must be {TYPE_NAMES.get(str(limit), str(limit))}"
    if rule == "minLength":
        return field, "must not be empty" if limit == 1 else f"at least {limit} characters"
    if rule == "enum":
        return field, "must be one of " + ", ".join(str(v) for v in limit)
    if rule == "format":
        return field, FORMAT_MESSAGES.get(str(limit), f"must be a valid {limit}")
    if rule == "pattern":
        return field, str(schema.get("x-pattern-message", f"must match {limit}"))
    if rule in RULE_MESSAGES:
        return field, RULE_MESSAGES[str(rule)].format(limit)
    return field, error.message


def unencodable_strings(value: Any, path: tuple[Any, ...] = ()) -> Iterator[str]:
    """Fields holding strings that UTF-8 (and so either database) cannot store."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            yield field_name(path) or "request body"
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from unencodable_strings(key, path)
            yield from unencodable_strings(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from unencodable_strings(item, (*path, index))


def bad_request(errors: list[tuple[str, str]]) -> ProblemException:
    """A 400 naming every broken rule, in `detail` and as a list in `errors`."""
    detail = "; ".join(f"{field}: {message}" for field, message in errors)
    ext = {"errors": [{"field": field, "message": message} for field, message in errors]}
    return ProblemException(status=400, title="Bad Request", detail=detail, ext=ext)


class BodyValidator(DefaultsJSONRequestBodyValidator):  # type: ignore[misc]
    """Connexion's JSON body validator (defaults included), with our parsing and messages."""

    def __init__(
        self, *, schema: dict[str, Any], required: bool = False, encoding: str, **kwargs: Any
    ) -> None:
        super().__init__(schema=schema, required=required, encoding=encoding, **kwargs)
        self.schema = schema
        self.required = required
        self.encoding = encoding

    async def wrap_receive(self, receive: Receive, *, scope: Scope) -> tuple[Receive, Scope]:
        if "transfer-encoding" in Headers(scope=scope):
            receive, scope = await _with_content_length(receive, scope)
        if self.required and not int(Headers(scope=scope).get("content-length") or 0):
            # Connexion's own answer here is "RequestBody is required"; ours names the field.
            raise bad_request([("request body", "is required")])
        receive, scope = await super().wrap_receive(receive, scope=scope)
        # Whatever it arrived as (no Content-Type, or merge-patch+json), the body was just
        # validated as JSON and goes on to Flask as plain JSON.
        scope = dict(scope)
        headers = MutableHeaders(raw=list(scope["headers"]))
        headers["content-type"] = "application/json"
        scope["headers"] = headers.raw
        return receive, scope

    async def _parse(self, stream: AsyncIterator[bytes], scope: Scope) -> Any:
        raw = b"".join([chunk async for chunk in stream])
        if not raw.strip():
            if self.required:
                raise bad_request([("request body", "is required")])
            return self.schema.get("default", {})
        try:
            return json.loads(raw.decode(self.encoding))
        except UnicodeDecodeError:
            raise bad_request([("request body", "is not valid UTF-8")]) from None
        except RecursionError:
            raise bad_request([("request body", "is nested too deeply")]) from None
        except ValueError as exc:
            raise bad_request([("request body", f"is not valid JSON ({exc})")]) from None

    def _validate(self, body: Any) -> None:
        bad_strings = [
            (field, "must not contain unpaired surrogates") for field in unencodable_strings(body)
        ]
        if bad_strings:
            raise bad_request(bad_strings)
        errors = [describe(e) for e in validator_for(self.schema).iter_errors(body)]
        if errors:
            raise bad_request(errors)


async def _with_content_length(receive: Receive, scope: Scope) -> tuple[Receive, Scope]:
    """A chunked body (no Content-Length), read whole and replayed with its length.

    Connexion's validators take a request without Content-Length for one without a body.
    BodyLimitMiddleware has bounded the body's size and the time it may take.
    """
    messages: list[Message] = []
    more = True
    while more:
        message = await receive()
        messages.append(message)
        more = message["type"] == "http.request" and message.get("more_body", False)
    length = sum(len(m.get("body", b"")) for m in messages)
    headers = MutableHeaders(raw=list(scope["headers"]))
    del headers["transfer-encoding"]
    headers["content-length"] = str(length)

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return replay, {**scope, "headers": headers.raw}


class ParamValidator(ParameterValidator):  # type: ignore[misc]
    """Query, path and header parameters, with the same wording as bodies."""

    def validate_request(self, request: Any) -> None:
        errors: list[tuple[str, str]] = []
        if self.strict_validation:
            extra = self.validate_query_parameter_list(
                request, security_params=self.security_query_params
            )
            errors += [(name, "is not a parameter of this operation") for name in sorted(extra)]
        sources: dict[str, Callable[[str], Any]] = {
            "query": lambda name: request.query_params.get(name),
            "path": lambda name: request.path_params.get(name.replace("-", "_")),
            "header": lambda name: request.headers.get(name),
        }
        for location, lookup in sources.items():
            for param in self.parameters.get(location, []):
                error = _param_error(param, lookup(param["name"]))
                if error:
                    errors.append(error)
        if errors:
            raise bad_request(errors)


def _param_error(param: Mapping[str, Any], value: Any) -> tuple[str, str] | None:
    name = param["name"]
    if value is None:
        return (name, "is required") if param.get("required") else None
    error = next(iter(validator_for(param["schema"]).iter_errors(value)), None)
    return None if error is None else describe(error, root=name)


class _Operation(request_validation.RequestValidationOperation):  # type: ignore[misc]
    """Connexion's request validation of one operation. Connexion builds the URI parser and
    the parameter validator on every request, from the operation alone; here, for operations
    without a request body (all that they validate), they are built once, and a request to
    an operation without parameters is only checked for a query string (strict validation
    refuses any). Operations with a body go Connexion's way, unchanged."""

    def __init__(self, next_app: ASGIApp, *, operation: AbstractOperation, **kwargs: Any) -> None:
        super().__init__(next_app, operation=operation, **kwargs)
        self._parameters = None
        self._takes_parameters = bool(operation.parameters)
        if not operation.request_body:
            self._parameters = self._validator_map["parameter"](
                operation.parameters,
                uri_parser=operation.uri_parser_class(
                    operation.parameters, operation.body_definition()
                ),
                strict_validation=self.strict_validation,
                security_query_params=self.security_query_params,
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._parameters is None:
            await super().__call__(scope, receive, send)
            return
        if self._takes_parameters or scope["query_string"]:
            self._parameters.validate(scope)
        await self.next_app(scope, receive, send)


class _API(request_validation.RequestValidationAPI):  # type: ignore[misc]
    def make_operation(self, operation: AbstractOperation) -> _Operation:
        return _Operation(
            self.next_app,
            operation=operation,
            strict_validation=self.strict_validation,
            validator_map=self.validator_map,
        )


class RequestValidationMiddleware(request_validation.RequestValidationMiddleware):  # type: ignore[misc]
    """Connexion's request validation middleware, on the operations above."""

    api_cls = _API
