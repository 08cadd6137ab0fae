"""Each request's `Consistency`, and its account's last write stored before its response.

With DATABASE_READ_URL set (web/consistency.py says how reads use it). The position is stored
before the response starts, so the client's next request, through any worker or replica, finds
it.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskapi.storage import replicas
from taskapi.storage.write_positions import WritePositions

log = logging.getLogger("taskapi.replicas")


class ReadYourWritesMiddleware:
    """A `Consistency` per request; the request's last write stored before its response."""

    def __init__(self, app: ASGIApp, positions: WritePositions) -> None:
        self.app = app
        self.positions = positions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        consistency = replicas.Consistency()
        token = replicas.CURRENT.set(consistency)
        stored = False

        async def store() -> None:
            nonlocal stored
            stored = True
            if consistency.written and consistency.account is not None:
                try:
                    await self.positions.store(consistency.account, consistency.written)
                except Exception as error:
                    # Reads elsewhere find Redis failing too and go to the primary.
                    log.error(
                        "write position of account %s not stored: %s", consistency.account, error
                    )

        async def send_after_storing(message: Message) -> None:
            if message["type"] == "http.response.start" and not stored:
                await store()
            await send(message)

        try:
            await self.app(scope, receive, send_after_storing)
        finally:
            if not stored:  # an error on its way to ExceptionMiddleware's response
                await store()
            replicas.CURRENT.reset(token)
