"""Connexion's request validators and validation middleware, subclassed for TaskAPI.

Only through the hooks they are built for (`_parse` and `_validate` of a body validator,
`validate_request` of the parameter one) and Connexion's validation middleware's per-operation
objects (README.md here):

1. messages name the field and the rule, from web/validation.py, instead of a dump of the
   JSON schema; what the databases cannot store or Python cannot parse is a 400;
2. each operation without a request body has its URI parser and parameter validator built
   once, not on every request (`RequestValidationMiddleware`);
3. a JSON body sent without a Content-Type (or as merge-patch+json) reaches Flask as JSON, and
   a chunked one is read whole and given its length first.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from connexion.middleware import request_validation
from connexion.operations import AbstractOperation
from connexion.validators import DefaultsJSONRequestBodyValidator, ParameterValidator
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskapi.web.validation import bad_request, describe, unencodable_strings, validator_for


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
