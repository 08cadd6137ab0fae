"""How each operation runs: on the event loop or on a thread, and what limits it counts against.

One row per operationId of the spec (a test checks they match), so adding an operation means
deciding here. On the loop: work that is a few short indexed statements, reads and single-row
writes alike; it costs no thread switch (docs/performance.md, "Writes on the loop, bcrypt on a
thread"). On a thread: bcrypt, which releases the GIL, so the loop keeps serving while it hashes;
writes of many rows; and checks that wait on other services by design.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, parse_qsl

from starlette.types import Scope

from taskapi.domain.listing import COUNTED_FILTERS

Budget = Literal["default", "auth", "none"]


@dataclass(frozen=True)
class Policy:
    """Where an operation runs and what it counts against.

    On the loop, DB_STATEMENT_TIMEOUT bounds a statement and DB_LOCK_TIMEOUT a wait for another
    transaction's row lock: every transaction that writes tasks is short, but for an account's
    deletion, which only its own owner's writes can wait on.
    """

    on_thread: bool = False
    # For an operation whose cost depends on the request: which of its requests go to a thread
    # all the same (a list that scans rather than reads an index range).
    heavy: Callable[[Scope], bool] | None = None
    # Holds one of the process's bcrypt slots (web/middleware/admission.py) while it runs; a
    # 503 before any hashing when none frees up in time.
    bcrypt: bool = False
    # Its budget (web/middleware/ratelimit.py): `auth` per client IP, `default` per user
    # (authenticated) or per client IP, `none` for probes and documentation.
    rate_limit: Budget = "default"
    # Operations that check a password also count per client and account: the email in the body
    # (register, login), or the account and the login session of the token (password change,
    # account deletion).
    per_email: bool = False
    per_session: bool = False

    def runs_on_thread(self, scope: Scope) -> bool:
        """Whether the request `scope` of this operation runs on a thread."""
        return self.on_thread or (self.heavy is not None and self.heavy(scope))


# Offsets up to this many rows are read off an index range in a few milliseconds.
LIGHT_OFFSET = 1000
# The parameters of a list that keep it on the index of its sort: the rest filter by scanning
# (`q`) or count the filtered set by scanning (the dates).
LIGHT_LIST_PARAMETERS = COUNTED_FILTERS | {"sort", "page", "limit", "cursor"}


def large_page(scope: Scope) -> bool:
    """A change-feed page of more than 100 tasks, whose JSON would hold the loop."""
    limit = parse_qs(scope["query_string"].decode("latin-1")).get("limit", ["100"])[-1]
    return not limit.isdigit() or int(limit) > 100


def heavy_list(scope: Scope) -> bool:
    """A list that searches, filters by date or skips deep into the rows: it may take tens or
    hundreds of milliseconds, which on the loop would stall every request of the worker."""
    if not scope["query_string"]:
        return False
    parameters = dict(parse_qsl(scope["query_string"].decode("latin-1")))
    if not LIGHT_LIST_PARAMETERS.issuperset(parameters):
        return True
    try:
        page, limit = int(parameters.get("page", 1)), int(parameters.get("limit", 20))
    except ValueError:
        return False  # validation answers it
    return (page - 1) * limit > LIGHT_OFFSET


LOOP = Policy()
THREAD = Policy(on_thread=True)
BCRYPT_AUTHENTICATED = Policy(on_thread=True, bcrypt=True, rate_limit="auth", per_session=True)
PROBE = Policy(rate_limit="none")

POLICIES: dict[str, Policy] = {
    "getHealth": PROBE,
    "getReadiness": Policy(on_thread=True, rate_limit="none"),
    "getProblemType": PROBE,
    "register": Policy(on_thread=True, bcrypt=True, rate_limit="auth", per_email=True),
    "login": Policy(on_thread=True, bcrypt=True, rate_limit="auth", per_email=True),
    "refreshToken": Policy(rate_limit="auth"),
    "logout": LOOP,
    "getMe": LOOP,
    "updateMe": LOOP,
    "deleteMe": BCRYPT_AUTHENTICATED,
    "changePassword": BCRYPT_AUTHENTICATED,
    "createPersonalAccessToken": LOOP,
    "listPersonalAccessTokens": LOOP,
    "getPersonalAccessToken": LOOP,
    "deletePersonalAccessToken": LOOP,
    "createTask": LOOP,
    "createTaskBatch": THREAD,
    "listTasks": Policy(heavy=heavy_list),
    "getTask": LOOP,
    "getTaskStats": LOOP,
    # Index-range reads; a page of up to 1,000 tasks still goes to a thread.
    "getTaskChanges": Policy(heavy=large_page),
    "updateTask": LOOP,
    "patchTask": LOOP,
    "deleteTask": LOOP,
}
