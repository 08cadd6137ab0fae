"""ETags and conditional requests (RFC 9110 section 13) for tasks."""

from __future__ import annotations

import re

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
