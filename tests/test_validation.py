"""What web/validation.py and web/framework/validators.py add to Connexion's validators."""

from __future__ import annotations

import json

import pytest

from taskapi.web.validation import validator_for
from tests.conftest import assert_problem


def post(api, auth, body, content_type="application/json"):
    return api.client.post(
        "/api/v1/tasks",
        content=body if isinstance(body, bytes) else json.dumps(body).encode(),
        headers={**auth, "Content-Type": content_type} if content_type else auth,
    )


def test_messages_name_each_field_and_rule(api, auth):
    body = assert_problem(post(api, auth, {"title": "x" * 201, "status": "done"}), 400)
    assert body["errors"] == [
        {"field": "title", "message": "at most 200 characters"},
        {"field": "status", "message": "must be one of pending, in_progress, completed"},
    ]
    assert body["detail"] == (
        "title: at most 200 characters; status: must be one of pending, in_progress, completed"
    )


def test_parameters_are_worded_like_bodies(api, auth):
    response = api.client.get("/api/v1/tasks?limit=0&colour=red", headers=auth)
    assert assert_problem(response, 400)["errors"] == [
        {"field": "colour", "message": "is not a parameter of this operation"},
        {"field": "limit", "message": "must be at least 1"},
    ]


@pytest.mark.parametrize(
    "url",
    # Operations without parameters (their validation skips empty query strings only), and one
    # with a path parameter: the check comes before the task is looked up.
    ["/health?verbose=1", "/api/v1/tasks/stats?verbose=1", "/api/v1/tasks/1?verbose=1"],
)
def test_a_query_parameter_the_operation_does_not_take_is_refused(api, auth, url):
    response = api.client.get(url, headers=auth)
    assert assert_problem(response, 400)["errors"] == [
        {"field": "verbose", "message": "is not a parameter of this operation"}
    ]


def test_a_missing_required_body_names_the_body(api, auth):
    body = assert_problem(post(api, auth, b""), 400)
    assert body["errors"] == [{"field": "request body", "message": "is required"}]


def test_a_body_that_is_not_an_object_is_a_400_not_a_500(api, auth):
    # Connexion's defaults-setting calls setdefault() on whatever the body is.
    for raw in (b"null", b"[]", b'"title"', b"42"):
        body = assert_problem(post(api, auth, raw), 400)
        assert body["errors"] == [{"field": "request body", "message": "must be a JSON object"}]


def test_defaults_of_the_spec_are_filled_in(api, auth):
    task = api.create_task(auth, title="Only a title")
    assert (task["status"], task["priority"], task["description"]) == ("pending", "medium", "")


def test_strings_no_database_can_store_are_a_400(api, auth):
    body = assert_problem(post(api, auth, b'{"title": "a\\ud800b"}'), 400)
    assert body["errors"] == [{"field": "title", "message": "must not contain unpaired surrogates"}]


def test_deep_nesting_is_a_400(api, auth):
    raw = b'{"title": "a", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert assert_problem(post(api, auth, raw), 400)["detail"] == (
        "request body: is nested too deeply"
    )


def test_date_times_need_a_time_zone_and_a_year_utc_can_hold(api, auth):
    for due in ("2025-01-01T10:00:00", "2025-13-45T10:00:00Z", "garbage"):
        body = assert_problem(post(api, auth, {"title": "t", "due_date": due}), 400)
        assert body["errors"][0]["field"] == "due_date"


def test_int64_parameters_must_fit_in_64_bits(api, auth):
    response = api.client.get("/api/v1/tasks/9223372036854775808", headers=auth)
    assert assert_problem(response, 400, "validation_failed")["errors"][0]["field"] == "id"


def test_a_json_body_without_a_content_type_reaches_the_handler_as_json(api, auth):
    response = post(api, auth, {"title": "no content type"}, content_type=None)
    assert response.status_code == 201
    assert response.json()["data"]["title"] == "no content type"


def test_merge_patch_bodies_reach_the_handler_as_json(api, auth):
    task = api.create_task(auth)
    response = api.client.patch(
        f"/api/v1/tasks/{task['id']}",
        content=b'{"priority": "high"}',
        headers={**auth, "Content-Type": "application/merge-patch+json"},
    )
    assert response.json()["data"]["priority"] == "high"


def test_each_schema_is_compiled_once():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert validator_for(schema) is validator_for(schema)
    assert validator_for(dict(schema)) is not validator_for(schema)
