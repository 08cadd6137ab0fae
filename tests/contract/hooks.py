"""Schemathesis hooks shared by the quick (pytest) and deep (make contract) contract runs.

Loaded by the CLI through SCHEMATHESIS_HOOKS=tests.contract.hooks.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis

# Rules the server enforces that JSON Schema cannot state, each documented in the spec and
# pinned by the test named beside it. A schema-valid request that breaks one is rightly a 400:
# - bcrypt reads 72 bytes, `maxLength: 72` counts characters (tests/test_auth.py);
# - a cursor is opaque: any string matches its schema, but only the server's own mean
#   anything (tests/test_tasks_list.py); the stateful phase sends real ones via NextPage.
RULES_BEYOND_JSON_SCHEMA = {
    ("POST /api/v1/auth/register", "password", "at most 72 bytes when UTF-8 encoded"),
    ("POST /api/v1/auth/password", "new_password", "at most 72 bytes when UTF-8 encoded"),
    ("GET /api/v1/tasks", "cursor", "is not a cursor this API issued"),
}


@schemathesis.hook("filter_failure")
def only_rules_json_schema_can_state(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Drop a 'schema-valid request rejected' failure only when the 400 names nothing but
    rules from RULES_BEYOND_JSON_SCHEMA; every other failure stands."""
    if failure.code != "ST202" or response.status_code != 400:
        return True
    try:
        errors = json.loads(response.content)["errors"]
    except (ValueError, KeyError, TypeError):
        return True
    label = case.operation.label
    return not all((label, e["field"], e["message"]) in RULES_BEYOND_JSON_SCHEMA for e in errors)
