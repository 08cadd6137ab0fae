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
- `bcrypt`: the request holds one of the process's bcrypt slots (taskapi/admission.py) while
  it runs, and is refused with a 503 before any hashing when none frees up in time.
- `rate_limit`: which budget it counts against (taskapi/ratelimit.py): `auth` per client IP
  (and per email for `per_email`), `default` per user (authenticated) or per client IP, or
  `none` for probes and documentation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from starlette.types import Scope

from taskapi.routing import operation_id

Budget = Literal["default", "auth", "none"]


@dataclass(frozen=True)
class Policy:
    on_thread: bool = False
    bcrypt: bool = False
    rate_limit: Budget = "default"
    per_email: bool = False


LOOP = Policy()
THREAD = Policy(on_thread=True)
BCRYPT = Policy(on_thread=True, bcrypt=True)
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
    "deleteMe": BCRYPT,
    "changePassword": BCRYPT,
    "createTask": LOOP,
    "createTaskBatch": THREAD,
    "listTasks": LOOP,
    "getTask": LOOP,
    "getTaskStats": LOOP,
    "updateTask": LOOP,
    "patchTask": LOOP,
    "deleteTask": LOOP,
}


def policy_of(scope: Scope) -> Policy | None:
    """The policy of the operation Connexion routed `scope` to (None: not an operation)."""
    operation = operation_id(scope)
    return None if operation is None else POLICIES[operation]


def runs_on_thread(scope: Scope) -> bool:
    policy = policy_of(scope)
    return policy is not None and policy.on_thread
