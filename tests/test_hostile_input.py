"""Inputs that make a naive stack answer 500 get a 4xx problem here, on both databases."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from taskapi.resources import load_spec
from taskapi.storage.schema import USERS
from tests.conftest import PASSWORD, assert_problem


def post_raw(api, path, raw, headers, content_type="application/json"):
    if content_type:
        headers = {**headers, "Content-Type": content_type}
    return api.client.post(path, content=raw, headers=headers)


def test_json_without_content_type_is_read_as_json(api, auth):
    response = post_raw(api, "/api/v1/tasks", b'{"title": "no content type"}', auth, None)
    assert response.status_code == 201
    assert response.json()["data"]["title"] == "no content type"


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"\xff\xfe{}", "request body: is not valid UTF-8"),
        (b'{"title": ', None),
        (b"", "request body: is required"),
        (b"null", "request body: must be a JSON object"),
        (b"[]", "request body: must be a JSON object"),
        (b'{"title": null}', "title: must be a string"),
        (b'{"title": NaN}', "title: must be a string"),
        (b'{"title": "\\ud800"}', "title: must not contain unpaired surrogates"),
        (b'{"title": "ok", "\\udfff": 1}', "request body: must not contain unpaired surrogates"),
        (b'{"title": "a\\u0000b"}', "title: must not contain NUL characters"),
        (
            b'{"title": "a", "description": "\\u0000"}',
            "description: must not contain NUL characters",
        ),
        (
            b'{"title": "a", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
            "request body: is nested too deeply",
        ),
    ],
)
def test_hostile_task_bodies_are_400(api, auth, raw, detail):
    response = post_raw(api, "/api/v1/tasks", raw, auth)
    assert_problem(response, 400, "validation_failed")
    if detail:
        assert response.json()["detail"] == detail
    assert api.client.get("/api/v1/tasks", headers=auth).json()["meta"]["total_count"] == 0


def test_nul_in_a_name_is_400_on_both_databases(api):
    response = api.register(name="Ja\u0000ne")
    assert_problem(response, 400, "validation_failed")
    assert response.json()["detail"] == "name: must not contain NUL characters"


def test_nul_in_a_token_name_is_400_on_both_databases(api, auth):
    body = {"name": "ci\u0000", "scopes": ["tasks:read"]}
    response = api.client.post("/api/v1/auth/tokens", json=body, headers=auth)
    assert_problem(response, 400, "validation_failed")
    assert response.json()["detail"] == "name: must not contain NUL characters"


def test_every_request_string_that_is_stored_refuses_nul():
    """PostgreSQL cannot store NUL in text: each string a request body carries is checked by a
    pattern, an enum or a format, or is a secret that only its digest reaches the database."""
    spec = load_spec()
    schemas = spec["components"]["schemas"]
    hashed = {"refresh_token"}

    def resolve(schema):
        while "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    unchecked = []

    def walk(schema, where):
        schema = resolve(schema)
        checked = {"pattern", "enum", "format"} & set(schema)
        if schema.get("type") == "string" and not checked and where.rsplit(".")[-1] not in hashed:
            unchecked.append(where)
        for name, member in (schema.get("properties") or {}).items():
            walk(member, f"{where}.{name}")
        if "items" in schema:
            walk(schema["items"], f"{where}[]")

    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            for media in operation.get("requestBody", {}).get("content", {}).values():
                walk(media["schema"], f"{method.upper()} {path}")
    assert unchecked == []


def test_duplicate_keys_take_the_last_value(api, auth):
    response = post_raw(api, "/api/v1/tasks", b'{"title": "first", "title": "second"}', auth)
    assert response.status_code == 201
    assert response.json()["data"]["title"] == "second"


@pytest.mark.parametrize(
    "due_date",
    [
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00+01:00",
        "2025-01-01t10:00:00z",
        "2025-01-01",
        "2025-01-01T10:00:00",
        "2025-13-45T10:00:00Z",
        "2025-01-01T23:59:60Z",
        "",
    ],
)
def test_unusable_due_dates_are_400(api, auth, due_date):
    response = api.client.post(
        "/api/v1/tasks", json={"title": "x", "due_date": due_date}, headers=auth
    )
    assert_problem(response, 400, "validation_failed")
    assert response.json()["errors"][0]["field"] == "due_date"


@pytest.mark.parametrize(
    ("due_date", "stored"),
    [
        ("0001-01-02T00:00:00+01:00", "0001-01-01T23:00:00Z"),
        ("9999-12-30T23:59:59-01:00", "9999-12-31T00:59:59Z"),
        ("2025-06-01T12:00:00.5+00:00", "2025-06-01T12:00:00.500000Z"),
    ],
)
def test_extreme_but_representable_due_dates_round_trip(api, auth, due_date, stored):
    task = api.create_task(auth, due_date=due_date)
    assert task["due_date"] == stored
    fetched = api.client.get(f"/api/v1/tasks/{task['id']}", headers=auth).json()["data"]
    assert fetched["due_date"] == stored


def test_register_with_lone_surrogate_password_is_400(api):
    raw = json.dumps({"email": "a@example.com", "name": "Al", "password": "x"}).replace(
        '"x"', '"\\ud800xxxxxxxx"'
    )
    response = post_raw(api, "/api/v1/auth/register", raw.encode(), {})
    assert_problem(response, 400, "validation_failed")
    assert response.json()["detail"] == "password: must not contain unpaired surrogates"


def test_concurrent_registrations_of_one_email_give_one_201_and_409s(api, services):
    emails = [("Race@Example.com" if i % 2 else "race@example.com") for i in range(30)]

    def register(email):
        return api.client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Racer"}
        )

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(register, emails))
    (created,) = (r for r in responses if r.status_code == 201)
    assert created.json()["data"]["email"] == "race@example.com"
    for taken in (r for r in responses if r is not created):
        assert_problem(taken, 409, "email_taken")
    with services.db.reading() as s:
        assert s.scalars(sa.select(USERS.c.email)).all() == ["race@example.com"]


def test_a_chunked_body_without_content_length_is_read(api, auth):
    """HTTP/1.1 clients that stream send Transfer-Encoding: chunked and no Content-Length."""
    chunks = iter([b'{"title": "stre', b'amed", "priority": "high"}'])
    response = api.client.post("/api/v1/tasks", content=chunks, headers=auth)
    assert response.status_code == 201, response.text
    assert response.json()["data"]["title"] == "streamed"


def test_an_empty_chunked_body_is_still_required(api, auth):
    response = api.client.post("/api/v1/tasks", content=iter([b""]), headers=auth)
    assert_problem(response, 400, "validation_failed")
    assert response.json()["detail"] == "request body: is required"


def test_a_description_over_10000_characters_is_400(api, auth):
    response = api.client.post(
        "/api/v1/tasks", json={"title": "long", "description": "é" * 10_001}, headers=auth
    )
    assert_problem(response, 400, "validation_failed")
    assert response.json()["detail"] == "description: at most 10000 characters"
    kept = api.create_task(auth, description="😀" * 10_000)
    assert len(kept["description"]) == 10_000


def test_a_page_of_the_longest_tasks_stays_within_a_few_megabytes(api, auth):
    batch = {"tasks": [{"title": "t" * 200, "description": "😀" * 10_000}] * 25}
    for _ in range(4):
        assert api.client.post("/api/v1/tasks/batch", json=batch, headers=auth).status_code == 201
    page = api.client.get("/api/v1/tasks?limit=100", headers=auth)
    assert page.status_code == 200
    assert len(page.json()["data"]) == 100
    assert len(page.content) < 5 * 2**20
