"""MessageCapture: messages on NATS subjects -> a bounded columnar ring buffer -> pandas DataFrames.

A capture subscribes to one or more subjects on the broker and keeps the newest ``max_rows``
messages (and at most ``max_bytes`` of payload), decoded and split into columns as they arrive, so a
notebook can look at the traffic as a DataFrame at any time while the capture keeps running.

Example:
    >>> from fastiot.capture import MessageCapture
    >>> async def main(connection):
    ...     async with MessageCapture("v1.thing.>", connection) as capture:
    ...         await capture.wait_for(100, timeout=30)
    ...         return capture.to_dataframe()
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import pydantic

from fastiot.capture.buffer import DEFAULT_MAX_BYTES, DEFAULT_MAX_COLUMNS, ColumnarBuffer
from fastiot.capture.export import write_csv, write_parquet
from fastiot.capture.observer import DEFAULT_WAIT_TIMEOUT, BrokerObserver, Listener, MessageHandler
from fastiot.core.broker_connection import (
    DEFAULT_PENDING_BYTES_LIMIT,
    DEFAULT_PENDING_MSGS_LIMIT,
    BrokerConnection,
)
from fastiot.core.data_models import Subject
from fastiot.core.subject_helper import subject_targets
from fastiot.payloads import BatchDecoder, Decoded, flatten
from fastiot.rates import DEFAULT_RATE_WINDOW, message_rate

if TYPE_CHECKING:
    import pandas as pd

    from fastiot.capture._delivery import Message

__all__ = [
    "DEFAULT_MAX_ROWS",
    "CaptureSubjects",
    "MessageCallback",
    "MessageCapture",
    "decode_payload",
    "flatten_payload",
]

DEFAULT_MAX_ROWS = 100_000

_time_ns = time.time_ns

# Called with the number of rows that arrived since the last call; 0 means the capture was cleared.
MessageCallback = Callable[[int], None]
# What a capture listens to: a NATS pattern, a Subject, or a list of them.
CaptureSubjects = Union[str, Subject, Sequence[Union[str, Subject]]]  # noqa: UP007 - a runtime alias


def decode_payload(data: bytes, msg_cls: type | None = None) -> tuple[Any, str | None]:
    """Decode a message payload the way a capture does (see :func:`fastiot.payloads.decode` for more).

    Without ``msg_cls``: msgpack (FastIoT's wire format), else JSON, else UTF-8 text. With a pydantic
    model class the payload must be msgpack that validates as the model; with ``dict`` it must be msgpack.

    Returns:
        ``(payload, None)`` on success (a dict, a model, or a plain value), ``(None, error_text)`` if the
        payload does not decode.

    Example:
        >>> decode_payload(b'{"a": 1}')
        ({'a': 1}, None)
    """
    result = BatchDecoder(msg_cls)(data, "")
    if type(result) is Decoded:
        return (None, result.error) if result.error is not None else (result.value, None)
    return result, None


def flatten_payload(payload: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten a decoded payload to one level, as capture columns are named (see ``payloads.flatten``).

    Example:
        >>> flatten_payload({"a": {"b": 1}, "c": 2})
        {'a.b': 1, 'c': 2}
    """
    flat = flatten(payload)
    if not prefix:
        return flat
    if not isinstance(payload, (dict, pydantic.BaseModel)):
        return {prefix: payload}
    return {prefix + (name if name.startswith("[") else "." + name): value for name, value in flat.items()}


def _subject_patterns(subjects: CaptureSubjects) -> list[tuple[str, type | None]]:
    return subject_targets(subjects)


class MessageCapture(BrokerObserver):
    """Capture the messages on NATS subjects into a bounded columnar buffer, readable as a DataFrame.

    Each message becomes one row: ``received_at``, ``subject`` and the payload's fields (nested
    mappings flattened to ``a.b`` columns, a key holding a dot quoted as ``a["b.c"]``). With a
    :class:`Subject` the payload is decoded to the subject's model; with a pattern string as msgpack
    (FastIoT's wire format), else JSON, else UTF-8 text, a ``Content-Type`` header naming text or JSON
    first, as :func:`fastiot.payloads.decode` decodes it for the browser. A payload that
    does not decode is kept as a row with ``raw`` bytes and an ``error`` text, never dropped. A payload
    that is not a mapping lands in the ``value`` column; values nested deeper than
    :data:`fastiot.payloads.DEFAULT_MAX_DEPTH` are kept as text. Rows of messages with NATS headers
    have them in a ``headers`` column. Only the newest ``max_rows`` rows holding at most ``max_bytes``
    payload bytes are kept; :attr:`dropped` counts the evicted ones exactly.

    The NATS callback only hands a message to the buffer; rows are decoded and written to the columns
    (numpy arrays, strings deduplicated) in batches, and every read (:meth:`to_dataframe`, :meth:`tail`,
    :attr:`rate`, ...) first writes what is staged, so reads always see every row counted in
    :attr:`received`. Everything runs on the event loop the capture was started on; use it from that
    loop's thread (in a notebook: from cells and widget callbacks).

    Args:
        subjects: A NATS pattern (``"v1.thing.>"``), a :class:`Subject`, or a list of them. A message
            that matches two of them is captured twice.
        connection: The broker connection; ``None`` uses the notebook kernel's connection
            (``fastiot.workbench``), which also stops the capture on ``workbench.shutdown()``.
        max_rows: How many of the newest rows to keep.
        max_bytes: How many payload bytes the rows kept may hold, rows not yet written included
            (256 MiB by default).
        pending_msgs_limit: Messages the NATS client may buffer for the capture before it drops some
            (see :attr:`lost`).
        pending_bytes_limit: The same limit in bytes.
        rate_window: Seconds :attr:`rate` averages over.
        max_columns: The most distinct payload fields kept; further fields are counted in
            :attr:`fields_not_stored`.
        include_deliveries: Also count what JetStream consumers deliver (reply subject ``$JS.ACK.…``:
            somebody reading a recording, a KV watch): stored messages, not traffic published now.

    Example:
        >>> from fastiot.capture import MessageCapture
        >>> from fastiot.msg.thing import Thing
        >>> async def main(connection):
        ...     capture = await MessageCapture(Thing.get_subject(">"), connection, max_rows=10_000).start()
        ...     await capture.wait_for(10, timeout=5)
        ...     await capture.stop()
        ...     return capture.to_dataframe()[["machine", "name", "value", "timestamp"]]
    """

    _what = "capture"

    def __init__(
        self,
        subjects: CaptureSubjects,
        connection: BrokerConnection | None = None,
        max_rows: int = DEFAULT_MAX_ROWS,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        pending_msgs_limit: int = DEFAULT_PENDING_MSGS_LIMIT,
        pending_bytes_limit: int = DEFAULT_PENDING_BYTES_LIMIT,
        rate_window: float = DEFAULT_RATE_WINDOW,
        max_columns: int = DEFAULT_MAX_COLUMNS,
        include_deliveries: bool = False,
    ) -> None:
        super().__init__(
            connection,
            pending_msgs_limit=pending_msgs_limit,
            pending_bytes_limit=pending_bytes_limit,
            include_deliveries=include_deliveries,
        )
        if rate_window <= 0:
            raise ValueError(f"rate_window must be > 0 seconds, got {rate_window}")
        self._targets: list[tuple[str, type | None]] = _subject_patterns(subjects)
        self._buffer: ColumnarBuffer = ColumnarBuffer(
            max_rows, max_bytes=max_bytes, max_columns=max_columns, name=f"capture {', '.join(self.patterns)}"
        )
        self._rate_window_ns: int = int(rate_window * 1e9)
        self._received_before_clear: int = 0

    def __repr__(self) -> str:
        state = "paused" if self._paused else ("running" if self.is_running else "stopped")
        patterns = ", ".join(p for p, _ in self._targets)
        return (
            f"<MessageCapture {patterns} {state}: {len(self)} of max {self.max_rows} rows, "
            f"{self.dropped} dropped, {self.errors} undecodable>"
        )

    # -- the hot path -------------------------------------------------------------------------------

    def _subscription_plan(self) -> list[tuple[str, MessageHandler]]:
        # One decoder per subscription, chosen now: the callback never looks up how to decode.
        return [
            (pattern, self._handler(BatchDecoder(msg_cls, pattern=pattern, fields=True)))
            for pattern, msg_cls in self._targets
        ]

    def _handler(self, decoder: BatchDecoder) -> MessageHandler:
        """The handler, run for every message: hand it to the buffer undecoded, count, nothing else.

        The buffer decodes its staged rows a batch at a time with each row's ``decoder``, which reads
        a message's ``Content-Type`` header as :func:`fastiot.payloads.decode` does.
        """
        append = self._buffer.append  # bound once: cheaper than an attribute lookup on every message
        time_ns = _time_ns

        def on_msg(msg: Message) -> None:
            if self._paused:
                self._on_paused_msg()
                return
            seq = self._received
            append(msg.subject, time_ns(), msg.data, msg.headers, decoder)
            self._received = seq + 1
            if seq >= self._trigger_seq:
                self._wake()

        return on_msg

    def _on_subscribed(self) -> None:
        self._buffer.knows_retained = self.knows_retained

    def _on_paused_msg(self) -> None:
        self._skipped += 1
        if self._waiters:
            self._wake()  # sync() waits for skipped messages too

    def _flush(self) -> None:
        """Write the staged rows into the ring buffer."""
        self._buffer.flush()

    # -- counters -----------------------------------------------------------------------------------

    def __len__(self) -> int:
        self._flush()
        return len(self._buffer)

    @property
    def max_rows(self) -> int:
        """How many of the newest rows the capture keeps."""
        return self._buffer.max_rows

    @property
    def max_bytes(self) -> int:
        """How many payload bytes the rows kept (and not yet written) may hold."""
        return self._buffer.max_bytes

    @property
    def payload_bytes(self) -> int:
        """Payload bytes of the rows kept now, rows not yet written included (at most :attr:`max_bytes`)."""
        return self._buffer.payload_bytes

    @property
    def patterns(self) -> list[str]:
        """The NATS subject patterns captured."""
        return [pattern for pattern, _ in self._targets]

    @property
    def targets(self) -> list[tuple[str, type | None]]:
        """What is captured: each pattern with the model its payloads decode to (``None``: any format).

        Example:
            >>> MessageCapture(["v1.a", "v1.b"]).targets
            [('v1.a', None), ('v1.b', None)]
        """
        return list(self._targets)

    @property
    def received(self) -> int:
        """Rows added since the capture was made or last cleared, including evicted ones."""
        return self._received

    @property
    def dropped(self) -> int:
        """Rows evicted to make room for newer ones (by ``max_rows`` or ``max_bytes``), exact."""
        self._flush()
        return self._buffer.dropped

    @property
    def errors(self) -> int:
        """Rows whose payload did not decode, since the capture was made or last cleared."""
        self._flush()
        return self._buffer.errors

    @property
    def fields_not_stored(self) -> int:
        """Field values not stored because the payloads had more than ``max_columns`` distinct fields."""
        return self._buffer.fields_not_stored

    @property
    def has_mqtt(self) -> bool:
        """Whether an MQTT client published some row kept since start or :meth:`clear`.

        Then :meth:`to_dataframe` has the ``mqtt_topic``, ``mqtt_qos`` and ``mqtt_retained`` columns
        (``mqtt_retained``: published with MQTT's retain flag, known on a connection that may subscribe
        to ``$MQTT.rmsgs.>``).
        """
        self._flush()
        return self._buffer.has_mqtt

    @property
    def columns(self) -> list[str]:
        """The payload columns seen so far (flattened names), in the order :meth:`to_dataframe` uses."""
        self._flush()
        return self._buffer.column_order()

    @property
    def subjects(self) -> list[str]:
        """The distinct subjects of the rows in the buffer, sorted."""
        self._flush()
        return self._buffer.subjects()

    @property
    def rate(self) -> float:
        """Rows per second over the last ``rate_window`` seconds (or since start, if shorter).

        A slow subject (fewer than two rows in the window) is averaged over the rows kept, up to now,
        so it does not read 0 (see :mod:`fastiot.rates`).
        """
        if not self._received:
            return 0.0
        self._flush()
        now = _time_ns()
        return message_rate(
            self._buffer.times(),
            now_ns=now,
            window_ns=self._rate_window_ns,
            first_ns=self._started_ns or now - self._rate_window_ns,
            total=self._received,
        )

    # -- control ------------------------------------------------------------------------------------

    def add_messages(
        self,
        subjects: Sequence[str],
        times: Sequence[int],
        datas: Sequence[bytes],
        headers: Mapping[int, Mapping[str, str]] | None = None,
    ) -> None:
        r"""Add messages read elsewhere (a recording's window) as rows, decoded as captured ones are.

        A capture that is never started is a bounded, decoding buffer a view can be fed from: the
        :class:`~fastiot_widgets.MessageTable` of a timeline's window is one. The rows count in
        :attr:`received` and listeners registered with :meth:`on_message` are told.

        Args:
            subjects: The subject of each message.
            times: Their times in ns since the epoch.
            datas: Their payload bytes.
            headers: The NATS headers of the messages that have some, by index in the batch.

        Raises:
            ValueError: The three sequences are not of the same length.

        Example:
            >>> capture = MessageCapture(">", max_rows=100)
            >>> capture.add_messages(["v1.a"], [1], [b"\x01"])
            >>> capture.to_dataframe()["value"].tolist()
            [1]
        """
        if not len(subjects) == len(times) == len(datas):
            raise ValueError(
                f"give as many subjects, times and payloads, got {len(subjects)}, {len(times)}, {len(datas)}"
            )
        if not datas:
            return
        self._buffer.extend(subjects, list(times), datas, headers)
        self._received += len(datas)
        if self._loop is None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop, no listeners to call: reads see the rows anyway
        self._wake()

    def clear(self) -> None:
        """Forget every row; :attr:`received`, :attr:`dropped` and :attr:`errors` start again at 0.

        Listeners registered with :meth:`on_message` are called with 0.
        """
        self._received_before_clear += self._received
        self._received = 0
        self._buffer.clear()
        for listener in self._listeners.states():
            listener.mark = self._received_before_clear
            self._call_listener(listener, 0)
        self._rearm()

    def on_message(
        self, callback: MessageCallback, remove: bool = False, *, min_interval: float = 0.0
    ) -> None:
        """Call ``callback(n)`` after new rows arrived, with the number of rows since its last call.

        Calls are coalesced: at most one per event-loop iteration and at most one every
        ``min_interval`` seconds, so a view can redraw from :meth:`tail` without slowing the capture.
        After :meth:`clear` the callback gets ``0``.

        Args:
            callback: A plain (not async) function taking the number of new rows. Registering it
                again keeps it once, with the new ``min_interval``.
            remove: Unregister ``callback`` instead (nothing happens if it is not registered).
            min_interval: The least time in seconds between two calls of this callback.

        Raises:
            TypeError: If ``callback`` is an async function or not callable.
            ValueError: If ``min_interval`` is negative.

        Example:
            >>> capture = MessageCapture("v1.thing.>")
            >>> capture.on_message(lambda n: print(f"{n} new rows"), min_interval=0.5)
        """
        self._add_listener(callback, remove, min_interval, mark=self._received_before_clear + self._received)

    def _listener_news(self, listener: Listener) -> Any:
        total = self._received_before_clear + self._received
        new = total - listener.mark
        if new <= 0:
            return None
        listener.mark = total
        return new

    async def wait_for(self, n: int, timeout: float | None = DEFAULT_WAIT_TIMEOUT) -> int:
        """Wait until ``n`` rows have arrived (since the capture was made or last cleared).

        Returns at once if they have; evicted rows count, so ``n`` may exceed ``max_rows``.

        Args:
            n: The number of rows to wait for.
            timeout: Seconds to wait at most; ``None`` waits forever.

        Returns:
            :attr:`received` when the wait ended.

        Raises:
            WaitTimeoutError: If fewer than ``n`` rows arrived within ``timeout``.
            NotRunningError: If the capture is not started (or is stopped while waiting).

        Example:
            >>> async def main(capture):
            ...     await capture.wait_for(5, timeout=2.0)
        """
        await self._wait(
            lambda: self._received >= n,
            timeout,
            lambda: f"{n} rows on {', '.join(self.patterns)} (got {self._received})",
            wake_seq=n - 1,
        )
        return self._received

    # -- reading ------------------------------------------------------------------------------------

    def to_dataframe(self) -> pd.DataFrame:
        """The rows in the buffer, oldest first, as a new DataFrame (later messages do not change it).

        Columns: ``received_at`` (``datetime64[ns, UTC]``), ``subject``, then the payload fields
        flattened (``a.b`` for nested mappings; for Thing: machine, name, value, unit, timestamp,
        measurement_id), ``headers`` if rows had NATS headers, and ``raw`` / ``error`` if rows did not
        decode. Datetimes are tz-aware UTC, numbers numeric (integer fields with missing values as
        nullable ``Int64``), text ``str``. Payload fields named like a leading column get a
        ``payload.`` prefix.

        Example:
            >>> MessageCapture("v1.thing.>").to_dataframe().columns.tolist()
            ['received_at', 'subject']
        """
        self._flush()
        return self._buffer.to_dataframe()

    def tail(self, n: int = 10) -> pd.DataFrame:
        """The newest ``n`` rows as a DataFrame (cheap: only those rows are converted).

        Example:
            >>> MessageCapture("v1.thing.>").tail(5).empty
            True
        """
        self._flush()
        return self._buffer.tail(n)

    def to_csv(self, path: str | Path, **kwargs: Any) -> Path:
        """Write :meth:`to_dataframe` to a CSV file (no index; raw bytes as hex; datetimes ISO 8601 UTC).

        Args:
            path: The file to write.
            kwargs: Passed on to :meth:`pandas.DataFrame.to_csv`.

        Returns:
            The path written.

        Example:
            >>> capture.to_csv("things.csv")  # doctest: +SKIP
        """
        return write_csv(self.to_dataframe(), path, **kwargs)

    def to_parquet(self, path: str | Path, **kwargs: Any) -> Path:
        """Write :meth:`to_dataframe` to a Parquet file (needs the ``parquet`` extra, i.e. pyarrow).

        Columns whose values have mixed types that Parquet cannot hold in one column are written as text.

        Args:
            path: The file to write.
            kwargs: Passed on to :meth:`pandas.DataFrame.to_parquet`.

        Returns:
            The path written.

        Raises:
            ParquetUnavailableError: If pyarrow is not installed.

        Example:
            >>> capture.to_parquet("things.parquet")  # doctest: +SKIP
        """
        return write_parquet(self.to_dataframe(), path, **kwargs)
