"""Every error, Connexion's own included, is an RFC 9457 problem with the seed's members."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

import taskapi.domain.listing
import taskapi.domain.tasks
from tests.conftest import assert_problem, base_settings


def test_validation_error(api):
    body = assert_problem(api.client.post("/api/v1/auth/register", json={"email": 1}), 400)
    assert {"field": "email", "message": "must be a string"} in body["errors"]


def test_unknown_route_is_a_problem_404(api):
    assert_problem(api.client.get("/api/v2/tasks"), 404)


@pytest.mark.parametrize("path", ["/admin", "/debug", "/.env", "/docs", "/swagger", "/metrics"])
def test_nothing_undocumented_is_served(api, path):
    assert_problem(api.client.get(path), 404)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/api/v1/tasks", "POST, GET"),
        ("POST", "/api/v1/tasks/1", "GET, PUT, PATCH, DELETE"),
        ("GET", "/api/v1/tasks/batch", "POST"),
        ("GET", "/api/v1/auth/login", "POST"),
        ("TRACE", "/health", "GET"),
        ("OPTIONS", "/api/v1/tasks", "POST, GET"),
    ],
)
def test_undeclared_method_is_405_with_the_documented_methods(api, method, path, allow):
    response = api.client.request(method, path)
    assert_problem(response, 405)
    assert response.headers["allow"] == allow


def test_wrong_content_type_is_415(api):
    response = api.client.post(
        "/api/v1/auth/login", content=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert_problem(response, 415)


def test_body_over_the_limit_is_413(make_app, settings):
    client = make_app(settings, max_body_bytes=1000).test_client()
    response = client.post("/api/v1/auth/login", content=b"{" + b" " * 1000 + b"}")
    assert_problem(response, 413)
    assert response.json()["detail"] == "request body: at most 1000 bytes"


def test_chunked_body_over_the_limit_is_413(make_app, settings):
    client = make_app(settings, max_body_bytes=1000).test_client()
    chunks = iter([b'{"email": "', b"a" * 2000, b'"}'])
    response = client.post(
        "/api/v1/auth/login", content=chunks, headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 413)


def test_missing_token_is_401_with_a_bearer_challenge(api):
    response = api.client.get("/api/v1/tasks")
    body = assert_problem(response, 401)
    assert body["detail"] == "Authorization header required"
    assert response.headers["www-authenticate"] == 'Bearer realm="taskapi"'


def test_invalid_token_is_401_with_invalid_token_error(api):
    response = api.client.get("/api/v1/tasks", headers={"Authorization": "Bearer nope"})
    body = assert_problem(response, 401)
    assert body["detail"] == "Invalid or expired token"
    assert response.headers["www-authenticate"] == 'Bearer realm="taskapi", error="invalid_token"'


def test_unexpected_error_is_a_generic_500(api, auth, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("secret internals: /srv/app.py line 3")

    monkeypatch.setattr(taskapi.domain.tasks, "read_owned", explode)
    response = api.client.get("/api/v1/tasks/1", headers=auth)
    body = assert_problem(response, 500)
    assert body["detail"] == "internal server error"
    assert "secret internals" not in response.text


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg2://nobody@127.0.0.1:1/nothing",
        "sqlite:////nonexistent-directory/taskapi.db",
    ],
)
def test_unreachable_database_is_503_with_retry_after(make_app, url):
    client = make_app(base_settings(url), db_connect_timeout=1).test_client()
    response = client.post(
        "/api/v1/auth/login", json={"email": "jane@example.com", "password": "password123"}
    )
    assert_problem(response, 503)
    assert response.headers["retry-after"] == "5"


def test_database_errors_never_reach_the_client(api, auth, monkeypatch):
    def outage(*args, **kwargs):
        raise OperationalError("SELECT secret FROM x", {}, Exception("server closed"))

    monkeypatch.setattr(taskapi.domain.listing, "list_owned", outage)
    response = api.client.get("/api/v1/tasks", headers=auth)
    assert_problem(response, 503)
    assert "SELECT" not in response.text


def test_every_response_is_marked_nosniff_and_not_cacheable(api, auth):
    for response in (
        api.client.get("/health"),
        api.client.get("/api/v1/tasks", headers=auth),
        api.client.get("/api/v1/tasks"),
        api.client.get("/nope"),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-frame-options"] == "DENY"
        assert "server" not in response.headers


def test_cors_preflight_is_204_as_in_the_seed(api):
    response = api.client.options(
        "/api/v1/tasks",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == "*"
    methods = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
    assert methods == {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
    allowed = response.headers["access-control-allow-headers"].lower()
    assert {"origin", "content-type", "authorization"} <= {h.strip() for h in allowed.split(",")}
    assert response.headers["access-control-max-age"] == "86400"


def test_any_origin_may_call_but_never_with_the_browsers_credentials(api, auth):
    """CORS `*` is safe here: the API takes a bearer token a page must hold itself, never a
    cookie the browser would attach to another site's request."""
    response = api.client.get(
        "/api/v1/tasks", headers={**auth, "Origin": "https://evil.example", "Cookie": "sid=x"}
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers
    assert "set-cookie" not in response.headers
    preflight = api.client.options(
        "/api/v1/tasks",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-credentials" not in preflight.headers


def test_cors_headers_are_on_errors_too(api):
    response = api.client.get("/api/v1/tasks", headers={"Origin": "https://app.example"})
    assert_problem(response, 401, "authentication_required")
    assert response.headers["access-control-allow-origin"] == "*"


def test_answers_vary_on_origin_with_or_without_one(api):
    # A cache must not hand a same-origin answer to a cross-origin request, or the reverse.
    same_origin = api.client.get("/health")
    cross_origin = api.client.get("/health", headers={"Origin": "https://app.example"})
    assert same_origin.headers["vary"] == cross_origin.headers["vary"] == "Origin"
    assert "access-control-allow-origin" not in same_origin.headers


def test_cors_allowed_origins_are_configurable(make_app, settings):
    client = make_app(settings, cors_allowed_origins=("https://app.example",)).test_client()
    listed = client.options(
        "/api/v1/tasks",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"},
    )
    assert listed.status_code == 204
    assert listed.headers["access-control-allow-origin"] == "https://app.example"
    assert "origin" in listed.headers["vary"].lower()
    unlisted = client.options(
        "/api/v1/tasks",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in unlisted.headers
    assert_problem(unlisted, 400)


def test_head_is_get_without_a_body(api):
    response = api.client.head("/health")
    assert response.status_code == 200
    assert response.content == b""
    assert int(response.headers["content-length"]) > 0


def test_every_domain_error_is_a_known_problem():
    """Each error class names a problem type by its code; the web layer answers by it."""
    from taskapi.app import create_app  # noqa: F401  # imports every module that defines one
    from taskapi.domain.errors import DomainError
    from taskapi.web.problem_types import BY_CODE

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    errors = [DomainError, *subclasses(DomainError)]
    assert len(errors) > 10
    for error in errors:
        assert error.code in BY_CODE, error.__name__
