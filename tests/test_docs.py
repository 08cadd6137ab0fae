"""The served spec is the contract as written, and the docs pages work offline."""

from __future__ import annotations

import re
from importlib.metadata import version

import pytest
import yaml
from openapi_spec_validator import validate
from starlette.testclient import TestClient

from taskapi.resources import load_spec, spec_path
from taskapi.web.docs import DOCS_CSP
from taskapi.web.middleware.headers import API_CSP
from tests.conftest import assert_problem
from tests.test_spec import spec_operations


def test_served_yaml_is_the_spec_file_as_written(client):
    served = client.get("/openapi.yaml")
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("application/yaml")
    assert served.text == spec_path().read_text(encoding="utf-8")


def test_served_json_is_the_same_document_with_its_refs(client):
    served = client.get("/openapi.json")
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/json"
    spec = served.json()
    assert spec == yaml.safe_load(client.get("/openapi.yaml").text) == load_spec()
    assert served.text.count('"$ref"') > 200  # not dereferenced
    assert set(spec["components"]["schemas"]) >= {"Task", "TaskInput", "Problem"}
    assert spec_operations(spec) == spec_operations(load_spec())
    validate(spec)


def test_served_spec_names_a_usable_server(client):
    assert client.get("/openapi.json").json()["servers"] == [
        {"url": "/", "description": "This server"}
    ]


def test_behind_a_path_prefix_the_servers_name_it(app):
    with TestClient(app, root_path="/tasks") as client:
        as_json = client.get("/tasks/openapi.json").json()
        as_yaml = yaml.safe_load(client.get("/tasks/openapi.yaml").text)
        assert as_json == as_yaml
        assert as_json["servers"] == [{"url": "/tasks", "description": "This server"}]
        assert client.get("/tasks/ui", follow_redirects=False).headers["location"] == "/tasks/ui/"


def test_swagger_ui_is_current_and_served_from_the_package_not_a_cdn(client):
    assert version("flask-swagger-ui").startswith("5.")
    page = client.get("/ui/")
    assert page.status_code == 200
    assert "swagger-ui" in page.text
    assert not re.search(r"https?://", page.text)
    assets = re.findall(r'(?:src|href)="\./([\w.-]+\.(?:js|css|png))"', page.text)
    assert "swagger-ui-bundle.js" in assets
    for asset in assets:
        assert client.get(f"/ui/{asset}").status_code == 200, asset
    initializer = client.get("/ui/swagger-initializer.js").text
    assert '"../openapi.json"' in initializer
    assert "validatorUrl: null" in initializer  # no badge from validator.swagger.io


def test_redoc_is_served_from_the_package_not_a_cdn(client):
    page = client.get("/redoc")
    assert page.status_code == 200
    assert not re.search(r"https?://", page.text)
    assets = re.findall(r'(?:src|href)="(redoc/[\w.-]+)"', page.text)
    assert "redoc/redoc.standalone.js" in assets
    for asset in assets:
        assert client.get(f"/{asset}").status_code == 200, asset
    bundle = client.get("/redoc/redoc.standalone.js").text
    assert "cdn.redoc.ly" not in bundle
    assert "fonts.googleapis.com" not in page.text + bundle


@pytest.mark.parametrize(("path", "target"), [("/ui", "/ui/"), ("/redoc/", "/redoc")])
def test_docs_addresses_without_their_slash_redirect(client, path, target):
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == target


@pytest.mark.parametrize("path", ["/ui/", "/ui/swagger-ui-bundle.js", "/redoc"])
def test_docs_pages_have_their_own_policy(client, path):
    response = client.get(path)
    assert response.headers["content-security-policy"] == DOCS_CSP
    assert "script-src 'self'" in DOCS_CSP
    assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("path", ["/openapi.json", "/openapi.yaml", "/health"])
def test_the_spec_and_the_api_keep_the_strict_policy(client, path):
    assert client.get(path).headers["content-security-policy"] == API_CSP


@pytest.mark.parametrize("path", ["/openapi.json", "/ui/swagger-ui-bundle.js", "/redoc"])
def test_docs_revalidate_with_their_etag(client, path):
    first = client.get(path)
    assert first.headers["cache-control"] == "no-cache"
    again = client.get(path, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""


def test_head_works_on_the_docs(client):
    response = client.head("/openapi.json")
    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.parametrize("path", ["/openapi.json", "/ui/", "/redoc"])
def test_docs_answer_only_get_and_head(client, path):
    response = client.post(path)
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize("path", ["/ui/swagger-ui.js", "/ui/../pyproject.toml", "/openapi.yml"])
def test_nothing_else_is_served_under_the_docs(client, path):
    assert_problem(client.get(path), 404, "not_found")
