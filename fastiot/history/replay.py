"""Replay: a recording's messages published again, with their original spacing scaled by a speed.

Example:
    >>> async def main(rec):
    ...     replay = await rec.replay(speed=10, subject_prefix="replay")
    ...     replay.on_progress(lambda r: print(f"{r.published}/{r.total}"))
    ...     await replay.wait(timeout=60)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import datetime, timezone
from enum import Enum
from typing import TYPE_CHECKING, Protocol, cast

import numpy as np

from fastiot._callbacks import CallbackList
from fastiot.core import _nats_compat
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import InvalidRecordingError, ReplayLoopError, WaitTimeoutError
from fastiot.history._consumers import RawBatch, count_from
from fastiot.history._names import check_prefix, patterns_overlap, subject_patterns
from fastiot.history._reader import StreamReader
from fastiot.history.ranges import Bound, resolve_range
from fastiot.mqtt.topics import republished_headers
from fastiot.workbench import Stoppable, use_connection

if TYPE_CHECKING:
    from fastiot.history._names import RecordingSubjects
    from fastiot.history.recording import Recording

__all__ = [
    "DEFAULT_PROGRESS_INTERVAL",
    "ProgressCallback",
    "Replay",
    "ReplaySource",
    "ReplayState",
    "check_speed",
    "run_replay",
    "start_replay",
]

DEFAULT_PROGRESS_INTERVAL = 0.1  # seconds between two progress callbacks
_BATCH_ROWS = 256  # small batches: the read loop never holds up a publish for long
_MAX_BUFFERED_ROWS = 8_192
_LATENESS_KEPT = 100_000
_PREFETCH_TIMEOUT = 5.0  # seconds a timed replay may wait for its first rows before the clock starts

_logger = logging.getLogger("fastiot.history")


class ReplaySource(Protocol):
    """Where a replay's messages come from: a stream's reader, or an MCAP file's."""

    @property
    def deleted(self) -> bool:
        """True once the source went away (a deleted stream)."""

    def deleted_error(self) -> Exception:
        """The error to raise when :attr:`deleted`."""

    async def prefetch(self, rows: int, timeout: float) -> None:
        """Buffer ``rows`` rows (at most ``timeout`` s) before the clock starts."""

    def __aiter__(self) -> AsyncIterator[RawBatch]:
        """The batches, in time order."""


class ReplayState(str, Enum):
    """Where a replay is: ``running``, ``paused``, ``finished``, ``stopped`` or ``failed``."""

    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    STOPPED = "stopped"
    FAILED = "failed"


ProgressCallback = CallbackList  # alias for documentation: callbacks take the Replay


class Replay:
    """A replay in progress. Made by :meth:`Recording.replay`, never directly.

    Args:
        recording: The recording's name.
        speed: The speed factor (None: as fast as possible).
        subject_prefix: The prefix of the published subjects, if any.

    Attributes:
        recording: The recording's name.
        speed: The speed factor (None: as fast as possible).
        subject_prefix: The prefix of the published subjects, if any.
        published: Messages published so far.
        total: Messages in the range (an estimate while a recording goes on; exact once finished).
        state: A :class:`ReplayState`.
        error: What ended a failed replay.
    """

    def __init__(self, recording: str, *, speed: float | None, subject_prefix: str | None) -> None:
        self.recording: str = recording
        self.speed: float | None = speed
        self.subject_prefix: str | None = subject_prefix
        self.published: int = 0
        self.total: int = 0
        self.state: ReplayState = ReplayState.RUNNING
        self.error: BaseException | None = None
        self._progress: CallbackList[[Replay]] = CallbackList("replay progress")
        self._resumed: asyncio.Event = asyncio.Event()
        self._resumed.set()
        self._paused_at: float | None = None
        self._shift: float = 0.0  # seconds paused so far: every later message is due that much later
        self._last_progress: float = -math.inf
        self._lateness: deque[float] = deque(maxlen=_LATENESS_KEPT)
        self._task: asyncio.Task[None] | None = None
        self._stack: AsyncExitStack | None = None  # the read (and a connection this replay opened)
        self._stopping: bool = False

    def __repr__(self) -> str:
        speed = "max" if self.speed is None else f"{self.speed:g}x"
        return f"<Replay of {self.recording!r} at {speed}: {self.published}/{self.total} {self.state.value}>"

    @property
    def is_running(self) -> bool:
        """True until the replay finished, was stopped or failed (also while paused)."""
        return self.state in (ReplayState.RUNNING, ReplayState.PAUSED)

    @property
    def progress(self) -> float:
        """``published / total`` from 0.0 to 1.0 (1.0 when finished)."""
        if self.state is ReplayState.FINISHED:
            return 1.0
        return min(1.0, self.published / self.total) if self.total else 0.0

    def lateness_ms(self, percentile: float = 99.0) -> float:
        """How late messages were published against their original offset (scaled), in ms, at a percentile.

        Over the newest 100,000 messages; 0 at full speed.
        """
        if not self._lateness:
            return 0.0
        return float(np.percentile(np.fromiter(self._lateness, dtype=float), percentile)) * 1e3

    def on_progress(self, callback: object, remove: bool = False) -> None:
        """Call ``callback(replay)`` (a plain function) as messages go out and when the replay ends.

        Calls come at most every 0.1 s.
        """
        self._progress.register(callback, remove=remove)  # type: ignore[arg-type]

    def pause(self) -> None:
        """Hold the replay; :meth:`resume` goes on where it stopped, with the same spacing."""
        if self.state is ReplayState.RUNNING:
            self.state = ReplayState.PAUSED
            self._paused_at = time.perf_counter()
            self._resumed.clear()
            self._notify(force=True)

    def resume(self) -> None:
        """Go on after :meth:`pause`."""
        if self.state is ReplayState.PAUSED:
            if self._paused_at is not None:
                self._shift += time.perf_counter() - self._paused_at
            self._paused_at = None
            self.state = ReplayState.RUNNING
            self._resumed.set()
            self._notify(force=True)

    def stop(self) -> asyncio.Future[None]:
        """End the replay now (what was published stays published); await the result to wait for the end."""
        task = self._task
        if task is not None and not task.done() and not self._stopping:
            self._stopping = True
            task.cancel()
        return asyncio.ensure_future(self._wait_quietly())

    async def _wait_quietly(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self.is_running:  # cancelled before it ever ran
            await self._end(ReplayState.STOPPED)

    async def wait(self, timeout: float | None = None) -> Replay:
        """Wait until the replay has ended; raise what made it fail.

        Raises:
            WaitTimeoutError: It did not end within ``timeout`` seconds (it goes on).
            RecordingDeletedError: The recording was deleted while it was replayed.
        """
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except asyncio.TimeoutError:
                raise WaitTimeoutError(
                    f"the replay of {self.recording!r} did not end within {timeout} s "
                    f"({self.published} of {self.total} published)"
                ) from None
            except asyncio.CancelledError:
                if not self._task.cancelled():
                    raise
                await self._wait_quietly()
        if self.error is not None:
            raise self.error
        return self

    def _notify(self, force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self._last_progress >= DEFAULT_PROGRESS_INTERVAL:
            self._last_progress = now
            self._progress(self)

    def begin(self, reader: ReplaySource, target: NatsBrokerConnection, stack: AsyncExitStack) -> None:
        """Start publishing what ``reader`` reads to ``target``; ``stack`` is closed when the replay ends.

        :func:`run_replay` calls this once, when the read is open (a recording's, or an MCAP file's).
        """
        self._stack = stack
        self._task = asyncio.get_running_loop().create_task(self._run(reader, target))

    async def _run(self, reader: ReplaySource, target: NatsBrokerConnection) -> None:
        state, error = ReplayState.FINISHED, None
        try:
            await self._publish_all(reader, target)
            await target.flush()
        except asyncio.CancelledError:
            state = ReplayState.STOPPED
        except Exception as e:
            state, error = ReplayState.FAILED, e
            _logger.warning("the replay of %s failed: %s", self.recording, e)
        await self._end(state, error)

    async def _end(self, state: ReplayState, error: BaseException | None = None) -> None:
        """Record how the replay ended, close the read, tell the workbench and the listeners (once)."""
        if not self.is_running:
            return
        self.state, self.error = state, error
        if state is ReplayState.FINISHED:
            self.total = self.published
        self._resumed.set()
        stack, self._stack = self._stack, None
        if stack is not None:
            with contextlib.suppress(Exception):
                await stack.aclose()
        self._notify(force=True)

    async def _publish_all(self, reader: ReplaySource, target: NatsBrokerConnection) -> None:
        speed, prefix = self.speed, self.subject_prefix
        client = target.client
        publish = target.publish_raw
        clock = time.perf_counter
        start: float | None = None
        first_ns = 0
        if speed is not None:
            await reader.prefetch(min(self.total, _MAX_BUFFERED_ROWS), _PREFETCH_TIMEOUT)
        async for batch in reader:
            times = batch.times.tolist()
            for i, (subject, data) in enumerate(zip(batch.subjects, batch.payloads, strict=True)):
                if self.state is ReplayState.PAUSED:
                    await self._resumed.wait()
                if reader.deleted:  # say so now rather than after publishing what is buffered
                    raise reader.deleted_error()
                if speed is not None:
                    if start is None:
                        start, first_ns = clock(), times[i]
                    due = start + self._shift + (times[i] - first_ns) / 1e9 / speed
                    delay = due - clock()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    self._lateness.append(max(0.0, clock() - due))
                raw_headers = batch.headers.get(i) if batch.headers else None
                headers = await _nats_compat.parse_headers(client, raw_headers) if raw_headers else None
                if headers:
                    headers = republished_headers(headers)  # else MQTT's QoS 1 subscribers never get it
                await publish(f"{prefix}.{subject}" if prefix else subject, data, headers)
                self.published += 1
                if self._progress:
                    self._notify()
            if speed is None:
                await asyncio.sleep(0)  # as fast as possible, but let the rest of the kernel run


def _same_broker(a: NatsBrokerConnection, b: NatsBrokerConnection) -> bool:
    if a is b:
        return True
    info_a, info_b = _nats_compat.server_info(a.client), _nats_compat.server_info(b.client)
    if info_a.get("server_id") and info_a.get("server_id") == info_b.get("server_id"):
        return True
    cluster = info_a.get("cluster")
    return bool(cluster) and cluster == info_b.get("cluster")


async def _count(conn: NatsBrokerConnection, reader: StreamReader) -> int:
    """The messages of the reader's range: its consumer's pending count minus the messages after the end."""
    end = reader.range
    if reader.pending == 0 or (end.end_seq is None and end.end_ns is None):
        return reader.pending
    if end.end_seq is not None:
        after = await count_from(conn, reader.stream, start_seq=end.end_seq + 1, filters=reader.filters)
    else:
        assert end.end_ns is not None
        # Consumers start at a time with microseconds: the first microsecond after the end.
        first = datetime.fromtimestamp((end.end_ns // 1000 + 1) / 1e6, timezone.utc)
        after = await count_from(conn, reader.stream, start_time=first, filters=reader.filters)
    return max(0, reader.pending - after)


async def start_replay(
    recording: Recording,
    *,
    speed: float | None,
    start: Bound,
    end: Bound,
    subjects: RecordingSubjects | None,
    target: NatsBrokerConnection | None,
    subject_prefix: str | None,
) -> Replay:
    """Check the arguments, refuse a loop, open the read and start publishing (see :meth:`Recording.replay`).

    Raises:
        ReplayLoopError: The replay would publish into subjects the recording records, on its broker.
    """
    checked = check_speed(speed)
    prefix = check_prefix(subject_prefix) if subject_prefix is not None else None
    range_ = resolve_range(start, end)
    filters = subject_patterns(subjects) if subjects is not None else []
    replay = Replay(recording.name, speed=checked, subject_prefix=prefix)
    stack = AsyncExitStack()
    try:
        # A replay on the shared connection keeps running between cells: workbench.shutdown() stops it.
        lease = await use_connection(recording.connection, owner=cast("Stoppable", replay))
        stack.push_async_callback(lease.release)
        source: NatsBrokerConnection = lease.connection
        destination = target or source
        stream = await recording.stream_info(source)
        recorded = list(stream.config.subjects or [])
        if not stream.config.sealed and _same_broker(source, destination):
            published = [f"{prefix}.>" if prefix else p for p in (filters or recorded)]
            looping = sorted({r for r in recorded for p in published if patterns_overlap(r, p)})
            if looping:
                hint = (
                    f"give another subject_prefix: {prefix!r}.SUBJECT still matches {', '.join(looping)}"
                    if prefix
                    else "give subject_prefix='replay' (messages go to replay.SUBJECT)"
                )
                raise ReplayLoopError(
                    f"replaying {recording.name!r} would publish into {', '.join(looping)}, which it "
                    f"records, on the same broker: every replayed message would be recorded again. "
                    f"Nothing was published; {hint}, or a connection= to another broker"
                )
        reader = await stack.enter_async_context(
            StreamReader(
                source,
                recording.name,
                range_=range_,
                filters=filters,
                batch_rows=_BATCH_ROWS,
                max_buffered_rows=_MAX_BUFFERED_ROWS,
            )
        )
        replay.total = await _count(source, reader)
    except BaseException:
        await stack.aclose()
        raise
    run_replay(replay, reader, destination, stack)
    return replay


def check_speed(speed: object) -> float | None:
    """``speed`` as a float, or None (as fast as possible).

    Raises:
        InvalidRecordingError: It is not a positive number or None.
    """
    if speed is None:
        return None
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not speed > 0:
        raise InvalidRecordingError(
            f"speed must be a positive number (2.0: twice as fast) or None, got {speed!r}"
        )
    return float(speed)


def run_replay(
    replay: Replay, source: ReplaySource, destination: NatsBrokerConnection, stack: AsyncExitStack
) -> None:
    """Start publishing ``source`` into ``destination``; ``stack`` (the read, the lease) closes at the end."""
    replay.begin(source, destination, stack)
