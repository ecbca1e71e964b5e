"""The one way the tests wait: for an event where one exists, else by polling a condition, always bounded.

Example:
    >>> await wait_until(lambda: runner.status == "running", 5, "the runner to run")  # doctest: +SKIP
    >>> wait_until_sync(lambda: process.poll() is not None, 10, "the process to exit")  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

__all__ = ["POLL_INTERVAL", "WAIT", "wait_for_trait", "wait_until", "wait_until_gone", "wait_until_sync"]

# Every wait of a test is bounded by this unless the test says otherwise.
WAIT = 10.0
POLL_INTERVAL = 0.01


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]],
    timeout: float = WAIT,
    what: str = "condition",
    *,
    interval: float = POLL_INTERVAL,
) -> None:
    """Poll ``predicate()`` (sync or async) every ``interval`` s until it holds: for what no event signals.

    Raises:
        AssertionError: It did not hold within ``timeout`` seconds (the message names ``what``).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(interval)


def wait_until_sync(
    predicate: Callable[[], bool], timeout: float = WAIT, what: str = "condition", *, interval: float = 0.05
) -> None:
    """:func:`wait_until` for plain (non-async) tests, e.g. waiting on another process."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(interval)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # An orphan may linger as a zombie of init for a moment: it runs no more, /proc says so.
    status = Path(f"/proc/{pid}/status")
    try:
        return "State:\tZ" in status.read_text()
    except OSError:
        return True


def wait_until_gone(pid: int, timeout: float = WAIT, what: str = "") -> None:
    """Wait until process ``pid`` has ended (a zombie counts as ended: it runs no more)."""
    wait_until_sync(lambda: _gone(pid), timeout, what or f"process {pid} to end")


async def wait_for_trait(
    widget: Any, name: str, predicate: Callable[[Any], bool], timeout: float = WAIT
) -> Any:
    """Wait until ``predicate(widget.<name>)`` holds (checked on every change of the traitlet, no polling)."""
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
