"""The spec is valid, and the app serves exactly the operations it documents."""

from __future__ import annotations

import re

from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

from taskapi.resources import load_spec, spec_path

VERBS = {"get", "put", "post", "delete", "patch"}


def spec_operations(spec):
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in VERBS
    }


def test_spec_is_valid_openapi_3_0():
    spec, _ = read_from_filename(str(spec_path()))
    validate(spec)
    assert spec["openapi"].startswith("3.0.")


def test_served_routes_are_the_documented_operations(app):
    app.test_client().get("/health")  # builds the middleware stack and registers the routes
    served = {
        (method, re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule))
        for rule in app.app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert served == spec_operations(load_spec())


def test_every_operation_is_documented_for_clients():
    spec = load_spec()
    ids = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in VERBS:
                continue
            label = f"{method.upper()} {path}"
            ids.append(operation["operationId"])
            assert operation.get("summary"), label
            assert operation.get("tags"), label
            assert "security" in operation, f"{label} must declare its security"
            assert re.fullmatch(r"[a-z][A-Za-z]+", operation["operationId"]), label
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert response["$ref"].startswith("#/components/responses/"), label
    assert len(ids) == len(set(ids))


def test_every_error_response_is_a_problem():
    responses = load_spec()["components"]["responses"]
    for name, response in responses.items():
        if name == "NotModified":
            assert "content" not in response  # a 304 has no body
            continue
        assert list(response["content"]) == ["application/problem+json"], name
        schema = response["content"]["application/problem+json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Problem"}, name


def resolve(spec, node):
    """Follow local $refs (#/components/...) to the object they name."""
    while isinstance(node, dict) and "$ref" in node:
        target = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


# Swagger UI's "Try it out" sends whatever a parameter's example, first `examples` member or
# schema example fills in (Swagger UI 5.34 takes them in that order), and a reader who only
# presses Execute sends it too. Optional parameters that filter or make a request conditional
# would turn that first answer into an empty list or a 412, so their examples live in their
# descriptions. These fill in harmlessly: page and limit their defaults, and sort only orders.
PREFILL_HARMLESS = {"Page", "Limit", "Sort", "ChangesLimit"}


def prefill(spec, parameter):
    """The value Swagger UI fills in for `parameter`, or None."""
    if parameter.get("examples"):
        return next(iter(parameter["examples"].values())).get("value")
    if "example" in parameter:
        return parameter["example"]
    schema = resolve(spec, parameter.get("schema", {}))
    for candidate in [schema, *(resolve(spec, s) for s in schema.get("allOf", []))]:
        if "example" in candidate:
            return candidate["example"]
    return None


def must_not_prefill(spec):
    """Optional parameters (component name, or "METHOD path name" inline) and their schemas."""
    parameters = {
        name: p
        for name, p in spec["components"]["parameters"].items()
        if name not in PREFILL_HARMLESS
    }
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in VERBS:
                for p in operation.get("parameters", []):
                    if "$ref" not in p:
                        parameters[f"{method.upper()} {path} {p['name']}"] = p
    return {name: p for name, p in parameters.items() if not p.get("required")}


def test_try_it_out_fills_in_no_filter_and_no_condition():
    spec = load_spec()
    for name, parameter in must_not_prefill(spec).items():
        assert prefill(spec, parameter) is None, f"Swagger UI would send {name}"


def test_every_schema_and_property_has_a_description_and_an_example():
    spec = load_spec()
    # An enum's values are its examples. The schemas of optional filters keep theirs in the
    # parameters' descriptions (above).
    filter_schemas = {
        p["schema"]["$ref"].rsplit("/", 1)[1]
        for p in must_not_prefill(spec).values()
        if "$ref" in p.get("schema", {})
    }
    for name, schema in spec["components"]["schemas"].items():
        assert schema.get("description"), name
        assert "example" in schema or "enum" in schema or name in filter_schemas, name
        for prop, sub in schema.get("properties", {}).items():
            described = resolve(spec, sub.get("allOf", [sub])[0]) if "$ref" in str(sub) else sub
            assert sub.get("description") or described.get("description"), f"{name}.{prop}"
            examples = [k for k in ("example", "enum") for s in (sub, described) if k in s]
            assert examples, f"{name}.{prop}"


def test_every_parameter_has_a_description_and_an_example():
    spec = load_spec()
    optional = must_not_prefill(spec)
    for name, parameter in spec["components"]["parameters"].items():
        assert parameter.get("description"), name
        if name not in optional:
            assert "example" in parameter, name
        elif "enum" not in resolve(spec, parameter["schema"]):
            assert re.search(r"`[^`]+`", parameter["description"]), f"{name}: no example"


def test_every_response_has_a_description_and_an_example():
    spec = load_spec()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in VERBS:
                continue
            for status, response in operation["responses"].items():
                label = f"{method.upper()} {path} {status}"
                response = resolve(spec, response)
                assert response.get("description"), label
                for media in response.get("content", {}).values():
                    schema = resolve(spec, media["schema"])
                    assert "example" in media or "example" in schema, label
