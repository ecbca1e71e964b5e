"""Timeline: scrub through a recording. The state at a time, the messages of a window, stepping.

Everything is read from JetStream when asked: the state at ``t`` is one batch direct get of the last
message per subject up to ``t`` (nats-server 2.11+, on a stream with ``allow_direct``, which
:meth:`Timeline.open` turns on for recordings made before it was the default), windows are read by a
time-based consumer, the density strip counts messages with direct gets at the bin edges. A bounded cache
keeps the last answers, so scrubbing back and forth over the same times asks the server once.

Example:
    >>> from fastiot.history import Recording, Timeline
    >>> async def main():
    ...     timeline = await Timeline.open(await Recording.open("plant"))
    ...     state = await timeline.at(timeline.end)  # every subject's last message, decoded
    ...     strip = await timeline.density(200)
    ...     last_minute = await timeline.window(timeline.end - timedelta(minutes=1), timeline.end)
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, NamedTuple, Union

import nats.errors
import nats.js.errors
import numpy as np

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import InvalidRangeError, InvalidRecordingError, PermissionDeniedError
from fastiot.history._connection import jetstream_error
from fastiot.history._direct import DirectResult, TooManyResultsError, direct_get, rfc3339_ns
from fastiot.history._frames import FrameBuilder
from fastiot.history._names import RecordingSubjects, subject_patterns
from fastiot.history._reader import StreamReader
from fastiot.history.ranges import _ns, resolve_range
from fastiot.history.recording import Recording
from fastiot.workbench import use_connection

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_WINDOW_ROWS",
    "RecordedMessage",
    "Time",
    "Timeline",
    "bin_edges",
    "time_ns",
]

DEFAULT_CACHE_SIZE = 256
"""Answers of :meth:`Timeline.at` kept (by time and subjects), so scrubbing back asks the server once."""
DEFAULT_WINDOW_ROWS = 100_000
"""The most rows :meth:`Timeline.window` returns unless told otherwise (the first ones of the window)."""
# Subjects per multi_last request when a pattern matches more than the server answers at once (1024).
_CHUNK = 1_000
_MAX_BINS = 10_000
# Direct gets in flight at once while counting the density strip (each is one small request).
_CONCURRENT_REQUESTS = 64

Time = Union[datetime, int, float]  # noqa: UP007 - a runtime alias
"""A point on the timeline: a datetime (naive means UTC), a ``pandas.Timestamp``, or ns since the epoch."""

_logger = logging.getLogger("fastiot.history")


class RecordedMessage(NamedTuple):
    """One recorded message, undecoded: subject, stream sequence, time (ns), payload, its own headers."""

    subject: str
    sequence: int
    time_ns: int
    data: bytes
    headers: dict[str, str] | None


def time_ns(t: Time, name: str = "t") -> int:
    """``t`` in ns since the epoch (a datetime, naive meaning UTC; a ``pandas.Timestamp``; ns as they are).

    Raises:
        InvalidRangeError: ``t`` is no time.

    Example:
        >>> time_ns(datetime(1970, 1, 1, 0, 0, 1))
        1000000000
    """
    if isinstance(t, bool):
        raise InvalidRangeError(f"{name}={t!r} is not a time")
    if isinstance(t, datetime):
        return _ns(t)
    if isinstance(t, (int, np.integer)):
        return int(t)
    if isinstance(t, float):
        return int(t)
    raise InvalidRangeError(
        f"{name}={t!r} is not a time: give a datetime, a pandas.Timestamp or ns since the epoch (int)"
    )


def _timestamp(ns: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=ns // 1000)


class Timeline:
    """A recording seen along its time axis: its range, a cursor, the state at any time, windows, steps.

    Make one with :meth:`open` (which reads the range and makes sure the stream answers direct gets).

    Args:
        recording: The recording (a :class:`~fastiot.history.Recording`).
        connection: The connection to read with; ``None`` uses the recording's, else the workbench's
            (:func:`fastiot.workbench.use_connection`).
        cache_size: How many answers of :meth:`at` and :meth:`window` to keep, so that scrubbing back and
            forth is cheap.

    Attributes:
        recording: The recording.
        start_ns: The time of the first message (ns since the epoch), 0 for an empty recording.
        end_ns: The time of the last message when the range was last read (:meth:`refresh`).
        cursor_ns: The time :meth:`step` starts from; :meth:`step` moves it to the message it finds.
        direct: False if the stream could not be given ``allow_direct`` (no permission): then every read
            goes through consumers, which is slower for :meth:`at` on a long recording.
    """

    def __init__(
        self,
        recording: Recording,
        *,
        connection: NatsBrokerConnection | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        self.recording: Recording = recording
        self.connection: NatsBrokerConnection | None = connection or recording.connection
        self.start_ns: int = 0
        self.end_ns: int = 0
        self.first_seq: int = 0
        self.last_seq: int = 0
        self.cursor_ns: int = 0
        self.direct: bool = True
        self.cache_size: int = max(1, cache_size)
        # Answers by (kind, time, subjects): the frame, and for a state read by direct get its raw messages.
        self._cache: OrderedDict[tuple[Any, ...], tuple[pd.DataFrame, list[DirectResult]]] = OrderedDict()
        self._subjects: dict[str, list[str]] = {}
        self._too_many: set[tuple[str, ...]] = set()

    def __repr__(self) -> str:
        """``Timeline('plant', start .. end)``."""
        return f"Timeline({self.recording.name!r}, {self.start} .. {self.end})"

    @property
    def start(self) -> datetime | None:
        """The time of the first message (UTC), None for an empty recording."""
        return _timestamp(self.start_ns) if self.last_seq else None

    @property
    def end(self) -> datetime | None:
        """The time of the last message (UTC), None for an empty recording."""
        return _timestamp(self.end_ns) if self.last_seq else None

    @property
    def cursor(self) -> datetime:
        """Where :meth:`step` starts from (UTC)."""
        return _timestamp(self.cursor_ns)

    def seek(self, t: Time) -> None:
        """Put the cursor at ``t`` (a datetime, a ``pandas.Timestamp`` or ns since the epoch)."""
        self.cursor_ns = time_ns(t)

    @classmethod
    async def open(
        cls,
        recording: Recording | str,
        *,
        connection: NatsBrokerConnection | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> Timeline:
        """The timeline of ``recording`` (a :class:`Recording` or a stream's name), its range read.

        A stream without ``allow_direct`` (recorded before the timeline existed) gets it, if the user may
        update the stream; if not, a warning is logged and reads go through consumers (:attr:`direct`).

        Raises:
            RecordingNotFoundError: There is no such recording.

        Example:
            >>> timeline = await Timeline.open("plant")  # doctest: +SKIP
            >>> timeline.start, timeline.end  # doctest: +SKIP
        """
        if isinstance(recording, str):
            recording = await Recording.open(recording, connection=connection)
        timeline = cls(recording, connection=connection, cache_size=cache_size)
        async with use_connection(timeline.connection) as conn:
            await timeline._allow_direct(conn)
            await timeline._read_range(conn)
        timeline.cursor_ns = timeline.start_ns
        return timeline

    async def _allow_direct(self, conn: NatsBrokerConnection) -> None:
        jsm = conn.client.jsm()
        name = self.recording.name
        try:
            config = (await jsm.stream_info(name)).config
        except nats.js.errors.NotFoundError:
            await Recording.open(name, connection=conn)  # raises the error that says what to do
            raise
        except (nats.js.errors.Error, nats.errors.Error) as e:
            raise jetstream_error(e, conn, f"opening recording {name!r}") from None
        if config.allow_direct:
            return
        try:
            await jsm.update_stream(config.evolve(allow_direct=True))
        except (PermissionDeniedError, nats.js.errors.Error, nats.errors.Error) as e:
            self.direct = False
            _logger.warning(
                "recording %s cannot answer direct gets and could not be changed to (%s); the timeline "
                "reads it through consumers, which is slower: an administrator can turn it on with "
                "`nats stream edit %s --allow-direct`",
                name,
                e,
                name,
            )

    async def _read_range(self, conn: NatsBrokerConnection) -> None:
        info = await self.recording.info(connection=conn)
        self.first_seq, self.last_seq = info.first_seq, info.last_seq if info.messages else 0
        self.start_ns = _ns(info.first_time) if info.first_time else 0
        self.end_ns = _ns(info.last_time) if info.last_time else 0
        if info.messages and self.direct:
            # The info's times have microseconds; the first and last message have the exact ns.
            first = await direct_get(conn, self.recording.name, {"seq": info.first_seq, "batch": 1})
            last = await direct_get(conn, self.recording.name, {"seq": info.last_seq, "batch": 1})
            if len(first.batch):
                self.start_ns = int(first.batch.times[0])
            if len(last.batch):
                self.end_ns = int(last.batch.times[0])
        elif info.messages:
            for seq, attribute in ((info.first_seq, "start_ns"), (info.last_seq, "end_ns")):
                row = await self.recording.to_dataframe(start=seq, max_rows=1, connection=conn)
                if len(row):
                    setattr(self, attribute, int(row["received_at"].astype("int64").iloc[0]))

    async def refresh(self) -> None:
        """Read the range again (a recording that goes on grows) and forget cached answers.

        Also forgets the subjects a state of more than 1,000 subjects is asked for by name, so subjects
        that appeared since are asked for too.
        """
        async with use_connection(self.connection) as conn:
            await self._read_range(conn)
        self._cache.clear()
        self._subjects.clear()
        self._too_many.clear()

    # -- the state at a time --------------------------------------------------------------------------

    def _filters(self, subjects: RecordingSubjects | None) -> list[str]:
        if subjects is None:
            return [">"]
        if isinstance(subjects, (list, tuple)) and not subjects:
            return []
        return subject_patterns(subjects)

    def _cached(self, key: tuple[Any, ...]) -> pd.DataFrame | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        self._cache.move_to_end(key)
        return entry[0]

    def _keep(self, key: tuple[Any, ...], frame: pd.DataFrame, raw: list[DirectResult] | None = None) -> None:
        self._cache[key] = (frame, raw or [])
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    async def at(self, t: Time, subjects: RecordingSubjects | None = None) -> pd.DataFrame:
        """Every subject's last message at or before ``t``, decoded as :meth:`Recording.to_dataframe` does.

        One row per subject (in stream order), with the columns of ``to_dataframe()``: ``received_at``
        is when the stream stored the message. Before the first message, or with ``subjects=[]``, the
        frame is empty.

        Args:
            t: The time: a datetime (naive means UTC), a ``pandas.Timestamp`` or ns since the epoch.
            subjects: Only these subjects (patterns, Subjects); all if None.

        Raises:
            InvalidRangeError: ``t`` is not a time.
            InvalidRecordingError: A subject pattern is malformed.
            RecordingDeletedError: The recording was deleted.

        Example:
            >>> state = await timeline.at(datetime(2026, 12, 8, 3, 12))  # doctest: +SKIP
            >>> state.set_index("subject")["temperature"]  # doctest: +SKIP
        """
        t_ns = time_ns(t)
        filters = self._filters(subjects)
        key = ("at", t_ns, tuple(filters))
        cached = self._cached(key)
        if cached is not None:
            return cached
        raw: list[DirectResult] = []
        if not filters or not self.last_seq or t_ns < self.start_ns:
            frame = FrameBuilder(0).to_dataframe()
        else:
            async with use_connection(self.connection) as conn:
                if self.direct:
                    raw = await self._at_direct(conn, t_ns, filters)
                    frame = _frame(raw)
                else:
                    frame = await self._at_by_consumer(conn, t_ns, filters)
        self._keep(key, frame, raw)
        return frame

    async def messages_at(self, t: Time, subjects: RecordingSubjects | None = None) -> list[RecordedMessage]:
        """The messages :meth:`at` decodes, undecoded: what a view fed with messages takes.

        Empty on a timeline that reads through consumers (:attr:`direct` False).

        Example:
            >>> [m.subject for m in await timeline.messages_at(timeline.end)]  # doctest: +SKIP
        """
        t_ns = time_ns(t)
        await self.at(t_ns, subjects)
        entry = self._cache.get(("at", t_ns, tuple(self._filters(subjects))))
        found: list[RecordedMessage] = []
        for result in entry[1] if entry is not None else []:
            batch = result.batch
            for i, (subject, data) in enumerate(zip(batch.subjects, batch.payloads, strict=True)):
                found.append(
                    RecordedMessage(
                        subject, int(batch.sequences[i]), int(batch.times[i]), data, result.headers.get(i)
                    )
                )
        return found

    async def _at_direct(
        self, conn: NatsBrokerConnection, t_ns: int, filters: list[str]
    ) -> list[DirectResult]:
        # The server reads up_to_time as "before": one ns more includes a message stored exactly at t.
        up_to = rfc3339_ns(t_ns + 1)
        try:
            if tuple(filters) in self._too_many:
                raise TooManyResultsError("known")
            results = [
                await direct_get(conn, self.recording.name, {"multi_last": filters, "up_to_time": up_to})
            ]
        except TooManyResultsError:
            # Remembered: the next scrub asks in parts at once, not after a refusal.
            self._too_many.add(tuple(filters))
            literal = await self._literal_subjects(conn, filters)
            results = [
                await direct_get(
                    conn, self.recording.name, {"multi_last": literal[i : i + _CHUNK], "up_to_time": up_to}
                )
                for i in range(0, len(literal), _CHUNK)
            ]
        return results

    async def _literal_subjects(self, conn: NatsBrokerConnection, filters: list[str]) -> list[str]:
        found: set[str] = set()
        for pattern in filters:
            if pattern not in self._subjects:
                try:
                    info = await conn.client.jsm().stream_info(self.recording.name, subjects_filter=pattern)
                except (nats.js.errors.Error, nats.errors.Error) as e:
                    raise jetstream_error(e, conn, f"reading recording {self.recording.name!r}") from None
                self._subjects[pattern] = sorted(info.state.subjects or {})
            found.update(self._subjects[pattern])
        return sorted(found)

    async def _at_by_consumer(
        self, conn: NatsBrokerConnection, t_ns: int, filters: list[str]
    ) -> pd.DataFrame:
        frame = await self.recording.to_dataframe(
            start=_bound(self.start_ns), end=_bound(t_ns), subjects=filters, connection=conn
        )
        frame = frame[frame["received_at"].astype("int64") <= t_ns] if len(frame) else frame
        return frame.drop_duplicates("subject", keep="last").reset_index(drop=True)

    # -- windows and steps ----------------------------------------------------------------------------

    async def window(
        self,
        t0: Time,
        t1: Time,
        subjects: RecordingSubjects | None = None,
        *,
        max_rows: int | None = DEFAULT_WINDOW_ROWS,
    ) -> pd.DataFrame:
        """The messages stored from ``t0`` to ``t1`` (both included), as :meth:`Recording.to_dataframe`.

        Read by a consumer that starts at ``t0`` (JetStream finds the first message by time).

        Args:
            t0: The start of the window.
            t1: Its end (inclusive).
            subjects: Only these subjects (patterns, Subjects); all if None.
            max_rows: At most this many rows, the first of the window; None for all.

        Raises:
            InvalidRangeError: ``t0`` or ``t1`` is not a time.

        Example:
            >>> t = timeline.cursor
            >>> frame = await timeline.window(t - timedelta(seconds=30), t)  # doctest: +SKIP
        """
        t0_ns, t1_ns = time_ns(t0, "t0"), time_ns(t1, "t1")
        filters = self._filters(subjects)
        if not filters or t1_ns < t0_ns:
            return FrameBuilder(0).to_dataframe()
        frame = await self.recording.to_dataframe(
            start=_bound(t0_ns),
            end=_bound(t1_ns),
            subjects=filters,
            max_rows=max_rows,
            connection=self.connection,
        )
        if len(frame):
            times = frame["received_at"].astype("int64")
            frame = frame[(times >= t0_ns) & (times <= t1_ns)].reset_index(drop=True)
        return frame

    async def window_messages(
        self,
        t0: Time,
        t1: Time,
        subjects: RecordingSubjects | None = None,
        *,
        max_rows: int | None = DEFAULT_WINDOW_ROWS,
    ) -> list[RecordedMessage]:
        """The messages :meth:`window` decodes, undecoded: what a view with its own buffer takes.

        A :class:`~fastiot.capture.MessageCapture` takes them with
        :meth:`~fastiot.capture.MessageCapture.add_messages` and decodes them as it decodes live traffic.

        Args:
            t0: The start of the window.
            t1: Its end (inclusive).
            subjects: Only these subjects (patterns, Subjects); all if None.
            max_rows: At most this many messages, the first of the window; None for all.

        Raises:
            InvalidRangeError: ``t0`` or ``t1`` is not a time.

        Example:
            >>> msgs = await timeline.window_messages(timeline.start, timeline.end)  # doctest: +SKIP
        """
        t0_ns, t1_ns = time_ns(t0, "t0"), time_ns(t1, "t1")
        filters = self._filters(subjects)
        found: list[RecordedMessage] = []
        if not filters or t1_ns < t0_ns:
            return found
        range_ = resolve_range(_bound(t0_ns), _bound(t1_ns))
        async with use_connection(self.connection) as conn:
            async with StreamReader(
                conn, self.recording.name, range_=range_, filters=filters, max_rows=max_rows
            ) as reader:
                async for batch in reader:
                    headers = await reader.headers_of(batch) if batch.headers else {}
                    for i, (subject, data) in enumerate(zip(batch.subjects, batch.payloads, strict=True)):
                        t = int(batch.times[i])
                        if t0_ns <= t <= t1_ns:  # the consumer starts at t0's second, not its ns
                            found.append(
                                RecordedMessage(subject, int(batch.sequences[i]), t, data, headers.get(i))
                            )
        return found

    async def step(self, subject: str, direction: int = 1) -> pd.DataFrame:
        """The next (``+1``) or previous (``-1``) message of ``subject`` from the cursor, which moves to it.

        Returns a one-row frame like :meth:`at`'s, or an empty one (the cursor stays) if there is none.

        Raises:
            InvalidRecordingError: ``direction`` is not +1 or -1, or ``subject`` is malformed.

        Example:
            >>> timeline.seek(timeline.start)  # doctest: +SKIP
            >>> row = await timeline.step("v1.thing.oven.temperature", +1)  # doctest: +SKIP
        """
        if direction not in (1, -1):
            raise InvalidRecordingError(f"direction must be +1 (next) or -1 (previous), got {direction!r}")
        (pattern,) = subject_patterns(subject)
        async with use_connection(self.connection) as conn:
            if not self.direct:
                frame = await self._step_by_consumer(conn, pattern, direction)
            elif direction > 0:
                body = {"batch": 1, "start_time": rfc3339_ns(self.cursor_ns + 1), "next_by_subj": pattern}
                frame = _frame([await direct_get(conn, self.recording.name, body)])
            elif self.cursor_ns <= self.start_ns:
                frame = FrameBuilder(0).to_dataframe()
            else:
                body = {"multi_last": [pattern], "up_to_time": rfc3339_ns(self.cursor_ns)}
                frame = _frame([await direct_get(conn, self.recording.name, body)]).tail(1)
        if not len(frame):
            return FrameBuilder(0).to_dataframe()
        frame = frame.tail(1).reset_index(drop=True)
        self.cursor_ns = int(frame["received_at"].astype("int64").iloc[0])
        return frame

    async def _step_by_consumer(
        self, conn: NatsBrokerConnection, pattern: str, direction: int
    ) -> pd.DataFrame:
        if direction > 0:
            frame = await self.recording.to_dataframe(
                start=_bound(self.cursor_ns + 1), subjects=[pattern], max_rows=1, connection=conn
            )
            return frame[frame["received_at"].astype("int64") > self.cursor_ns].head(1)
        before = await self._at_by_consumer(conn, self.cursor_ns - 1, [pattern])
        return before.sort_values("sequence").tail(1)

    # -- the density strip ----------------------------------------------------------------------------

    async def density(
        self,
        bins: int = 200,
        subjects: Sequence[str] | None = None,
        *,
        start: Time | None = None,
        end: Time | None = None,
    ) -> pd.DataFrame:
        """Message counts per time bin and per subject group, for a strip along the time axis.

        Counted by the server: for each group and bin edge one direct get says how many messages of the
        group follow that time, so the cost grows with bins times groups, not with the recording.

        Args:
            bins: How many equal bins the range is cut into (1 to 10,000).
            subjects: The groups: one pattern each (``["v1.thing.oven.>", "v1.thing.press.>"]``); None
                counts all messages as one group ``">"``.
            start: The start of the first bin; the first message if None.
            end: The end of the last bin; the last message if None.

        Returns:
            A DataFrame indexed by each bin's start time (UTC), one column of counts per group.

        Raises:
            InvalidRecordingError: ``bins`` is out of range or a pattern is malformed.

        Example:
            >>> strip = await timeline.density(100, ["v1.thing.oven.>", "v1.thing.press.>"])  # doctest: +SKIP
        """
        import pandas as pd

        if isinstance(bins, bool) or not isinstance(bins, int) or not 1 <= bins <= _MAX_BINS:
            raise InvalidRecordingError(f"bins must be an int from 1 to {_MAX_BINS}, got {bins!r}")
        groups = [">"] if subjects is None else (subject_patterns(list(subjects)) if subjects else [])
        lo = self.start_ns if start is None else time_ns(start, "start")
        hi = self.end_ns if end is None else time_ns(end, "end")
        hi = max(hi, lo)
        edges = bin_edges(lo, hi, bins)
        key = ("density", bins, tuple(groups), lo, hi)
        cached = self._cached(key)
        if cached is not None:
            return cached
        index = pd.DatetimeIndex(pd.to_datetime(edges[:-1], utc=True), name="bin_start")
        counts: dict[str, np.ndarray] = {}
        async with use_connection(self.connection) as conn:
            for group in groups:
                if not self.last_seq:
                    counts[group] = np.zeros(bins, dtype=np.int64)
                elif self.direct:
                    window = asyncio.Semaphore(_CONCURRENT_REQUESTS)
                    after = await asyncio.gather(
                        *(self._count_from(conn, group, int(e), window) for e in edges)
                    )
                    counts[group] = -np.diff(np.asarray(after, dtype=np.int64))
                else:
                    frame = await self.window(lo, hi, [group], max_rows=None)
                    times = np.sort(frame["received_at"].astype("int64").to_numpy(dtype=np.int64))
                    counts[group] = np.diff(np.searchsorted(times, edges)).astype(np.int64)
        frame = pd.DataFrame(counts, index=index, columns=groups)
        self._keep(key, frame)
        return frame

    async def _count_from(
        self, conn: NatsBrokerConnection, pattern: str, t_ns: int, window: asyncio.Semaphore
    ) -> int:
        """How many messages matching ``pattern`` the stream holds from ``t_ns`` on."""
        body = {"batch": 1, "start_time": rfc3339_ns(t_ns), "next_by_subj": pattern}
        async with window:
            result = await direct_get(conn, self.recording.name, body)
        return result.pending + 1 if len(result.batch) else 0


def bin_edges(start_ns: int, end_ns: int, bins: int) -> np.ndarray:
    """``bins + 1`` edges from ``start_ns`` to just after ``end_ns``, exact (ns do not fit a float).

    Example:
        >>> bin_edges(0, 9, 2).tolist()
        [0, 5, 10]
    """
    span = end_ns + 1 - start_ns
    return np.asarray([start_ns + span * k // bins for k in range(bins + 1)], dtype=np.int64)


def _bound(ns: int) -> datetime:
    """``ns`` as a range bound: a ``pandas.Timestamp``, which (unlike a datetime) keeps the nanoseconds."""
    import pandas as pd

    return pd.Timestamp(ns, tz="UTC")


def _frame(results: list[DirectResult]) -> pd.DataFrame:
    builder = FrameBuilder(sum(len(r.batch) for r in results))
    for result in results:
        if len(result.batch):
            builder.add(result.batch, result.headers or None)
    return builder.to_dataframe()
