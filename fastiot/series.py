"""LiveSeries: numeric fields of NATS messages as bounded time series, the model behind a live plot.

A series is one field of one subject (``v1.thing.press_1.temperature`` / ``value``). The model
subscribes to the given subjects (NATS patterns allowed: each matching subject gets its own series),
decodes each message with :func:`fastiot.payloads.decode`, picks the fields by path with
:func:`fastiot.payloads.get_path` (nested ``a.b``, keys with dots quoted ``["a.b"]``) and keeps the
numeric ones with their receive time. Memory is bounded three ways: the time window, ``max_points``
per series (the oldest go first, counted in :attr:`SeriesBuffer.dropped`) and ``max_series``.

What a plot draws comes from :meth:`LiveSeries.data`: each series cut to the window and thinned to
at most ``max_points`` points by :func:`decimate` (per bucket the lowest and the highest value, so
spikes survive the thinning).

Example:
    >>> from fastiot.series import LiveSeries
    >>> async def main(connection):
    ...     async with LiveSeries("v1.thing.*.temperature", "value", connection, window=60) as series:
    ...         await series.wait_for(10, timeout=5)
    ...         return {key.label: len(t) for key, (t, v) in series.data().items()}
"""

from __future__ import annotations

import collections
import datetime as dt
import math
import numbers
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pydantic

from fastiot.capture import DEFAULT_WAIT_TIMEOUT, BrokerObserver, Listener
from fastiot.core.broker_connection import (
    DEFAULT_PENDING_BYTES_LIMIT,
    DEFAULT_PENDING_MSGS_LIMIT,
    BrokerConnection,
)
from fastiot.core.subject_helper import SubjectsArg, subject_targets
from fastiot.exceptions import LivePlotError
from fastiot.payloads import decode, get_path

if TYPE_CHECKING:
    import pandas as pd

    from fastiot.capture import Message

__all__ = [
    "DEFAULT_DISPLAY_POINTS",
    "DEFAULT_MAX_POINTS",
    "DEFAULT_MAX_SERIES",
    "DEFAULT_WINDOW",
    "VALUE_FIELD",
    "LiveSeries",
    "SeriesBuffer",
    "SeriesKey",
    "decimate",
    "numeric_value",
]

VALUE_FIELD = "value"
"""The field a payload that is a bare number (not a mapping) is plotted as, like a capture's column."""
DEFAULT_WINDOW = 300.0
"""Seconds of history a live series keeps (5 minutes)."""
DEFAULT_MAX_POINTS = 20_000
"""Points kept per series at most (the oldest go first): 5 minutes of a 60/s sensor."""
DEFAULT_MAX_SERIES = 50
"""Series per model at most; values of further subject/field pairs are counted, not kept."""
DEFAULT_DISPLAY_POINTS = 1_000
"""Points per series :meth:`LiveSeries.data` returns at most (a chart is ~1000 pixels wide)."""

_time_ns = time.time_ns

# A series as arrays: times (datetime64[ns]) and values (float64), oldest first.
Points = tuple[np.ndarray, np.ndarray]
# Called with the number of points added since the last call; 0 means the series were cleared.
PointsCallback = Callable[[int], None]


@dataclass(frozen=True, order=True)
class SeriesKey:
    """Which series: a subject and a field path."""

    subject: str
    field: str

    @property
    def label(self) -> str:
        """``subject field``, as a legend shows it (``subject`` alone for the field ``value``)."""
        return self.subject if self.field == VALUE_FIELD else f"{self.subject} {self.field}"


def numeric_value(value: Any) -> float | None:
    """``value`` as a float if it is a real number (not a bool, not NaN-less text), else ``None``.

    Example:
        >>> numeric_value(3), numeric_value(True), numeric_value("3")
        (3.0, None, None)
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        return float(value)
    except (OverflowError, ValueError):
        return None


class SeriesBuffer:
    """One series: ``(time ns, value)`` pairs of the last ``window`` seconds, at most ``max_points``.

    Args:
        window_ns: Points older than this many nanoseconds before the newest reference time are cut
            when read; ``None`` keeps points until ``max_points`` pushes them out.
        max_points: Points kept at most; appending more drops the oldest (counted in :attr:`dropped`).
    """

    __slots__ = ("dropped", "max_points", "times", "values", "window_ns")

    def __init__(self, window_ns: int | None, max_points: int) -> None:
        self.window_ns: int | None = window_ns
        self.max_points: int = max_points
        self.times: collections.deque[int] = collections.deque(maxlen=max_points)
        self.values: collections.deque[float] = collections.deque(maxlen=max_points)
        self.dropped: int = 0

    def __len__(self) -> int:
        return len(self.times)

    def append(self, t_ns: int, value: float) -> None:
        """Add a point (points arrive in time order; an older one is still kept, a plot sorts)."""
        if len(self.times) == self.max_points:
            self.dropped += 1
        self.times.append(t_ns)
        self.values.append(value)

    def trim(self, now_ns: int) -> None:
        """Forget points older than the window before ``now_ns``."""
        if self.window_ns is None:
            return
        cutoff = now_ns - self.window_ns
        times, values = self.times, self.values
        while times and times[0] < cutoff:
            times.popleft()
            values.popleft()

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The points as ``(times as datetime64[ns], values as float64)`` arrays, oldest first."""
        times = np.fromiter(self.times, dtype=np.int64, count=len(self.times)).view("M8[ns]")
        values = np.fromiter(self.values, dtype=np.float64, count=len(self.values))
        return times, values


def decimate(times: np.ndarray, values: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` of the points, keeping the shape: per bucket its lowest and highest value.

        The points are cut into ``max_points // 2`` buckets of consecutive points; each bucket gives its
        minimum and its maximum, in time order. Spikes survive (an average would flatten them).

    Example:
            >>> import numpy as np
    import pydantic
            >>> t, v = decimate(np.arange(10), np.array([0, 1, 9, 1, 0, 0, -5, 0, 0, 0.0]), 4)
            >>> v.tolist()
            [0.0, 9.0, -5.0, 0.0]
    """
    n = len(values)
    if max_points < 2:
        raise LivePlotError(f"max_points must be >= 2 to keep a series' shape, got {max_points}")
    if n <= max_points:
        return times, values
    buckets = max_points // 2
    size = math.ceil(n / buckets)
    padded = size * buckets
    # Pad with the last value so the reshape works; the padding never wins a min or max it didn't have.
    index = np.minimum(np.arange(padded), n - 1).reshape(buckets, size)
    grid = values[index]
    low = index[np.arange(buckets), np.nanargmin(_nan_safe(grid, math.inf), axis=1)]
    high = index[np.arange(buckets), np.nanargmax(_nan_safe(grid, -math.inf), axis=1)]
    picks = np.sort(np.unique(np.concatenate([low, high])))
    return times[picks], values[picks]


def _field_value(payload: Any, field: str) -> float | None:
    if field == VALUE_FIELD and not isinstance(payload, (dict, list, tuple, pydantic.BaseModel)):
        return numeric_value(payload)  # a bare number (`nats pub sensor 21.5`) is the field "value"
    return numeric_value(get_path(payload, field, None))


def _nan_safe(grid: np.ndarray, fill: float) -> np.ndarray:
    return np.where(np.isnan(grid), fill, grid)


def _as_ns(window: dt.timedelta | float | None) -> int | None:
    if window is None:
        return None
    seconds = window.total_seconds() if isinstance(window, dt.timedelta) else float(window)
    if not seconds > 0:
        raise LivePlotError(f"window must be a positive time (e.g. timedelta(minutes=5)), got {window!r}")
    return int(seconds * 1e9)


def _as_list(what: str, value: str | Sequence[str]) -> list[str]:
    items = [value] if isinstance(value, str) else list(value)
    if not items or not all(isinstance(i, str) and i.strip() for i in items):
        raise LivePlotError(f"give the {what} as a string or a list of strings, got {value!r}")
    return list(dict.fromkeys(items))


class LiveSeries(BrokerObserver):
    """Numeric fields of the messages on NATS subjects, as bounded time series by receive time.

    Args:
        subjects: A subject or pattern, a :class:`Subject`, or a list of them; each subject that matches
            gets its series. An empty list makes a model that only :meth:`add` and :meth:`add_frame` fill.
        fields: A field path or a list of them (``"value"``, ``"sensor.temp"``, ``'["a.b"]'``).
        connection: The broker connection; ``None`` uses the workbench's shared one while running (the
            rule of :func:`fastiot.workbench.use_connection`).
        window: How much history to keep: a timedelta, seconds, or ``None`` (no time limit).
        max_points: Points kept per series at most.
        max_series: Series kept at most; values of further subject/field pairs are counted in
            :attr:`series_not_kept`.
        pending_msgs_limit: Messages the NATS client may buffer for the series before it drops some.
        pending_bytes_limit: The same limit in bytes.
        include_deliveries: Also count what JetStream consumers deliver (reply subject ``$JS.ACK.…``:
            somebody reading a recording, a KV watch): stored messages, not traffic published now.

    Raises:
        LivePlotError: No fields, or a window that is not a positive time.
        InvalidSubjectError: A pattern is not a NATS pattern.
    """

    _what = "live series"

    def __init__(
        self,
        subjects: SubjectsArg,
        fields: str | Sequence[str] = "value",
        connection: BrokerConnection | None = None,
        *,
        window: dt.timedelta | float | None = DEFAULT_WINDOW,
        max_points: int = DEFAULT_MAX_POINTS,
        max_series: int = DEFAULT_MAX_SERIES,
        pending_msgs_limit: int = DEFAULT_PENDING_MSGS_LIMIT,
        pending_bytes_limit: int = DEFAULT_PENDING_BYTES_LIMIT,
        include_deliveries: bool = False,
    ) -> None:
        super().__init__(
            connection,
            pending_msgs_limit=pending_msgs_limit,
            pending_bytes_limit=pending_bytes_limit,
            include_deliveries=include_deliveries,
        )
        # An empty list makes a model without subscriptions; anything else is checked as every API checks.
        empty = isinstance(subjects, Sequence) and not isinstance(subjects, str) and not subjects
        patterns = [] if empty else [pattern for pattern, _ in subject_targets(subjects)]
        field_list = _as_list("fields", fields)
        # Each subject pattern with the fields plotted of it (a list object its callback holds on to).
        self._selections: dict[str, list[str]] = {p: list(field_list) for p in patterns}
        self._frame_fields: list[str] = field_list
        if max_points < 2 or max_series < 1:
            raise LivePlotError(
                f"max_points must be >= 2 and max_series >= 1, got {max_points}, {max_series}"
            )
        self.window_ns: int | None = _as_ns(window)
        self.max_points: int = max_points
        self.max_series: int = max_series
        self._series: dict[SeriesKey, SeriesBuffer] = {}
        self._points: int = 0  # points added since made (listeners' marks count from here)
        self._latest_ns: int = 0
        self._undecodable: int = 0
        self._series_not_kept: int = 0

    def __repr__(self) -> str:
        return f"<LiveSeries {', '.join(self.subjects)} {self.fields}: {len(self._series)} series>"

    @property
    def subjects(self) -> list[str]:
        """The subjects (or patterns) subscribed to."""
        return list(self._selections)

    @property
    def fields(self) -> list[str]:
        """Every field path plotted, of any subject."""
        names = [f for fields in self._selections.values() for f in fields] or self._frame_fields
        return list(dict.fromkeys(names))

    @property
    def selections(self) -> list[tuple[str, str]]:
        """The ``(subject pattern, field)`` pairs plotted."""
        return [(p, f) for p, fields in self._selections.items() for f in fields]

    async def add_selection(self, subject: str, field: str = "value") -> None:
        """Also plot ``field`` of ``subject`` (a pattern is fine); subscribes anew if it is a new subject.

        Raises:
            LivePlotError: ``subject`` or ``field`` is empty.
        """
        (subject,), (field,) = _as_list("subjects", subject), _as_list("fields", field)
        fields = self._selections.get(subject)
        if fields is not None:
            if field not in fields:
                fields.append(field)  # the running subscription's callback sees it at once
            return
        self._selections[subject] = [field]
        if self.is_running:
            await self.stop()
            await self.start()

    # -- filling ------------------------------------------------------------------------------------

    def _subscription_plan(self) -> list[tuple[str, Callable[[Message], None]]]:
        return [(pattern, self._callback(fields)) for pattern, fields in self._selections.items()]

    def _callback(self, fields: list[str]) -> Callable[[Message], None]:
        def on_msg(msg: Message) -> None:
            if self._paused:
                self._skipped += 1
                return
            seq = self._received
            self._received = seq + 1
            decoded = decode(msg.data, subject=msg.subject, headers=msg.headers)
            if decoded.error is not None:
                self._undecodable += 1
            else:
                self.add_payload(msg.subject, decoded.value, _time_ns(), fields)
            if seq >= self._trigger_seq:
                self._wake()

        return on_msg

    def add_payload(self, subject: str, payload: Any, t_ns: int, fields: Sequence[str] | None = None) -> int:
        """Add the numeric ``fields`` (default: all :attr:`fields`) of a decoded payload.

        Returns:
            How many points were added.
        """
        added = 0
        for field in self.fields if fields is None else fields:
            value = _field_value(payload, field)
            if value is not None:
                added += self.add(subject, field, t_ns, value)
        return added

    def add(self, subject: str, field: str, t_ns: int, value: float) -> int:
        """Add one point to the series ``(subject, field)``; returns 1, or 0 if ``max_series`` are full."""
        key = SeriesKey(subject, field)
        buffer = self._series.get(key)
        if buffer is None:
            if len(self._series) >= self.max_series:
                self._series_not_kept += 1
                return 0
            buffer = self._series[key] = SeriesBuffer(self.window_ns, self.max_points)
        buffer.append(t_ns, value)
        self._points += 1
        if t_ns > self._latest_ns:
            self._latest_ns = t_ns
        return 1

    def add_frame(
        self,
        frame: pd.DataFrame,
        fields: Sequence[str] | None = None,
        *,
        time: str = "received_at",
        subject: str | None = "subject",
    ) -> int:
        """Add the :attr:`fields` of a DataFrame's rows (a capture's or a recording's).

        A field is looked up as a column first (captures flatten ``a.b`` into columns), else by path
        in the column of its first token.

        Args:
            frame: One row per message.
            fields: The field paths to take (default: :attr:`fields`).
            time: The column of the times (datetimes, or nanoseconds since the epoch).
            subject: The column of the subjects; ``None`` takes :attr:`subjects`'s first one (or "data").

        Returns:
            How many points were added.

        Raises:
            LivePlotError: The time column is missing, or none of the fields is a column.
        """
        import pandas as pd

        if time not in frame.columns:
            raise LivePlotError(f"the DataFrame has no time column {time!r}; pass time=<column>")
        times = pd.to_datetime(frame[time], utc=True).to_numpy(dtype="datetime64[ns]").view(np.int64)
        if subject is not None and subject in frame.columns:
            subjects = frame[subject].astype(str).to_numpy()
        else:
            subjects = np.full(len(frame), self.subjects[0] if self.subjects else "data", dtype=object)
        # In time order, so the window cuts from the front (a recording read backwards, say).
        order = np.argsort(times, kind="stable")
        frame, times, subjects = frame.iloc[order], times[order], subjects[order]
        added = 0
        usable = False
        fields = self.fields if fields is None else fields
        for field in fields:
            if field in frame.columns:
                usable = True
                values = pd.to_numeric(frame[field], errors="coerce").to_numpy(
                    dtype=np.float64, na_value=np.nan
                )
                for s, t, v in zip(subjects, times, values, strict=True):
                    if not math.isnan(v):
                        added += self.add(s, field, int(t), float(v))
                continue
            head = field.split(".", 1)[0]
            if head in frame.columns:  # a nested value kept whole in one column
                usable = True
                for s, t, row in zip(subjects, times, frame[head], strict=True):
                    value = _field_value({head: row}, field)
                    if value is not None:
                        added += self.add(s, field, int(t), value)
        if not usable:
            raise LivePlotError(
                f"none of the fields {list(fields)} is a column of the DataFrame; its columns: "
                f"{', '.join(map(str, frame.columns))}"
            )
        if added:
            self._wake_listeners()
        return added

    def _wake_listeners(self) -> None:
        if self._listeners and self._loop is not None:
            self._wake()
        else:
            self._dispatch_now()

    # -- reading ------------------------------------------------------------------------------------

    @property
    def points(self) -> int:
        """Points added since the model was made (cleared ones included)."""
        return self._points

    @property
    def undecodable(self) -> int:
        """Messages whose payload did not decode (no points from them)."""
        return self._undecodable

    @property
    def series_not_kept(self) -> int:
        """Points not kept because ``max_series`` series existed already."""
        return self._series_not_kept

    @property
    def dropped(self) -> int:
        """Points pushed out by ``max_points`` before the window let them go."""
        return sum(b.dropped for b in self._series.values())

    @property
    def keys(self) -> list[SeriesKey]:
        """The series, sorted by subject and field."""
        return sorted(self._series)

    def reference_ns(self) -> int:
        """The end of the window: now while subscribed, else the newest point (a recording's end)."""
        return max(_time_ns(), self._latest_ns) if self.is_running else self._latest_ns

    def data(
        self, max_points: int = DEFAULT_DISPLAY_POINTS
    ) -> dict[SeriesKey, tuple[np.ndarray, np.ndarray]]:
        """Each series in the window, thinned to ``max_points`` by :func:`decimate`.

        Returns:
            ``{key: (times datetime64[ns], values float64)}``, sorted by key, time order within each.
        """
        reference = self.reference_ns()
        result = {}
        for key in self.keys:
            buffer = self._series[key]
            buffer.trim(reference)
            times, values = buffer.arrays()
            if len(times) > 1 and np.any(np.diff(times.view(np.int64)) < 0):
                order = np.argsort(times, kind="stable")  # rows of a frame need not come in time order
                times, values = times[order], values[order]
            result[key] = decimate(times, values, max_points)
        return result

    # -- listeners and control ----------------------------------------------------------------------

    def on_change(self, callback: PointsCallback, remove: bool = False, *, min_interval: float = 0.0) -> None:
        """Call ``callback(n)`` with the number of points added since its last call (0 after clear).

        Calls are coalesced to one per loop iteration and one per ``min_interval`` seconds.

        Raises:
            TypeError: ``callback`` is an async function or not callable.
        """
        self._add_listener(callback, remove, min_interval, mark=self._points)

    def _listener_news(self, listener: Listener) -> Any:
        new = self._points - listener.mark
        if new <= 0:
            return None
        listener.mark = self._points
        return new

    def clear(self) -> None:
        """Forget every point; listeners get 0."""
        self._series.clear()
        self._latest_ns = 0
        for listener in self._listeners.states():
            listener.mark = self._points
            self._call_listener(listener, 0)
        self._rearm()

    async def wait_for(self, n: int, timeout: float | None = DEFAULT_WAIT_TIMEOUT) -> int:
        """Wait until ``n`` points have been added in all (returns :attr:`points`).

        Raises:
            WaitTimeoutError: Fewer arrived within ``timeout`` seconds.
            NotRunningError: The model is not subscribed.
        """
        await self._wait(
            lambda: self._points >= n,
            timeout,
            lambda: f"{n} points of {self.fields} on {', '.join(self.subjects)} (got {self._points})",
        )
        return self._points
