"""Event-based waits on widget traitlets (no polling sleeps)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


async def wait_for_trait(
    widget: Any, name: str, predicate: Callable[[Any], bool], timeout: float = 10.0
) -> Any:
    """Wait until ``predicate(widget.<name>)`` holds (checked on every change of the traitlet)."""
    reached = asyncio.Event()

    def check(_change: Any = None) -> None:
        if predicate(getattr(widget, name)):
            reached.set()

    widget.observe(check, names=name)
    try:
        check()
        await asyncio.wait_for(reached.wait(), timeout)
    finally:
        widget.unobserve(check, names=name)
    return getattr(widget, name)
