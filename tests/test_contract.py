"""A quick Schemathesis pass in-process on each database; `make contract` runs the deep one."""

from __future__ import annotations

import tomllib
import uuid
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

import tests.contract.hooks  # noqa: F401  # registers the shared generation hooks
from tests.conftest import PASSWORD


def quick_pass_config() -> SchemathesisConfig:
    """The deep run's settings (checks, per-operation expectations), without its two-account
    login, which needs a live server; the auth hook below signs up instead."""
    with (Path(__file__).parent / "contract" / "schemathesis.toml").open("rb") as f:
        settings_ = tomllib.load(f)
    settings_.pop("auth")
    return SchemathesisConfig.from_dict(settings_)


CONFIG = quick_pass_config()

pytestmark = pytest.mark.contract


@pytest.fixture
def contract_schema(app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)

    @schema.auth()
    class FreshUser:
        """Registers a user of its own, logs in, and sends the token as a Bearer header."""

        def get(self, case, context):
            client = app.test_client()
            email = f"contract-{uuid.uuid4().hex[:12]}@example.com"
            body = {"email": email, "password": PASSWORD, "name": "Contract"}
            assert client.post("/api/v1/auth/register", json=body).status_code == 201
            return client.post("/api/v1/auth/login", json=body).json()["data"]["token"]

        def set(self, case, data, context):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    return schema


schema = schemathesis.pytest.from_fixture("contract_schema")


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_operations_keep_the_spec(case):
    case.call_and_validate()
