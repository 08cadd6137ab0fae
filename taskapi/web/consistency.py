"""Read-your-writes across workers and replicas, when reads may go to a standby.

ReadYourWritesMiddleware (web/middleware/read_your_writes.py) gives each request a
`Consistency` (storage/replicas.py) and stores the position of the request's last write for its
account before the response starts, so that the client's next request, through any worker or
replica, reads what it wrote. The security functions name the account as soon as they know it
(`follow`), with its last write position; anonymous operations that write for an account name
it after the write (`wrote_for`). Reads of a request without an account go to the primary.
"""

from __future__ import annotations

from taskapi.storage import replicas
from taskapi.storage.write_positions import UNKNOWN, WritePositions


async def follow(positions: WritePositions | None, account: int) -> None:
    """The current request acts for `account`: its reads must see the account's last write."""
    consistency = replicas.CURRENT.get()
    if positions is None or consistency is None:
        return
    floor = await positions.load(account)
    if floor == UNKNOWN:
        return  # the account stays unnamed, so its reads go to the primary
    consistency.account = account
    consistency.floor = floor


def wrote_for(account: int) -> None:
    """The current request, anonymous, wrote for `account` (registration, login)."""
    consistency = replicas.CURRENT.get()
    if consistency is not None:
        consistency.account = account
