"""The scopes a personal access token needs come from the spec, and the service enforces exactly
those: for every operation, a token with just its scope passes and one without is refused."""

from __future__ import annotations

from typing import Any

import pytest

from taskapi.resources import load_spec
from taskapi.web.routing import spec_operations
from tests.conftest import assert_problem

SPEC = load_spec()
SCHEME = SPEC["components"]["securitySchemes"]["personalAccessToken"]
KNOWN_SCOPES = set(SCHEME["x-scopes"])
GRANTABLE = set(SPEC["components"]["schemas"]["Scope"]["enum"])
# A scope and the ones a token granted it holds as well (the spec's Scope description says so).
IMPLIED = {"tasks:write": {"tasks:read"}}
SECURED = {
    op: (method, path, operation)
    for op, (method, path, operation) in spec_operations(SPEC).items()
    if operation.get("security", SPEC["security"])
}


def required_scope(operation: dict[str, Any]) -> str:
    """The one scope the operation's personalAccessToken requirement lists."""
    requirements = operation.get("security", SPEC["security"])
    scopes = [r["personalAccessToken"] for r in requirements if "personalAccessToken" in r]
    assert scopes, "no personalAccessToken requirement: declare the scope it needs"
    assert len(scopes) == 1
    assert len(scopes[0]) == 1
    return str(scopes[0][0])


def example_body(operation: dict[str, Any]) -> Any:
    """The example of the operation's JSON request body, as the spec gives it."""
    content = operation["requestBody"]["content"]
    media = content.get("application/json") or next(iter(content.values()))
    schema = media["schema"]
    if "$ref" in schema:
        schema = SPEC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return media.get("example", schema.get("example"))


class Caller:
    """Calls any operation of the spec with a valid request, on resources it creates."""

    def __init__(self, api: Any, session: dict[str, str]) -> None:
        self.api = api
        self.session = session

    def token(self, scopes: set[str]) -> str:
        response = self.api.client.post(
            "/api/v1/auth/tokens",
            json={"name": "walk", "scopes": sorted(scopes)},
            headers=self.session,
        )
        assert response.status_code == 201, response.text
        return str(response.json()["data"]["token"])

    def call(self, operation_id: str, token: str) -> Any:
        method, path, operation = SECURED[operation_id]
        if "{id}" in path:
            path = path.replace("{id}", str(self._resource_id(path)))
        kwargs: dict[str, Any] = {"headers": {"Authorization": f"Bearer {token}"}}
        if "requestBody" in operation:
            kwargs["json"] = example_body(operation)
        return self.api.client.request(method.upper(), path, **kwargs)

    def _resource_id(self, path: str) -> int:
        if path.startswith("/api/v1/auth/tokens/"):
            response = self.api.client.post(
                "/api/v1/auth/tokens",
                json={"name": "target", "scopes": ["tasks:read"]},
                headers=self.session,
            )
            return int(response.json()["data"]["id"])
        return int(self.api.create_task(self.session)["id"])


@pytest.fixture
def caller(api):
    return Caller(api, api.user())


def test_every_secured_operation_declares_one_known_scope():
    assert SECURED
    for operation_id, (_, _, operation) in SECURED.items():
        requirements = operation.get("security", SPEC["security"])
        assert requirements[0] == {"bearerAuth": []}, operation_id
        assert required_scope(operation) in KNOWN_SCOPES, operation_id


def test_every_secured_operation_says_its_scope_in_its_description():
    """Swagger UI, ReDoc and the generated SDKs' docs show descriptions, not every scope."""
    for operation_id, (_, _, operation) in SECURED.items():
        scope = required_scope(operation)
        assert f"**Scope:** `{scope}`" in operation["description"], operation_id
        assert operation["description"].count("**Scope:**") == 1, operation_id


def test_the_scopes_a_token_can_be_granted_are_the_known_ones_but_session():
    assert {"session"} == KNOWN_SCOPES - GRANTABLE
    for scope in KNOWN_SCOPES:
        assert f"`{scope}`" in SCHEME["description"]


def passed_security(response: Any) -> bool:
    """Whether the request got past the spec's security (a wrong password is the handler's)."""
    if response.status_code in (401, 403):
        return bool(response.json()["code"] == "wrong_password")
    return bool(response.status_code < 500)


@pytest.mark.parametrize(
    "operation_id",
    sorted(op for op, (_, _, o) in SECURED.items() if required_scope(o) in GRANTABLE),
)
def test_a_token_with_exactly_the_declared_scope_passes(caller, operation_id):
    scope = required_scope(SECURED[operation_id][2])
    response = caller.call(operation_id, caller.token({scope}))
    assert passed_security(response), response.text


@pytest.mark.parametrize("operation_id", sorted(SECURED))
def test_a_token_without_the_declared_scope_is_refused(caller, operation_id):
    scope = required_scope(SECURED[operation_id][2])
    others = {s for s in GRANTABLE if s != scope and scope not in IMPLIED.get(s, set())}
    response = caller.call(operation_id, caller.token(others))
    assert_problem(response, 403, "insufficient_scope")
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer realm="taskapi", error="insufficient_scope", scope="{scope}"'
    )


@pytest.mark.parametrize("operation_id", sorted(SECURED))
def test_a_login_session_passes_every_operation(caller, operation_id):
    response = caller.call(operation_id, caller.session["Authorization"].removeprefix("Bearer "))
    assert passed_security(response), response.text
