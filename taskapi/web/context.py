"""What a request carries from one layer to the next, in one typed place.

Middleware and handlers share facts about the request in hand: the operation Connexion routed
it to, that operation's policy, who is calling, the rate budget it counted against, and the
app's services. They live in one `RequestContext` per request, which the outermost middleware
puts in the ASGI scope's extensions (shared by every copy of the scope) under one key.
Connexion's own facts, its routing and security results, live in extensions it names and
does not document (web/framework/README.md); they are read here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import flask
from starlette.types import Scope

from taskapi.config import Settings
from taskapi.domain import changes
from taskapi.domain.access_tokens import TokenCodec
from taskapi.domain.passwords import PasswordHasher
from taskapi.ops.metrics import Metrics
from taskapi.ops.readiness import Readiness
from taskapi.storage.db import Database
from taskapi.storage.write_positions import WritePositions
from taskapi.web.policies import POLICIES, Policy

if TYPE_CHECKING:
    from taskapi.web.middleware.ratelimit import Budget

KEY = "taskapi"
_CONNEXION_ROUTING = "connexion_routing"  # {"operation_id": ...}, from its routing middleware
_CONNEXION_SECURITY = "connexion_context"  # {"user": ..., "token_info": ...}, from security
_UNRESOLVED: Any = object()


@dataclass(frozen=True)
class Services:
    """What the running app is built on, once, by create_app."""

    settings: Settings
    db: Database
    passwords: PasswordHasher
    token_codec: TokenCodec
    sync_tokens: changes.TokenCodec
    readiness: Readiness
    metrics: Metrics
    # Each account's last write, when reads may go to a standby (web/consistency.py).
    write_positions: WritePositions | None = None

    def close(self) -> None:
        """Release the database pools and the readiness probe's connection."""
        self.readiness.close()
        self.db.dispose()


@dataclass(frozen=True)
class Caller:
    """Who bearerAuth vouched for: the account's id, and the verified claims of its token."""

    user: int
    claims: Mapping[str, Any]


@dataclass(slots=True)
class RequestContext:
    """One request's facts, as the layers it passes learn them."""

    services: Services
    # The tightest rate budget the request counted against, for the response's headers.
    budget: Budget | None = None
    _policy: Policy | None = field(default=_UNRESOLVED, repr=False)


def begin(scope: Scope, services: Services) -> RequestContext:
    """A new request's context, kept in its scope."""
    context = RequestContext(services)
    scope.setdefault("extensions", {})[KEY] = context
    return context


def of(scope: Scope) -> RequestContext:
    """The context of the request `scope` belongs to."""
    context: RequestContext = scope["extensions"][KEY]
    return context


def operation_id(scope: Scope) -> str | None:
    """The operationId Connexion routed the request to, or None (not an operation)."""
    routed: Mapping[str, Any] = scope.get("extensions", {}).get(_CONNEXION_ROUTING, {})
    return routed.get("operation_id")


def policy(scope: Scope) -> Policy | None:
    """The policy of the request's operation (web/policies.py), looked up once per request."""
    context = scope.get("extensions", {}).get(KEY)
    if context is not None and context._policy is not _UNRESOLVED:
        resolved: Policy | None = context._policy
        return resolved
    operation = operation_id(scope)
    found = None if operation is None else POLICIES[operation]
    if context is not None and operation is not None:
        context._policy = found
    return found


def runs_on_thread(scope: Scope) -> bool:
    """Whether the request's handler runs on a thread rather than on the event loop."""
    found = policy(scope)
    return found is not None and found.runs_on_thread(scope)


def caller(scope: Scope) -> Caller | None:
    """Who is calling, once bearerAuth has run; None for an operation without it."""
    security: Mapping[str, Any] = scope.get("extensions", {}).get(_CONNEXION_SECURITY, {})
    user = security.get("user")
    if user is None:
        return None
    return Caller(user, security.get("token_info") or {})


def current() -> RequestContext:
    """In a handler: the context of the request it is handling."""
    return of(flask.request.environ["asgi.scope"])


def services() -> Services:
    """In a handler: the services of the app handling the request."""
    return current().services
