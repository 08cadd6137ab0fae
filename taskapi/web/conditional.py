"""ETags and conditional requests (RFC 9110 section 13) for tasks and task lists."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from taskapi.domain.tasks import Precondition
from taskapi.storage.rows import TaskView

# Strong ETags of the form "<task id>-<version>"; versions are bounded to stay in BIGINT.
_OURS = re.compile(r'"(\d{1,19})-(\d{1,18})"')


def etag(task: TaskView) -> str:
    """A strong ETag: it changes with every write to the task."""
    return f'"{task.id}-{task.version}"'


def if_match(header: str | None, task_id: int) -> Precondition:
    """What an If-Match header allows a write to `task_id` to overwrite."""
    if header is None or header.strip() == "*":
        return Precondition.any()
    versions = set()
    for tag in header.split(","):
        # Strong comparison: weak (W/) tags and other resources' tags never match.
        ours = _OURS.fullmatch(tag.strip())
        if ours and int(ours[1]) == task_id:
            versions.add(int(ours[2]))
    return Precondition.of(frozenset(versions))


def none_match(header: str | None, current: str) -> bool:
    """True if If-None-Match names the current representation (weak comparison)."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    return current in {tag.strip().removeprefix("W/") for tag in header.split(",")}


# A list's weak ETag: the change feed's floor when the list was read, and a digest of whose
# list it is and how it was asked for, so one list's tag never revalidates another.
_LIST = re.compile(r'W/"(\d{1,19})\.([0-9a-f]{16})"')


def list_key(owner_id: int, query: Iterable[tuple[str, str]]) -> str:
    """What distinguishes a list: its owner and its query parameters, in any order."""
    canonical = "&".join(f"{k}={v}" for k, v in sorted(query))
    return hashlib.sha256(f"{owner_id}?{canonical}".encode()).hexdigest()[:16]


def list_etag(floor: int, key: str) -> str:
    return f'W/"{floor}.{key}"'


def list_floor(header: str | None, key: str) -> int | None:
    """The floor of the first tag in If-None-Match that this list issued, if any."""
    if header is None:
        return None
    for tag in header.split(","):
        ours = _LIST.fullmatch(tag.strip())
        if ours and ours[2] == key:
            return int(ours[1])
    return None
