"""The spec keeps every promise of its releases; the checker that says so catches each rule."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import taskapi
from taskapi.resources import spec_path
from tests.contract.compat import (
    AcceptedBreak,
    Change,
    accept,
    compare,
    load,
    load_accepted,
    main,
    report,
)

RELEASED = Path(__file__).resolve().parent.parent / "openapi" / "released"
ACCEPTED = RELEASED.parent / "accepted-breaks.yaml"
Mutation = Callable[[dict[str, Any]], None]


def _major(version: str) -> int:
    return int(version.split(".")[0])


def released_specs() -> list[Path]:
    return sorted(RELEASED.glob("*.yaml"), key=lambda p: tuple(map(int, p.stem.split("."))))


def test_the_spec_keeps_every_promise_of_its_major_version():
    """Each release with the spec's major version is a baseline it must stay compatible with,
    but for the breaks accepted on purpose (openapi/accepted-breaks.yaml)."""
    current = load(spec_path())
    baselines = [p for p in released_specs() if _major(p.stem) == _major(taskapi.__version__)]
    assert baselines, f"no released spec for {taskapi.__version__} in {RELEASED}"
    accepted = load_accepted(ACCEPTED)
    for baseline in baselines:
        left, _ = accept(compare(load(baseline), current), accepted)
        breaking = [c for c in left if c.breaking]
        assert not breaking, f"against {baseline.name}:\n" + "\n".join(report(breaking))


def test_every_accepted_break_is_one_the_spec_makes_and_the_changelog_announces():
    current = load(spec_path())
    changes = [c for baseline in released_specs() for c in compare(load(baseline), current)]
    accepted = load_accepted(ACCEPTED)
    _, unused = accept(changes, accepted)
    assert not unused, f"accepted breaks the spec no longer makes: {unused}"
    changelog = (RELEASED.parent.parent / "CHANGELOG.md").read_text()
    security = changelog.split("### Security", 1)[1].split("\n## ", 1)[0]
    for entry in accepted:
        field = entry.change.split(":", 1)[0]
        assert f"`{field}`" in security, f"CHANGELOG's Security section does not name {field}"


def test_an_accepted_break_covers_only_its_own_change():
    covers = AcceptedBreak("note: maxLength none is now 10", why="test").covers
    assert covers(Change(True, "POST /things: request body note", "maxLength none is now 10"))
    assert not covers(Change(True, "POST /things: request body name", "maxLength none is now 10"))
    assert not covers(Change(True, "POST /things: request body note", "maxLength 20 is now 10"))


def test_released_specs_are_named_by_their_version():
    for released in released_specs():
        assert load(released)["info"]["version"] == released.stem, released.name


# A small API with one of everything the rules look at.
THING = "#/components/schemas/Thing"
BASE: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Things", "version": "1.0.0"},
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "paths": {
        "/health": {
            "get": {
                "operationId": "getHealth",
                "security": [],
                "responses": {"200": {"description": "up"}},
            }
        },
        "/things": {
            "get": {
                "operationId": "listThings",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "a page",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["data"],
                                    "properties": {
                                        "data": {"type": "array", "items": {"$ref": THING}}
                                    },
                                }
                            }
                        },
                    },
                    "400": {"description": "bad"},
                },
            },
            "post": {
                "operationId": "createThing",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ThingInput"}}
                    },
                },
                "responses": {
                    "201": {
                        "description": "created",
                        "headers": {"Location": {"required": True, "schema": {"type": "string"}}},
                        "content": {"application/json": {"schema": {"$ref": THING}}},
                    },
                    "400": {"description": "bad"},
                },
            },
        },
        "/things/{id}": {
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
            ],
            "get": {
                "operationId": "getThing",
                "responses": {
                    "200": {
                        "description": "the thing",
                        "content": {"application/json": {"schema": {"$ref": THING}}},
                    },
                    "404": {"description": "none"},
                },
            },
            "delete": {"operationId": "deleteThing", "responses": {"204": {"description": "gone"}}},
        },
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Colour": {"type": "string", "enum": ["red", "green"]},
            "ThingInput": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 50},
                    "colour": {"$ref": "#/components/schemas/Colour"},
                    "size": {"type": "integer", "minimum": 0, "maximum": 10, "default": 5},
                    "note": {"type": "string", "nullable": True},
                    "tags": {
                        "type": "array",
                        "maxItems": 10,
                        "items": {"type": "string", "maxLength": 20},
                    },
                },
            },
            "Thing": {
                "type": "object",
                "required": ["id", "name", "colour"],
                "properties": {
                    "id": {"type": "integer", "readOnly": True},
                    "name": {"type": "string"},
                    "colour": {"$ref": "#/components/schemas/Colour"},
                    "note": {"type": "string", "nullable": True},
                    "created_at": {"type": "string", "format": "date-time"},
                },
            },
        },
    },
}


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    return _at(doc, path[:-1])


def put(*path: Any, value: Any) -> Mutation:
    return lambda doc: _parent(doc, path).__setitem__(path[-1], value)


def drop(*path: Any) -> Mutation:
    return lambda doc: _parent(doc, path).pop(path[-1])


def add(*path: Any, value: Any) -> Mutation:
    return lambda doc: _at(doc, path).append(value)


def remove(*path: Any, value: Any) -> Mutation:
    return lambda doc: _at(doc, path).remove(value)


def rename(*path: Any, to: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        parent = _parent(doc, path)
        parent[to] = parent.pop(path[-1])

    return mutate


def both(*mutations: Mutation) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(doc)

    return mutate


def changes(mutation: Mutation) -> tuple[list[str], list[str]]:
    """(breaking, notes) after applying `mutation` to a copy of BASE."""
    new = copy.deepcopy(BASE)
    mutation(new)
    found = compare(BASE, new)
    return [str(c) for c in found if c.breaking], [str(c) for c in found if not c.breaking]


SCHEMAS = ("components", "schemas")
INPUT = (*SCHEMAS, "ThingInput", "properties")
OUTPUT = (*SCHEMAS, "Thing", "properties")
LIST = ("paths", "/things", "get")
CREATE = ("paths", "/things", "post")
CREATED = (*CREATE, "responses", "201")
LIMIT = (*LIST, "parameters", 0)
TEXT = {"type": "string"}


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        pytest.param(drop("paths", "/things/{id}"), "GET /things/{id}: path removed", id="path"),
        pytest.param(
            drop("paths", "/things/{id}", "delete"),
            "DELETE /things/{id}: operation removed",
            id="operation",
        ),
        pytest.param(
            add(*LIST, "parameters", value={"name": "q", "in": "query", "required": True}),
            "query parameter q: new and required",
            id="required parameter added",
        ),
        pytest.param(
            put(*LIMIT, "required", value=True),
            "query parameter limit: now required",
            id="parameter made required",
        ),
        pytest.param(
            drop(*LIST, "parameters", 0), "query parameter limit: removed", id="parameter removed"
        ),
        pytest.param(
            put(*LIMIT, "schema", "maximum", value=50),
            "limit: maximum 100 is now 50",
            id="parameter maximum lowered",
        ),
        pytest.param(
            put(*LIMIT, "schema", "minimum", value=2),
            "limit: minimum 1 is now 2",
            id="parameter minimum raised",
        ),
        pytest.param(
            put(*LIMIT, "style", value="deepObject"),
            "limit: style changed",
            id="parameter serialised differently",
        ),
        pytest.param(
            put(*SCHEMAS, "ThingInput", "required", value=["name", "colour"]),
            "POST /things: request body application/json: field colour now required",
            id="request field made required",
        ),
        pytest.param(
            both(
                put(*INPUT, "weight", value={"type": "integer"}),
                add(*SCHEMAS, "ThingInput", "required", value="weight"),
            ),
            "field weight new and required",
            id="required request field added",
        ),
        pytest.param(
            drop(*INPUT, "note"),
            "field note removed (the server would ignore it)",
            id="request field removed",
        ),
        pytest.param(
            remove(*SCHEMAS, "Colour", "enum", value="green"),
            'colour: no longer accepts "green"',
            id="request enum value removed",
        ),
        pytest.param(
            put(*INPUT, "name", "maxLength", value=40),
            "name: maxLength 50 is now 40",
            id="maxLength lowered",
        ),
        pytest.param(
            put(*INPUT, "note", "maxLength", value=10),
            "note: maxLength none is now 10",
            id="maxLength added",
        ),
        pytest.param(
            put(*INPUT, "name", "minLength", value=3),
            "name: minLength 1 is now 3",
            id="minLength raised",
        ),
        pytest.param(
            put(*INPUT, "name", "pattern", value="^[a-z]+$"),
            "name: pattern '^[a-z]+$' added",
            id="pattern added",
        ),
        pytest.param(
            put(*INPUT, "name", "format", value="email"),
            "name: format none is now email",
            id="format added",
        ),
        pytest.param(
            put(*INPUT, "tags", "maxItems", value=5),
            "tags: maxItems 10 is now 5",
            id="maxItems lowered",
        ),
        pytest.param(
            put(*INPUT, "tags", "items", "maxLength", value=10),
            "tags[]: maxLength 20 is now 10",
            id="array items narrowed",
        ),
        pytest.param(
            put(*INPUT, "size", "exclusiveMaximum", value=True),
            "size: maximum 10 is now excluded",
            id="bound made exclusive",
        ),
        pytest.param(
            drop(*INPUT, "note", "nullable"), "note: null no longer accepted", id="null refused"
        ),
        pytest.param(
            put(*INPUT, "size", "type", value="string"),
            "size: type integer is now string",
            id="request type changed",
        ),
        pytest.param(
            put(*INPUT, "size", "default", value=3),
            "size: default 5 is now 3",
            id="default changed",
        ),
        pytest.param(
            put(*SCHEMAS, "ThingInput", "additionalProperties", value=False),
            "unknown members now rejected",
            id="unknown members refused",
        ),
        pytest.param(
            rename(*CREATE, "requestBody", "content", "application/json", to="text/plain"),
            "request body: application/json no longer accepted",
            id="request media type removed",
        ),
        pytest.param(
            put(
                "paths",
                "/things/{id}",
                "delete",
                "requestBody",
                value={"required": True, "content": {"application/json": {"schema": TEXT}}},
            ),
            "DELETE /things/{id}: request body: new and required",
            id="request body required",
        ),
        pytest.param(
            put(
                *CREATE,
                "requestBody",
                "content",
                "application/json",
                "schema",
                value={"oneOf": [{"$ref": "#/components/schemas/Colour"}, TEXT]},
            ),
            "POST /things: request body application/json: old alternative 1 has no match",
            id="request schema replaced by alternatives that do not fit",
        ),
        pytest.param(
            drop(*OUTPUT, "note"),
            "GET /things/{id}: 200 application/json: field note removed",
            id="response field removed",
        ),
        pytest.param(
            put(*SCHEMAS, "Thing", "required", value=["id", "name"]),
            "GET /things: 200 application/json data[]: field colour may now be missing",
            id="response field made optional",
        ),
        pytest.param(
            put(*OUTPUT, "name", "nullable", value=True),
            "GET /things/{id}: 200 application/json name: may now be null",
            id="response field made nullable",
        ),
        pytest.param(
            put(*OUTPUT, "id", "type", value="string"),
            "id: type integer is now string",
            id="response type changed",
        ),
        pytest.param(
            drop(*OUTPUT, "created_at", "format"),
            "created_at: format date-time is now none",
            id="response format dropped",
        ),
        pytest.param(
            remove(*SCHEMAS, "Colour", "enum", value="red"),
            'GET /things/{id}: 200 application/json colour: no longer returns "red"',
            id="response enum value removed",
        ),
        pytest.param(
            rename(*CREATED, to="200"),
            "POST /things: success status 201 no longer returned",
            id="success status changed",
        ),
        pytest.param(
            put(*CREATE, "responses", "202", value={"description": "later"}),
            "POST /things: new success status 202",
            id="success status added",
        ),
        pytest.param(
            drop(*CREATED, "headers", "Location"),
            "POST /things: 201: header Location no longer sent",
            id="response header removed",
        ),
        pytest.param(
            put(*CREATED, "headers", "Location", "required", value=False),
            "header Location may now be missing",
            id="response header made optional",
        ),
        pytest.param(
            rename(*CREATED, "content", "application/json", to="application/xml"),
            "POST /things: 201: no longer sent as application/json",
            id="response media type removed",
        ),
        pytest.param(
            drop("paths", "/health", "get", "security"),
            "GET /health: requests with no credentials are no longer accepted",
            id="public operation needs credentials",
        ),
        pytest.param(put("servers", value=[{"url": "/v2"}]), "server / removed", id="server moved"),
    ],
)
def test_a_change_that_breaks_clients_fails(mutation, expected):
    breaking, _ = changes(mutation)
    assert any(expected in line for line in breaking), breaking


@pytest.mark.parametrize(
    "mutation",
    [
        pytest.param(put("paths", "/other", value={"get": {"responses": {}}}), id="path added"),
        pytest.param(
            put("paths", "/things/{id}", "put", value={"responses": {"200": {"description": "x"}}}),
            id="operation added",
        ),
        pytest.param(
            both(
                rename("paths", "/things/{id}", to="/things/{thing_id}"),
                put("paths", "/things/{thing_id}", "parameters", 0, "name", value="thing_id"),
            ),
            id="path parameter renamed",
        ),
        pytest.param(
            add(*LIST, "parameters", value={"name": "q", "in": "query", "schema": TEXT}),
            id="optional parameter added",
        ),
        pytest.param(put(*LIMIT, "schema", "maximum", value=500), id="parameter maximum raised"),
        pytest.param(put(*INPUT, "weight", value={"type": "integer"}), id="request field added"),
        pytest.param(
            put(*SCHEMAS, "ThingInput", "required", value=[]), id="request field made optional"
        ),
        pytest.param(
            both(
                put(*INPUT, "id", value={"type": "integer", "readOnly": True}),
                add(*SCHEMAS, "ThingInput", "required", value="id"),
            ),
            id="read-only field required (clients never send it)",
        ),
        pytest.param(add(*SCHEMAS, "Colour", "enum", value="blue"), id="enum value added"),
        pytest.param(put(*INPUT, "name", "maxLength", value=200), id="maxLength raised"),
        pytest.param(put(*INPUT, "tags", "maxItems", value=50), id="maxItems raised"),
        pytest.param(put(*INPUT, "size", "minimum", value=-5), id="minimum lowered"),
        pytest.param(put(*INPUT, "name", "nullable", value=True), id="null accepted"),
        pytest.param(put(*INPUT, "size", "type", value="number"), id="integer widened to number"),
        pytest.param(put(*INPUT, "name", "format", value="password"), id="unchecked format"),
        pytest.param(
            put(
                *CREATE,
                "requestBody",
                "content",
                "application/json",
                "schema",
                value={"oneOf": [{"$ref": "#/components/schemas/ThingInput"}, TEXT]},
            ),
            id="request schema gains an alternative",
        ),
        pytest.param(
            put(*CREATE, "requestBody", "content", "text/plain", value={"schema": TEXT}),
            id="request media type added",
        ),
        pytest.param(
            put(*CREATE, "responses", "429", value={"description": "slow down"}),
            id="error status added",
        ),
        pytest.param(drop(*CREATE, "responses", "400"), id="error status removed"),
        pytest.param(put(*OUTPUT, "weight", value={"type": "integer"}), id="response field added"),
        pytest.param(
            add(*SCHEMAS, "Thing", "required", value="note"), id="response field made required"
        ),
        pytest.param(
            put(*CREATED, "headers", "ETag", value={"schema": TEXT}), id="response header added"
        ),
        pytest.param(
            both(
                put(*LIST, "summary", value="List things"),
                put(*INPUT, "name", "description", value="What to call it"),
                put(*INPUT, "name", "example", value="Widget"),
            ),
            id="documentation",
        ),
        pytest.param(
            put(
                "paths",
                "/things/{id}",
                "get",
                "responses",
                "200",
                "content",
                "application/json",
                "schema",
                value=copy.deepcopy(BASE["components"]["schemas"]["Thing"]),
            ),
            id="a reference inlined",
        ),
        pytest.param(
            put(
                *INPUT,
                "colour",
                value={"allOf": [{"$ref": "#/components/schemas/Colour"}], "description": "Hue"},
            ),
            id="a reference wrapped in allOf",
        ),
        pytest.param(put(*LIST, "operationId", value="listAllThings"), id="operationId renamed"),
        pytest.param(
            put(*SCHEMAS, "Colour", "x-enum-varnames", value=["RED", "GREEN"]),
            id="enum member names",
        ),
        pytest.param(put("paths", "/health", "get", "security", value=[{}]), id="security spelt"),
    ],
)
def test_a_change_clients_do_not_notice_passes(mutation):
    breaking, _ = changes(mutation)
    assert breaking == []


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        pytest.param(
            put(*LIST, "operationId", value="listAllThings"),
            "operationId listThings is now listAllThings",
            id="operationId",
        ),
        pytest.param(
            add(*SCHEMAS, "Colour", "enum", value="blue"),
            'colour: may now return "blue"',
            id="response enum value added",
        ),
        pytest.param(
            put(*SCHEMAS, "Colour", "x-enum-varnames", value=["RED", "GREEN"]),
            "x-enum-varnames changed",
            id="x-enum-varnames",
        ),
    ],
)
def test_a_change_generated_code_notices_is_a_note(mutation, expected):
    _, notes = changes(mutation)
    assert any(expected in line for line in notes), notes


def test_recursive_schemas_are_compared_to_the_end():
    base = copy.deepcopy(BASE)
    base["components"]["schemas"]["Thing"]["properties"]["parts"] = {
        "type": "array",
        "items": {"$ref": THING},
    }
    new = copy.deepcopy(base)
    assert [c for c in compare(base, new) if c.breaking] == []
    new["components"]["schemas"]["Thing"]["properties"].pop("note")
    assert any("field note removed" in str(c) for c in compare(base, new))


def test_the_command_line_fails_on_a_breaking_change(tmp_path, capsys):
    import yaml

    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(yaml.safe_dump(BASE))
    new.write_text(yaml.safe_dump(BASE))
    assert main([str(old), str(new)]) == 0
    changed = copy.deepcopy(BASE)
    changed["components"]["schemas"]["Thing"]["required"] = ["id"]
    new.write_text(yaml.safe_dump(changed))
    assert main([str(old), str(new)]) == 1
    out = capsys.readouterr().out
    assert "BREAKING: 200 application/json: field colour may now be missing" in out
    assert "[GET /things/{id}]" in out
    assert "2 breaking" not in out
