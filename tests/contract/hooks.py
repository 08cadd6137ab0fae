"""Schemathesis hooks shared by the quick (pytest) and deep (make contract) contract runs.

Loaded by the CLI through SCHEMATHESIS_HOOKS=tests.contract.hooks.
"""

from __future__ import annotations

from typing import Any

import schemathesis

from taskapi.security import password_fits

REGISTER = "POST /api/v1/auth/register"


@schemathesis.hook("filter_body")
def passwords_bcrypt_can_read(context: Any, body: Any) -> bool:
    """Leave out passwords of at most 72 characters but more than 72 bytes.

    Why: bcrypt reads 72 bytes; the spec's `maxLength: 72` counts characters, and JSON Schema
    cannot count bytes, so the byte rule lives in the field's description and the server
    answers 400 for it (tested in tests/test_auth.py). Without this filter, such a password
    would look schema-valid to the positive_data_acceptance check.
    """
    if context.operation is None or context.operation.label != REGISTER:
        return True
    password = body.get("password") if isinstance(body, dict) else None
    if not isinstance(password, str) or len(password) > 72:
        return True
    try:
        return password_fits(password)
    except UnicodeEncodeError:  # an unpaired surrogate: the server's 400 is a negative case
        return True
