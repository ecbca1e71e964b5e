"""UUIDs in the project's canonical format."""

from __future__ import annotations

import uuid

__all__ = ["get_uuid"]


def get_uuid() -> str:
    """A new random UUID as a lowercase hex string with dashes.

    Example:
        >>> len(get_uuid())
        36
    """
    return str(uuid.uuid4())
