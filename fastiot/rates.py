"""Message rates: the one way captures and subject indexes turn arrival times into messages per second.

A rate counts the messages of the last ``window`` seconds. A slow subject (fewer than two messages
in the window, e.g. one every 30 s) would read 0.0/s most of the time that way, although it is
alive; its rate is taken over the messages kept instead, up to now, so it reads 2.0/min and decays
only when the subject really falls silent.

Example:
    >>> from fastiot.rates import message_rate, describe_rate
    >>> s = 1_000_000_000
    >>> times = [0, 30 * s, 60 * s, 90 * s]  # one message every 30 s
    >>> describe_rate(message_rate(times, now_ns=100 * s, window_ns=5 * s, first_ns=0, total=4))
    '2.4/min'
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["DEFAULT_RATE_WINDOW", "describe_rate", "message_rate", "per_minute"]

DEFAULT_RATE_WINDOW = 5.0
"""Rates count the messages of the last this many seconds."""

_SECOND_NS = 1_000_000_000


def _count_since(times: Sequence[int] | np.ndarray, cutoff: int) -> int:
    if isinstance(times, np.ndarray):
        return int(np.count_nonzero(times >= cutoff))
    kept = len(times)
    if times[0] >= cutoff:  # the common cases without a search: all in the window, or none
        return kept
    if times[-1] < cutoff:
        return 0
    # Arrival times only grow (one clock, appended in order): a binary search finds the window's start.
    return kept - bisect.bisect_left(times, cutoff)


def message_rate(
    times: Sequence[int] | np.ndarray | Any,
    *,
    now_ns: int,
    window_ns: int,
    first_ns: int,
    total: int,
) -> float:
    """Messages per second, from the arrival times of the newest messages kept.

    Args:
        times: Arrival times in ns of the newest messages kept, oldest first (a deque, list or
            numpy array); at most ``total``.
        now_ns: Now, in ns (``time.time_ns()``).
        window_ns: The time the rate counts messages over, in ns.
        first_ns: When the first message of all arrived (a shorter history than the window is
            counted over the time since then, at least one second).
        total: Messages seen in all, kept or not.

    Returns:
        The rate, 0.0 only when nothing arrived.
    """
    kept = len(times)
    if not kept or not total:
        return 0.0
    window = min(window_ns, max(_SECOND_NS, now_ns - first_ns))
    recent = _count_since(times, now_ns - window)
    oldest = int(times[0])
    if recent == kept and total > kept:
        # Every kept message is in the window and there were more: the time they span is the window.
        return recent / max((now_ns - oldest) / 1e9, 1e-3)
    if recent >= 2:
        return recent / (window / 1e9)
    # A slow subject: over the messages kept, up to now (so it decays when the subject falls silent).
    return kept / (max(now_ns - oldest, window) / 1e9)


def per_minute(rate: float) -> float:
    """A rate in messages per second as messages per minute."""
    return rate * 60.0


def describe_rate(rate: float) -> str:
    """A rate as people read it: ``"12.5/s"``, below one per second ``"3.0/min"``, ``"0/s"`` if none.

    Example:
        >>> describe_rate(0.05), describe_rate(2.0)
        ('3.0/min', '2.0/s')
    """
    if rate <= 0:
        return "0/s"
    if rate < 1.0:
        per_min = per_minute(rate)
        return f"{per_min:,.1f}/min" if per_min >= 0.1 else f"{per_min:.2g}/min"
    return f"{rate:,.1f}/s"
