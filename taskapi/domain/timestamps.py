"""RFC 3339 timestamps on the wire, timezone-aware UTC datetimes inside."""

from __future__ import annotations

from datetime import UTC, datetime


def parse(value: str) -> datetime:
    """An RFC 3339 date-time as an aware UTC datetime.

    Raises ValueError without a time zone, or when the instant falls outside years 1-9999
    once moved to UTC (e.g. 9999-12-31T23:59:59-01:00).
    """
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value!r} is out of range") from None


def render(value: datetime) -> str:
    """RFC 3339 in UTC with a `Z`; microseconds only when there are any."""
    return value.astimezone(UTC).isoformat().removesuffix("+00:00") + "Z"
