"""The seed API's success envelope: {"success": true, "data": ..., "meta": ...}."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeAlias

import flask

from taskapi.web import spec_types

# What `data` holds in a success envelope: one of the spec's shapes, or the seed API's message.
Data: TypeAlias = (
    spec_types.Task
    | list[spec_types.Task]
    | spec_types.TaskStats
    | spec_types.TaskChanges
    | spec_types.User
    | spec_types.PersonalAccessToken
    | spec_types.NewPersonalAccessToken
    | list[spec_types.PersonalAccessToken]
    | spec_types.LoginResult
    | spec_types.Readiness
    | spec_types.ProblemType
    | str
)

# One encoder for every response: json.dumps builds a new one per call when given options.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def ok(
    data: Data,
    status: int = 200,
    *,
    headers: Mapping[str, str] | None = None,
    meta: spec_types.PageMeta | spec_types.ChangesMeta | None = None,
) -> flask.Response:
    body: dict[str, Any] = {"success": True, "data": data}
    if meta is not None:
        body["meta"] = meta
    return json_response(body, status, headers=headers)


def json_response(
    body: Any, status: int = 200, *, headers: Mapping[str, str] | None = None
) -> flask.Response:
    # An explicit Content-Type: Connexion cannot infer one once errors document
    # application/problem+json (spec-first/connexion#1956).
    return flask.Response(
        _encode(body),
        status=status,
        headers=dict(headers or {}),
        content_type="application/json",
    )


def empty(status: int, headers: Mapping[str, str] | None = None) -> flask.Response:
    """A response without a body (204, 304), and so without a Content-Type."""
    response = flask.Response(status=status, headers=dict(headers or {}))
    del response.headers["Content-Type"]
    return response
