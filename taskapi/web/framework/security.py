"""An OAuth 2.0 security handler whose token-info function can decline a token.

Every operation that takes a token offers two schemes for the same `Authorization: Bearer`
header (web/caller.py): bearerAuth for a login session's JWT, personalAccessToken for a
`tapi_` token. Connexion tries both and, when neither accepts, raises the "most specific"
error: a 403, else a 401, else the one with the lowest status. So a scheme that answered 401 to
a token that is not its kind would outrank a database error in the other (a 503 became a 401).
Each info function therefore declines a token of the other kind by returning NO_VALUE, which
Connexion's bearer handler passes on as "no credentials for this scheme". Its OAuth 2.0 handler
instead reads scopes from whatever it got; this one passes NO_VALUE on, as the bearer handler
does, and checks scopes as Connexion's does otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from connexion.exceptions import OAuthScopeProblem
from connexion.security import NO_VALUE, OAuthSecurityHandler


class DecliningOAuthHandler(OAuthSecurityHandler):  # type: ignore[misc]
    """Connexion's oauth2 handler, but a token-info function may return NO_VALUE."""

    def check_oauth_func(
        self, token_info_func: Callable[..., Any], scope_validate_func: Callable[..., Any]
    ) -> Callable[..., Awaitable[Any]]:
        get_token_info = self._generic_check(token_info_func, "Provided token is not valid")

        async def wrapper(request: Any, token: str, required_scopes: list[str]) -> Any:
            token_info = await get_token_info(request, token, required_scopes=required_scopes)
            if token_info is NO_VALUE:
                return NO_VALUE
            token_scopes = token_info.get("scope", token_info.get("scopes", ""))
            validation = scope_validate_func(required_scopes, token_scopes)
            while asyncio.iscoroutine(validation):
                validation = await validation
            if not validation:
                raise OAuthScopeProblem(required_scopes=required_scopes, token_scopes=token_scopes)
            return token_info

        return wrapper


SECURITY_MAP = {"oauth2": DecliningOAuthHandler}
