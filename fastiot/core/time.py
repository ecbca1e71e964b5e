"""Time helpers: fastiot always works in timezone-aware UTC."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

__all__ = ["ensure_tzinfo", "get_time_now"]


def get_time_now() -> datetime:
    """The current time, timezone-aware in UTC.

    Example:
        >>> get_time_now().tzinfo is timezone.utc
        True
    """
    return datetime.now(timezone.utc)


def ensure_tzinfo(v: Any) -> Any:
    """Make a datetime timezone-aware UTC; any other value is returned unchanged.

    A naive datetime is taken to be UTC already; an aware one is converted to UTC.

    Example:
        >>> ensure_tzinfo(datetime(2024, 1, 1, 12)).isoformat()
        '2024-01-01T12:00:00+00:00'
    """
    if isinstance(v, datetime):
        if v.tzinfo is None:
            return v.replace(tzinfo=timezone.utc)
        if v.tzinfo is not timezone.utc:
            return v.astimezone(timezone.utc)
    return v
