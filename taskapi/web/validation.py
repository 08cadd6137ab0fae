"""Request validation in plain words: which rule a request broke, named by its field.

Connexion validates every request against openapi.yaml with the validators it ships
(`DefaultsJSONRequestBodyValidator`, which also fills in the spec's `default`s, for JSON bodies;
`ParameterValidator` for query, path and header parameters; on its Draft 4 validator that knows
OpenAPI's `nullable`). web/framework/validators.py hooks this module into them:

1. messages name the field and the rule (`title: at most 200 characters`), in `detail` and as
   a list in `errors`;
2. what the databases cannot store (unpaired surrogates) is a 400, not a 500;
3. `date-time` values must be RFC 3339 with a time zone and representable in UTC, and `int64`
   values must fit in 64 bits (Connexion checks neither);
4. each schema is compiled once, not on every request.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
import rfc3339_validator
from connexion.exceptions import ProblemException
from connexion.json_schema import Draft4RequestValidator
from connexion.validators import DefaultsJSONRequestBodyValidator
from jsonschema import FormatChecker, ValidationError

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
