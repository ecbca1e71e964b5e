"""Ranges of a recording: ``start`` / ``end`` as a datetime, a timedelta back from now, or a stream sequence.

Both ends are inclusive, as in JetStream (``nats stream view``, ``opt_start_seq``). A naive datetime is
taken as UTC, as everywhere in fastiot.

Example:
    >>> from datetime import timedelta
    >>> r = resolve_range(timedelta(hours=1), None)
    >>> r.start_time is not None, r.end_seq
    (True, None)
    >>> parse_duration("1d12h")
    datetime.timedelta(days=1, seconds=43200)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Union

from fastiot.exceptions import InvalidRangeError

__all__ = ["Bound", "Range", "parse_duration", "resolve_range"]

Bound = Union[datetime, timedelta, int, None]  # noqa: UP007 - a runtime alias
"""What ``start`` and ``end`` take: a datetime, a timedelta back from now, a stream sequence (>= 1)."""

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|w|d|h|m|s)", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


@dataclass(frozen=True)
class Range:
    """A resolved range: where to start reading and where to stop (each end by sequence or by time).

    Attributes:
        start_seq: The first stream sequence to read, or None.
        start_time: The earliest message time to read (UTC), or None. At most one start is set.
        start_ns: ``start_time`` in ns since the epoch (exact for a ``pandas.Timestamp``).
        end_seq: The last stream sequence to read, or None.
        end_ns: The latest message time to read, in ns since the epoch, or None. A datetime end (which
            has microseconds) includes its whole microsecond.
    """

    start_seq: int | None = None
    start_time: datetime | None = None
    end_seq: int | None = None
    end_ns: int | None = None
    start_ns: int | None = None

    @property
    def is_empty(self) -> bool:
        """True if the range holds nothing whatever the stream holds (it ends before it starts)."""
        if self.start_seq is not None and self.end_seq is not None:
            return self.end_seq < self.start_seq
        if self.start_ns is not None and self.end_ns is not None:
            return self.start_ns > self.end_ns
        return False


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _ns(value: datetime) -> int:
    nanoseconds = getattr(value, "value", None)  # a pandas.Timestamp knows its nanoseconds
    if isinstance(nanoseconds, int) and getattr(value, "tzinfo", None) is not None:
        return nanoseconds
    delta = _utc(value) - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _bound(value: Bound, name: str, now: datetime) -> int | datetime | None:
    if value is None:
        return None
    if isinstance(value, bool):  # a bool is an int to Python, never a sequence to a person
        raise InvalidRangeError(f"{name}={value!r} is not a time or a sequence number")
    if isinstance(value, int):
        if value < 1:
            raise InvalidRangeError(
                f"{name}={value} is not a stream sequence: sequences start at 1 (for 'the last n messages' "
                f"use info().last_seq - n + 1)"
            )
        return value
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise InvalidRangeError(
                f"{name}={value!r} is negative; a timedelta counts back from now, e.g. timedelta(hours=1)"
            )
        return now - value
    if isinstance(value, datetime):
        return _utc(value)
    raise InvalidRangeError(
        f"{name} must be a datetime, a timedelta back from now or a stream sequence number (int), "
        f"got {type(value).__name__} {value!r}"
    )


def resolve_range(start: Bound, end: Bound, *, now: datetime | None = None) -> Range:
    """Turn ``start`` / ``end`` into a :class:`Range` (timedeltas counted back from ``now``).

    Raises:
        InvalidRangeError: A bound is of another type, a negative timedelta, or a sequence below 1.
    """
    now = _utc(now) if now is not None else datetime.now(timezone.utc)
    first = _bound(start, "start", now)
    last = _bound(end, "end", now)
    end_ns = None
    if isinstance(last, datetime):
        end_ns = _ns(last)
        if getattr(last, "nanosecond", None) is None:
            end_ns += 999  # a datetime stands for its whole microsecond
    return Range(
        start_seq=first if isinstance(first, int) else None,
        start_time=first if isinstance(first, datetime) else None,
        start_ns=_ns(first) if isinstance(first, datetime) else None,
        end_seq=last if isinstance(last, int) else None,
        end_ns=end_ns,
    )


def parse_duration(text: str | float | timedelta) -> timedelta:
    """A duration from ``"1d"``, ``"12h"``, ``"90s"``, ``"1h30m"``, ``"500ms"``, ``"2w"`` or seconds.

    Raises:
        ValueError: The text is no duration (the message shows the accepted forms).
    """
    if isinstance(text, timedelta):
        return text
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return timedelta(seconds=float(text))
    if not isinstance(text, str):
        raise ValueError(f"a duration is a text like '1d' or a number of seconds, got {text!r}")
    spec = text.strip().replace(" ", "")
    try:
        return timedelta(seconds=float(spec))
    except ValueError:
        pass
    total, position = 0.0, 0
    for match in _DURATION_PART.finditer(spec):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
        position = match.end()
    if not spec or position != len(spec):
        raise ValueError(
            f"{text!r} is not a duration; use a number with a unit: 500ms, 90s, 15m, 12h, 1d, 2w "
            f"(or combined: 1h30m), or plain seconds"
        )
    return timedelta(seconds=total)
