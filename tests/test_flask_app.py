"""taskapi.web.framework.flask_app on its own: handlers get what Connexion's FlaskApp gives."""

from __future__ import annotations

from typing import Any

import connexion
import flask
import pytest
import werkzeug.routing
from connexion.resolver import Resolver

from taskapi.web.framework import flask_app
from taskapi.web.framework.flask_app import BridgedFlaskApp

SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "decoration", "version": "1"},
    "paths": {
        "/bare": {"get": {"operationId": "bare", "responses": {"200": {"description": "ok"}}}},
        "/items/{item_id}": {
            "post": {
                "operationId": "echo",
                "parameters": [
                    {
                        "name": "item_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    },
                    {"name": "q", "in": "query", "schema": {"type": "string", "default": "none"}},
                    {
                        "name": "tags",
                        "in": "query",
                        "schema": {"type": "array", "items": {"type": "integer"}},
                    },
                ],
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"size": {"type": "integer", "default": 3}},
                            }
                        }
                    }
                },
                "responses": {"200": {"description": "ok"}},
            }
        },
        "/everything/{item_id}": {
            "get": {
                "operationId": "everything",
                "parameters": [
                    {
                        "name": "item_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    },
                    {"name": "q", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": {"description": "ok"}},
            }
        },
        "/slow": {"get": {"operationId": "coroutine", "responses": {"200": {"description": "ok"}}}},
    },
}

calls: list[tuple[str, dict[str, Any]]] = []


def bare() -> flask.Response:
    # What Flask knows of the route, which RoutedFlask sets without matching.
    route = {"rule": flask.request.url_rule.rule, "endpoint": flask.request.endpoint}
    calls.append(("bare", route))
    return flask.jsonify(bare=True)


def echo(item_id: int, body: dict[str, Any], q: str, tags: list[int] | None = None) -> Any:
    kwargs = {"item_id": item_id, "body": body, "q": q, "tags": tags}
    calls.append(("echo", kwargs))
    return kwargs


def everything(**kwargs: Any) -> Any:
    calls.append(("everything", kwargs))
    return kwargs


async def coroutine() -> Any:
    calls.append(("coroutine", {}))
    return {"awaited": True}


HANDLERS = {f.__name__: f for f in (bare, echo, everything, coroutine)}


def stock_app() -> Any:
    app = connexion.FlaskApp(__name__)
    app.add_api(SPEC, resolver=Resolver(function_resolver=HANDLERS.__getitem__))
    return app


def our_app() -> Any:
    # A coroutine handler runs to completion with asgiref, which needs a thread of its own.
    app = BridgedFlaskApp(__name__, offload=lambda scope: scope["path"] == "/slow")
    app.add_api(SPEC, resolver=Resolver(function_resolver=HANDLERS.__getitem__))
    return app


REQUESTS = [
    ("get", "/bare", {}),
    ("get", "/bare?unexpected=1", {}),
    ("post", "/items/7?q=x&tags=1&tags=2", {"json": {"size": 9}}),
    ("post", "/items/7", {"json": {}}),
    ("get", "/everything/5?q=all", {}),
    ("get", "/slow", {}),
]


@pytest.mark.parametrize(("method", "url", "options"), REQUESTS)
def test_handlers_receive_what_connexion_would_pass(method: str, url: str, options: Any):
    answers = []
    for make in (stock_app, our_app):
        calls.clear()
        response = getattr(make().test_client(), method)(url, **options)
        answers.append((response.status_code, response.json(), list(calls)))
    assert answers[0] == answers[1]
    assert answers[1][0] == 200


def test_a_handler_without_arguments_is_not_handed_the_parsed_request(monkeypatch):
    parsed: list[str] = []
    original = flask_app.prep_kwargs

    def counted(request: Any, **kwargs: Any) -> Any:
        parsed.append(request.path)
        return original(request, **kwargs)

    monkeypatch.setattr(flask_app, "prep_kwargs", counted)
    client = our_app().test_client()
    assert client.get("/bare").json() == {"bare": True}
    assert client.get("/everything/5").json() == {"item_id": 5}
    assert parsed == ["/everything/5"]


def test_flask_does_not_route_again_what_connexion_routed(monkeypatch):
    matched: list[str] = []
    original = werkzeug.routing.MapAdapter.match

    def counted(self: werkzeug.routing.MapAdapter, *args: Any, **kwargs: Any) -> Any:
        matched.append(self.path_info)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(werkzeug.routing.MapAdapter, "match", counted)
    assert stock_app().test_client().get("/everything/5").status_code == 200
    assert matched == ["/everything/5"]
    matched.clear()
    client = our_app().test_client()
    assert client.get("/everything/5").json() == {"item_id": 5}
    assert client.post("/items/7", json={}).json()["item_id"] == 7
    assert matched == []


def test_a_request_connexion_did_not_route_is_matched_by_flask():
    app = our_app().app
    app.add_url_rule("/plain/<int:n>", "plain", lambda n: {"n": n})
    with app.test_client() as client:
        assert client.get("/plain/3").json == {"n": 3}


def test_flask_asks_once_whether_a_view_is_a_coroutine_function(monkeypatch):
    asked: list[Any] = []
    original = flask.app.iscoroutinefunction

    def counted(function: Any) -> bool:
        asked.append(function)
        return original(function)

    monkeypatch.setattr(flask.app, "iscoroutinefunction", counted)
    client = our_app().test_client()
    for _ in range(3):
        assert client.get("/everything/5").json() == {"item_id": 5}
        assert client.get("/bare").json() == {"bare": True}
    views = [view.operation_id for view in asked if isinstance(view, flask_app.FlaskOperation)]
    assert {"bare", "everything"} <= set(views)
    assert len(views) == len(set(views))
