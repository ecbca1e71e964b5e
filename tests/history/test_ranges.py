"""Ranges and durations: datetimes, timedeltas back from now, stream sequences; both ends inclusive."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from fastiot.exceptions import InvalidRangeError
from fastiot.history import Range, parse_duration, resolve_range

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=timezone.utc)


def test_sequences_timedeltas_and_datetimes() -> None:
    assert resolve_range(5, 10, now=NOW) == Range(start_seq=5, end_seq=10)
    hour = resolve_range(timedelta(hours=1), None, now=NOW)
    assert hour.start_time == NOW - timedelta(hours=1) and hour.end_ns is None
    assert hour.start_ns == int((NOW - timedelta(hours=1)).timestamp()) * 1_000_000_000
    assert resolve_range(None, None) == Range()


def test_a_datetime_end_includes_its_microsecond_and_a_timestamp_is_exact() -> None:
    end = datetime(2026, 1, 31, 12, 0, 0, 5, tzinfo=timezone.utc)
    assert resolve_range(None, end).end_ns == int(NOW.timestamp()) * 1_000_000_000 + 5_999
    stamp = pd.Timestamp("2026-01-31T12:00:00.000000005Z")
    assert resolve_range(stamp, stamp).start_ns == resolve_range(stamp, stamp).end_ns
    assert resolve_range(stamp, None).start_ns == int(NOW.timestamp()) * 1_000_000_000 + 5


def test_naive_datetimes_are_utc() -> None:
    assert resolve_range(NOW.replace(tzinfo=None), None).start_time == NOW


def test_an_end_before_the_start_is_an_empty_range() -> None:
    assert resolve_range(10, 3).is_empty
    assert resolve_range(NOW, NOW - timedelta(seconds=1)).is_empty
    assert not resolve_range(3, 3).is_empty
    assert not resolve_range(NOW, 3).is_empty  # a time and a sequence: the stream decides


@pytest.mark.parametrize("bad", [0, -1, True, "1h", 1.5, timedelta(seconds=-1), object()])
def test_bad_bounds_say_what_is_accepted(bad: object) -> None:
    with pytest.raises(InvalidRangeError):
        resolve_range(bad, None)  # type: ignore[arg-type]
    with pytest.raises(InvalidRangeError):
        resolve_range(None, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1d", 86400),
        ("12h", 43200),
        ("90s", 90),
        ("15m", 900),
        ("1h30m", 5400),
        ("500ms", 0.5),
        ("2w", 1209600),
        ("30", 30),
        (" 1 d ", 86400),
        (45, 45),
        (timedelta(minutes=2), 120),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "forever", "1y", "h1", "1h x", None])
def test_bad_durations_show_the_accepted_forms(bad: object) -> None:
    with pytest.raises(ValueError, match=r"1d|duration"):
        parse_duration(bad)  # type: ignore[arg-type]
