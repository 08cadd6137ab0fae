"""Operations tagged `problems`: the pages problem responses' `type` URIs name."""

from __future__ import annotations

import flask

from taskapi.web import problem_types
from taskapi.web.envelope import ok
from taskapi.web.serialize import problem_type_json


def get_problem_type(code: str) -> flask.Response:
    # The spec's enum of codes has already refused any code that is not one of these.
    problem = problem_types.BY_CODE[code]
    return ok(problem_type_json(problem), headers={"Cache-Control": "public, max-age=86400"})
