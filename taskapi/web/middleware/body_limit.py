"""Request bodies: a size limit and a deadline, before anything reads them."""

from __future__ import annotations

import asyncio

from connexion.exceptions import ProblemException
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimitMiddleware:
    """413 for request bodies over `max_bytes`, 408 for ones slower than `timeout` seconds.

    Both before anything parses the body. A body that stops short of its Content-Length would
    otherwise be waited for forever. Sits inside Connexion's exception middleware, so both
    are problem responses; the 408 also closes the connection, whose unread rest is garbage.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise self._too_large()
        if declared in (None, "0") and "transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body to wait for (RFC 9112 section 6.3)
            return
        received = 0
        complete = False
        deadline = asyncio.get_running_loop().time() + self.timeout

        async def bounded_receive() -> Message:
            nonlocal received, complete
            if complete:  # the body is in; what follows (a disconnect) may take any time
                return await receive()
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), max(remaining, 0))
            except TimeoutError:
                raise self._too_slow() from None
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise self._too_large()
            complete = not message.get("more_body", False)
            return message

        await self.app(scope, bounded_receive, send)

    def _too_large(self) -> ProblemException:
        return ProblemException(
            status=413,
            title="Content Too Large",
            detail=f"request body: at most {self.max_bytes} bytes",
        )

    def _too_slow(self) -> ProblemException:
        return ProblemException(
            status=408,
            title="Request Timeout",
            detail=f"request body: did not arrive within {self.timeout:g} seconds",
            headers={"Connection": "close"},
        )
