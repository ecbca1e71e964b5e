"""StreamReader: a range of a JetStream stream, read in batches of raw rows, fast and bounded.

This is nats-py's ordered push consumer, minus its cost per message: an ephemeral push consumer
(``jsm.add_consumer``: no acks, flow control, idle heartbeats, in memory) delivers to an inbox, and the
messages of that inbox are taken raw from nats-py's parser (:func:`_nats_compat.intercept_raw_messages`),
so no ``Msg`` object, queue or task switch is made per message. Sequence, time and pending count come
from the ``$JS.ACK...`` reply subjects, parsed a batch at a time.

Like the ordered consumer it checks the delivery sequence of every message and starts a new consumer
after the last message it has when one is missing (after a reconnect, say). It is bounded: flow control
requests from the server are answered only while fewer than ``max_buffered_rows`` rows wait to be
taken, so a slow reader (a replay at speed 1) holds the server back instead of buffering the stream.
A deleted stream ends the read at once with :class:`RecordingDeletedError` (JetStream's advisory).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta, timezone

import nats.errors
import nats.js.errors
import numpy as np
from nats.aio.msg import Msg as NatsMsg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.js.api import AckPolicy, ConsumerConfig

from fastiot._tasks import BackgroundTasks
from fastiot.core import _nats_compat
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import HistoryReadError, RecordingDeletedError
from fastiot.history._connection import jetstream_error
from fastiot.history._consumers import (
    CONSUMER_INACTIVE_THRESHOLD,
    DELIVERED,
    PENDING,
    SEQUENCE,
    TIME,
    RawBatch,
    Replies,
    add_consumer,
    filter_options,
    start_options,
)
from fastiot.history.ranges import Range

__all__ = ["DEFAULT_BATCH_ROWS", "StreamReader"]

DEFAULT_BATCH_ROWS = 8_192
DEFAULT_MAX_BUFFERED_ROWS = 65_536
DEFAULT_IDLE_HEARTBEAT = 2.0
# No message and no heartbeat for this long: the consumer is gone (its server died, or the stream was
# deleted without the advisory saying so); check the stream, then start a new consumer.
DEFAULT_STALL_TIMEOUT = 3 * DEFAULT_IDLE_HEARTBEAT
MAX_RESTARTS = 5
# How long close() waits for the consumer's removal started when the range ended: longer than nats-py's
# JetStream API timeout (5 s), which bounds it anyway.
_CLEANUP_TIMEOUT = 10.0
_MAX_SUBJECT_NAMES = 100_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

_logger = logging.getLogger("fastiot.history")


class StreamReader:
    """Read the messages of ``stream`` in ``range_`` (matching ``filters``) as :class:`RawBatch` es.

    Use it as an async context manager and iterate it::

        async with StreamReader(connection, "plant", range_=Range()) as reader:
            async for batch in reader:
                ...

    Args:
        connection: The broker connection (its nats-py client does the reading).
        stream: The stream's name.
        range_: Where to start and stop; an open end stops at the stream's last message when reading
            starts, so a recording that goes on does not make the read endless.
        filters: Subject patterns to read (all if empty).
        max_rows: Stop after this many rows.
        batch_rows: The most rows per batch.
        max_buffered_rows: Rows that may wait to be taken before the server is held back.
        idle_heartbeat: Seconds between the server's heartbeats while it has nothing to send.
        stall_timeout: Seconds without any message or heartbeat after which a new consumer is made.
    """

    def __init__(
        self,
        connection: NatsBrokerConnection,
        stream: str,
        *,
        range_: Range,
        filters: Sequence[str] = (),
        max_rows: int | None = None,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        max_buffered_rows: int = DEFAULT_MAX_BUFFERED_ROWS,
        idle_heartbeat: float = DEFAULT_IDLE_HEARTBEAT,
        stall_timeout: float = DEFAULT_STALL_TIMEOUT,
    ) -> None:
        self.connection: NatsBrokerConnection = connection
        self.stream: str = stream
        self.range: Range = range_
        self.filters: list[str] = list(filters)
        self.max_rows: int | None = max_rows
        self.batch_rows: int = max(1, batch_rows)
        self.max_buffered_rows: int = max(self.batch_rows, max_buffered_rows)
        self.idle_heartbeat: float = idle_heartbeat
        self.stall_timeout: float = stall_timeout
        self.pending: int = 0
        """Messages the first consumer had to deliver when it was made: an upper bound of the rows."""
        self.rows: int = 0
        """Rows handed out so far."""
        self.restarts: int = 0
        """Consumers made again after a missing message or a stall."""
        self._client = connection.client
        self._end_seq: int | None = range_.end_seq
        self._ready: deque[RawBatch] = deque()
        self._ready_rows: int = 0
        self._raw: list[bytes] = []
        self._raw_headers: dict[int, bytes] = {}
        self._statuses: list[tuple[bytes, bytes]] = []
        self._names: dict[bytes, str] = {}
        self._wake: asyncio.Event = asyncio.Event()
        self._finished: bool = False  # every row of the range has been received (or the read was ended)
        self._gap: bool = False  # a message is missing: the rows after it are dropped until a new consumer
        self._next_dseq: int = 1
        self._last_seq: int = 0  # the stream sequence of the last row kept
        self._started: bool = False  # a row of the range has been kept (no row before the start comes later)
        self._flow_control: str | None = None
        self._deleted: bool = False
        self._subscription: NatsSubscription | None = None
        self._advisory: NatsSubscription | None = None
        self._end_intercept: Callable[[], None] | None = None
        self._consumer: str | None = None
        # The consumer's removal, started when the range ends (from the read loop, which cannot wait for it).
        self._cleanup: BackgroundTasks = BackgroundTasks()

    # -- life cycle ------------------------------------------------------------------------------------

    async def open(self) -> StreamReader:
        """Look at the stream and make the consumer (nothing is made for an empty range).

        Raises:
            RecordingDeletedError: The stream does not exist (any more).
            JetStreamUnavailableError, HistoryServerError: The server refused.
        """
        jsm = self._client.jsm()
        try:
            info = await jsm.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            raise self.deleted_error() from None
        except (nats.js.errors.Error, nats.errors.Error) as e:
            raise jetstream_error(e, self.connection, f"reading recording {self.stream!r}") from None
        last_seq = int(info.state.last_seq or 0)
        if self._end_seq is None or self._end_seq > last_seq:
            self._end_seq = last_seq
        first_seq = self.range.start_seq or 1
        if info.state.messages == 0 or self.range.is_empty or first_seq > self._end_seq or self.max_rows == 0:
            self._finished = True
            return self
        self._advisory = await self._client.subscribe(
            f"$JS.EVENT.ADVISORY.STREAM.DELETED.{self.stream}", cb=self._on_stream_deleted
        )
        start_time = None
        if self.range.start_ns is not None:
            # Consumers take microseconds; rows before the exact start (a pandas.Timestamp's ns) are dropped.
            start_time = _EPOCH + timedelta(microseconds=self.range.start_ns // 1000)
        self.pending = await self._start_consumer(self.range.start_seq, start_time)
        if self.pending == 0:
            self._finish()
        return self

    async def _start_consumer(self, start_seq: int | None, start_time: datetime | None) -> int:
        async def config() -> ConsumerConfig:
            # A new inbox for each attempt: a consumer that a timed-out request made after all must not
            # deliver into the rows of the next one.
            inbox = self._client.new_inbox()
            subscription = await self._client.subscribe(inbox)
            self._end_intercept = _nats_compat.intercept_raw_messages(
                self._client, _nats_compat.subscription_id(subscription), self._on_raw
            )
            self._subscription = subscription
            self._next_dseq = 1
            return ConsumerConfig(
                description="fastiot history: reading a range",
                deliver_subject=inbox,
                ack_policy=AckPolicy.NONE,
                flow_control=True,
                idle_heartbeat=self.idle_heartbeat,
                mem_storage=True,
                inactive_threshold=CONSUMER_INACTIVE_THRESHOLD,
                **start_options(start_seq, start_time),  # type: ignore[arg-type]
                **filter_options(self.filters),  # type: ignore[arg-type]
            )

        try:
            info = await add_consumer(self.connection, self.stream, config, self._stop_consumer)
        except nats.js.errors.NotFoundError:
            raise self.deleted_error() from None
        except (nats.js.errors.Error, nats.errors.Error) as e:
            raise jetstream_error(e, self.connection, f"reading recording {self.stream!r}") from None
        self._consumer = info.name
        return int(info.num_pending or 0)

    async def _stop_consumer(self) -> None:
        if self._end_intercept is not None:
            self._end_intercept()
            self._end_intercept = None
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
        consumer, self._consumer = self._consumer, None
        if consumer is not None and not self._deleted and self._client.is_connected:
            # The server removes it after its inactive threshold anyway; deleting now stops its pushing.
            with contextlib.suppress(Exception):
                await self._client.jsm().delete_consumer(self.stream, consumer)

    async def _restart(self, reason: str) -> None:
        self.restarts += 1
        if self.restarts > MAX_RESTARTS:
            raise HistoryReadError(
                f"reading recording {self.stream!r} failed {MAX_RESTARTS} times ({reason}); check the "
                f"connection to NATS and, in a cluster, that the stream's servers are up"
            )
        _logger.info("recording %s: %s; reading on after sequence %d", self.stream, reason, self._last_seq)
        await self._stop_consumer()
        self._raw, self._raw_headers, self._statuses = [], {}, []
        self._gap = False
        self._flow_control = None
        if await self._start_consumer(self._last_seq + 1, None) == 0:
            self._finish()

    async def close(self) -> None:
        """End the read: remove the consumer and the subscriptions."""
        self._finished = True
        try:
            await self._cleanup.wait(timeout=_CLEANUP_TIMEOUT)
        except asyncio.TimeoutError:
            await self._cleanup.cancel()
        await self._stop_consumer()
        advisory, self._advisory = self._advisory, None
        if advisory is not None:
            with contextlib.suppress(Exception):
                await advisory.unsubscribe()

    async def __aenter__(self) -> StreamReader:
        try:
            return await self.open()
        except BaseException:
            await self.close()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def deleted(self) -> bool:
        """True once JetStream said the stream was deleted (batches already taken are still valid)."""
        return self._deleted

    def deleted_error(self) -> RecordingDeletedError:
        return RecordingDeletedError(
            f"recording {self.stream!r} does not exist (any more): it was deleted; "
            f"Recording.list() shows the recordings there are",
            name=self.stream,
        )

    async def _on_stream_deleted(self, msg: NatsMsg) -> None:
        self._deleted = True
        self._wake.set()

    # -- the read loop's side: runs in nats-py's parser, once per message ------------------------------

    def _on_raw(self, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        if headers is not None and headers[8:9] == b" ":  # "NATS/1.0 100 ...": a status, not a message
            self._statuses.append((reply, headers))
            self._wake.set()
            return
        if self._finished or self._gap:
            return
        raw = self._raw
        if not raw:
            self._wake.set()
        raw.extend((subject, reply, data))
        if headers is not None:
            self._raw_headers[len(raw) // 3 - 1] = headers
        if len(raw) >= 3 * self.batch_rows:
            self._cut()

    def _cut(self) -> None:
        """Turn the rows received so far into a batch: check their order, apply the range's end."""
        raw, headers = self._raw, self._raw_headers
        if not raw:
            return
        self._raw, self._raw_headers = [], {}
        replies = Replies(raw[1::3])
        n = replies.n
        seqs, times = replies.column(SEQUENCE), replies.column(TIME)
        keep = n
        # One consumer delivers in order, so first and last tell whether a delivery is missing.
        if (
            replies.value(DELIVERED, 0) != self._next_dseq
            or replies.value(DELIVERED, n - 1) != self._next_dseq + n - 1
        ):
            # A message is missing: keep what came before it, then read on from there with a new consumer.
            dseqs = replies.column(DELIVERED)
            expected = np.arange(self._next_dseq, self._next_dseq + n, dtype=np.int64)
            keep = int(np.argmin(dseqs == expected)) if not (dseqs == expected).all() else n
            self._gap = True
            self._wake.set()
        first = 0
        start_ns = self.range.start_ns
        if start_ns is not None and not self._started and keep and times[0] < start_ns:
            first = min(keep, int(np.count_nonzero(times[:keep] < start_ns)))
        stop = keep
        finished = False
        if self._end_seq is not None and stop and seqs[stop - 1] > self._end_seq:
            stop = int(np.searchsorted(seqs[:stop], self._end_seq, side="right"))
            finished = True
        end_ns = self.range.end_ns
        if end_ns is not None and stop and times[stop - 1] > end_ns:
            late = times[:stop] > end_ns
            stop = int(np.argmax(late))
            finished = True
        if self.max_rows is not None and self.rows + self._ready_rows + stop - first >= self.max_rows:
            stop = first + max(0, self.max_rows - self.rows - self._ready_rows)
            finished = True
        if stop and keep == stop and not self._gap and replies.value(PENDING, stop - 1) == 0:
            finished = True  # the stream had nothing after this message (for the filters) when it was sent
        if keep:
            self._next_dseq = replies.value(DELIVERED, keep - 1) + 1
        if stop > 0:
            self._last_seq = int(seqs[stop - 1])
        if stop > first:
            self._started = True
            self._ready.append(
                RawBatch(
                    subjects=self._subject_names(raw[3 * first : 3 * stop : 3]),
                    sequences=seqs[first:stop],
                    times=times[first:stop],
                    payloads=raw[3 * first + 2 : 3 * stop : 3],
                    headers={i - first: h for i, h in headers.items() if first <= i < stop},
                )
            )
            self._ready_rows += stop - first
            self._wake.set()
        if finished:
            self._finish()

    def _subject_names(self, subjects: list[bytes]) -> list[str]:
        names = self._names
        found: list[str | None] = list(map(names.get, subjects))
        if None in found:
            if len(names) > _MAX_SUBJECT_NAMES:
                names.clear()
            for i, name in enumerate(found):
                if name is None:
                    raw = subjects[i]
                    found[i] = names[raw] = raw.decode("utf-8", "replace")
        return found  # type: ignore[return-value]

    def _finish(self) -> None:
        if not self._finished:
            self._finished = True
            self._wake.set()
            # Stop the server pushing the rest of the stream at once, not after the range is consumed.
            self._cleanup.spawn(self._stop_consumer(), what="removing the consumer of a finished read")

    # -- the reader's side -----------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[RawBatch]:
        return self.batches()

    async def batches(self) -> AsyncIterator[RawBatch]:
        """The batches of the range, in stream order.

        Raises:
            RecordingDeletedError: The stream was deleted during the read.
            HistoryReadError: The server stopped delivering and new consumers did not help.
        """
        while True:
            if self._deleted:
                raise self.deleted_error()
            if self._statuses:
                await self._handle_statuses()
            if self._ready:
                batch = self._ready.popleft()
                self._ready_rows -= len(batch)
                self.rows += len(batch)
                await self._answer_flow_control()
                yield batch
                continue
            if self._raw:
                self._cut()
                continue
            if self._gap and not self._finished:
                await self._restart("a message is missing (after a reconnect?)")
                continue
            if self._finished:
                return
            await self._answer_flow_control()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.stall_timeout)
            except asyncio.TimeoutError:
                if not self._deleted:
                    await self._on_stall()

    async def headers_of(self, batch: RawBatch) -> dict[int, dict[str, str]]:
        """The NATS headers of the rows of ``batch`` that have some, parsed by nats-py, by row index."""
        return {i: await _nats_compat.parse_headers(self._client, raw) for i, raw in batch.headers.items()}

    async def prefetch(self, rows: int, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until ``rows`` rows are buffered or the range is all in.

        A replay does this before its clock starts: the first burst of the stream is read while nothing
        is due yet.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._finished and not self._deleted and self._ready_rows + len(self._raw) // 3 < rows:
            await self._answer_flow_control()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except asyncio.TimeoutError:
                return
            self._cut()

    async def _on_stall(self) -> None:
        try:
            await self._client.jsm().stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            self._deleted = True
            return
        except (nats.js.errors.Error, nats.errors.Error):
            pass  # the server is not reachable right now: a new consumer is tried below
        await self._restart(f"no message and no heartbeat for {self.stall_timeout:g} s")

    async def _handle_statuses(self) -> None:
        # The rows that came before these statuses first: a heartbeat's "last sent" counts them.
        self._cut()
        statuses, self._statuses = self._statuses, []
        for reply, raw in statuses:
            headers = await _nats_compat.parse_headers(self._client, raw)
            status = headers.get("Status", "")
            if status != "100":
                # 409 "Consumer Deleted" and the like: the stall check finds out what happened.
                _logger.debug("recording %s: status %s %s", self.stream, status, headers.get("Description"))
                continue
            stalled = headers.get("Nats-Consumer-Stalled")
            if reply:
                self._flow_control = reply.decode()
            elif stalled:
                self._flow_control = stalled
            last = headers.get("Nats-Last-Consumer")
            if last is not None and int(last) >= self._next_dseq and not self._finished:
                self._gap = True  # a heartbeat says more was sent than arrived

    async def _answer_flow_control(self) -> None:
        subject = self._flow_control
        if subject is None or self._ready_rows + len(self._raw) // 3 >= self.max_buffered_rows:
            return
        self._flow_control = None
        with contextlib.suppress(nats.errors.Error):
            await self._client.publish(subject, b"")
