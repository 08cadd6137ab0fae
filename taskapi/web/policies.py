"""How each operation runs: on the event loop or on a thread, and what limits it counts against.

One row per operationId of the spec (a test checks they match), so adding an operation means
deciding here. The rules:

- On the loop: work that is a few short indexed statements, reads and single-row writes alike.
  It costs no thread switch; DB_STATEMENT_TIMEOUT bounds a statement and DB_LOCK_TIMEOUT a
  wait for another transaction's row lock (every transaction that writes tasks is this short,
  but for an account's deletion, which only its own owner's writes can wait on). Measured
  with `make bench` (docs/performance.md), a PUT on the loop served 950 requests/s at p99
  80 ms where the same PUT on a thread served 790 at p99 157 ms.
- On a thread: bcrypt (about 0.2-0.3 s of CPU at cost 12; bcrypt releases the GIL, so the
  loop keeps serving while it hashes), writes of many rows, and checks that wait on other
  services by design.
- `bcrypt`: the request holds one of the process's bcrypt slots (web/middleware/admission.py)
  while it runs, and is refused with a 503 before any hashing when none frees up in time.
- `heavy`: for an operation whose cost depends on the request, which of its requests go to a
  thread all the same (a list that scans rather than reads an index range).
- `rate_limit`: which budget it counts against (web/middleware/ratelimit.py): `auth` per client
  IP, `default` per user (authenticated) or per client IP, or `none` for probes and documentation.
  Operations that check a password also count per client and account: `per_email` (register,
  login: the email in the body) or `per_session` (password change, account deletion: the
  account and the login session of the token).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl

from starlette.types import Scope

from taskapi.domain.listing import COUNTED_FILTERS

Budget = Literal["default", "auth", "none"]


@dataclass(frozen=True)
class Policy:
    on_thread: bool = False
    heavy: Callable[[Scope], bool] | None = None
    bcrypt: bool = False
    rate_limit: Budget = "default"
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
    "createTask": LOOP,
    "createTaskBatch": THREAD,
    "listTasks": Policy(heavy=heavy_list),
    "getTask": LOOP,
    "getTaskStats": LOOP,
    "updateTask": LOOP,
    "patchTask": LOOP,
    "deleteTask": LOOP,
}
