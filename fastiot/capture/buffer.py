"""ColumnarBuffer: decoded messages as rows of numpy columns in a ring bounded in rows and in bytes.

The buffer is the one writer of its rows: messages come in undecoded (:meth:`ColumnarBuffer.append`
one at a time, :meth:`ColumnarBuffer.extend` a batch at a time), are decoded a batch at a time by a
:class:`~fastiot.payloads.BatchDecoder` and written to the columns in batches: numpy stores a batch of
values far cheaper than one value at a time. Every read first writes what is staged. Only the newest
``max_rows`` rows are kept, and only as many as hold ``max_bytes`` payload bytes, staged rows included.
A payload larger than ``max_bytes`` is dropped alone, the rows before it stay.
:attr:`ColumnarBuffer.dropped` counts the rows evicted and dropped exactly.

Example:
    >>> from fastiot.core.serialization import pack
    >>> buffer = ColumnarBuffer(max_rows=1000)
    >>> buffer.append("v1.thing.press_1.temp", 1_700_000_000_000_000_000, pack({"value": 21.5}))
    >>> buffer.to_dataframe()["value"].tolist()
    [21.5]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Union

import numpy as np

from fastiot.capture.export import column_to_pandas, string_array
from fastiot.capture.rows import VALUE_COLUMN, PayloadColumns
from fastiot.core.logger import setup_logger
from fastiot.mqtt.topics import MQTT_PUBLISH_HEADER
from fastiot.payloads import BatchDecoder, Decoded

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_COLUMNS",
    "ERROR_COLUMN",
    "HEADERS_COLUMN",
    "RAW_COLUMN",
    "SEQUENCE_COLUMN",
    "VALUE_COLUMN",
    "ColumnarBuffer",
]

DEFAULT_MAX_BYTES = 256 * 1024**2
"""The payload bytes a buffer keeps at most by default (256 MiB), the rows not yet written included."""
# A payload with more distinct (flattened) fields than this is not a table; the rest is counted, not kept.
DEFAULT_MAX_COLUMNS = 1_000

ERROR_COLUMN = "error"
"""The column that says why a row's payload did not decode (``None`` for rows that did)."""
RAW_COLUMN = "raw"
"""The column with the undecoded bytes of rows whose payload did not decode."""
HEADERS_COLUMN = "headers"
"""The column of the NATS headers, present when a row in the frame had headers."""
SEQUENCE_COLUMN = "sequence"
"""The column of the rows' sequence numbers, in buffers made with ``sequence=True`` (recordings)."""


_INITIAL_CAPACITY = 1_024
# Rows are written to the columns once this many are staged (or when somebody reads). Few enough that their
# payloads, decoded at once (a dict each), stay under the garbage collector's threshold of 700 new container
# objects: with 1,536 decoded rows alive, a firehose set off a young-generation collection every few hundred
# messages and, promoting the rows, a full collection (100+ ms in a notebook kernel) every 200,000 or so.
FLUSH_ROWS = 256
_MAX_SUBJECT_NAMES = 100_000
_WIDTH = 4  # fields of a staged row
# A column of ints as callers have it: a list, or an int64 array (a recording's times and sequences).
_Ints = Union[Sequence[int], np.ndarray]  # noqa: UP007 - a runtime alias

_logger = setup_logger("capture")


def _view(array: np.ndarray, slices: list[slice]) -> np.ndarray:
    return array[slices[0]]


class _Rows(NamedTuple):
    """Decoded rows on their way into the columns, column by column."""

    subjects: Sequence[str]
    times: _Ints
    payloads: list[Any]
    sizes: list[int]
    sequences: _Ints | None

    def picked(self, keep: list[int]) -> _Rows:
        """Only the rows at the indexes ``keep``."""
        sequences = self.sequences
        return _Rows(
            [self.subjects[i] for i in keep],
            [self.times[i] for i in keep],
            [self.payloads[i] for i in keep],
            [self.sizes[i] for i in keep],
            None if sequences is None else [sequences[i] for i in keep],
        )

    def after(self, skip: int) -> _Rows:
        """The rows after the first ``skip``."""
        sequences = self.sequences
        return _Rows(
            self.subjects[skip:],
            self.times[skip:],
            self.payloads[skip:],
            self.sizes[skip:],
            None if sequences is None else sequences[skip:],
        )


def _is_failure(payload: Any) -> bool:
    return type(payload) is Decoded and payload.error is not None


class ColumnarBuffer:
    """A ring of decoded messages as numpy columns, bounded in rows and payload bytes.

    Messages come in undecoded, one at a time (:meth:`append`, what a capture's NATS callback calls)
    or a batch at a time (:meth:`extend`, what a recording's reader calls); the buffer decodes them a
    batch at a time with a :class:`~fastiot.payloads.BatchDecoder` when it writes them to the columns.

    Args:
        max_rows: How many of the newest rows to keep.
        max_bytes: How many payload bytes the rows kept (and staged) may hold.
        max_columns: The most distinct payload fields kept; further ones are counted in
            :attr:`fields_not_stored`.
        sequence: Rows carry a sequence number (a ``sequence`` column after ``subject``).
        decoder: How rows added without a decoder of their own decode (default: any format, as a
            capture on a pattern decodes).
        name: What the buffer belongs to, for log lines.

    Example:
        >>> buffer = ColumnarBuffer(max_rows=2, sequence=True)
        >>> buffer.extend(["a"] * 3, [0, 1, 2], [b'{"n": %d}' % seq for seq in range(3)], sequences=[7, 8, 9])
        >>> buffer.to_dataframe()[["sequence", "n"]].values.tolist(), buffer.dropped
        ([[8, 1], [9, 2]], 1)
    """

    def __init__(
        self,
        max_rows: int,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_columns: int = DEFAULT_MAX_COLUMNS,
        sequence: bool = False,
        decoder: BatchDecoder | None = None,
        name: str = "capture",
    ) -> None:
        if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
            raise ValueError(f"max_rows must be a positive int, got {max_rows!r}")
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(
                f"max_bytes must be a positive int (bytes), e.g. 64 * 1024**2, got {max_bytes!r}"
            )
        self.max_rows: int = max_rows
        self.max_bytes: int = max_bytes
        # When full, rows are evicted down to this: later rows are then written in batches again.
        self._byte_target: int = max_bytes - max_bytes // 16
        self._max_columns: int = max_columns
        self._payload: PayloadColumns = PayloadColumns(0, max_columns, name)
        self._with_sequence: bool = sequence
        self._name: str = name
        self._decoder: BatchDecoder = decoder if decoder is not None else BatchDecoder()
        # Rows not yet written, flat (_WIDTH fields a row: subject, received ns, payload bytes, decoder):
        # one list extended by a tuple costs the hot path less than a list or an object per row.
        self._staged: list[Any] = []
        self._staged_headers: dict[int, Mapping[str, str]] = {}  # by the staged rows' numbers (rows_added)
        self._flush_length: int = _WIDTH * min(FLUSH_ROWS, max_rows)
        self._subject_names: dict[str, str] = {}
        self._errors: dict[int, tuple[bytes, str]] = {}
        self._headers: dict[int, Mapping[str, str]] = {}
        self._fields_not_stored_before_clear: int = 0
        self.clear()

    def clear(self) -> None:
        """Forget every row; the counters start again at 0."""
        self._capacity: int = min(self.max_rows, _INITIAL_CAPACITY)
        self._times: np.ndarray = np.zeros(self._capacity, dtype=np.int64)
        self._sizes: np.ndarray = np.zeros(self._capacity, dtype=np.int64)
        self._sequences: np.ndarray | None = (
            np.zeros(self._capacity, np.int64) if self._with_sequence else None
        )
        self._subject_values: np.ndarray = np.empty(self._capacity, dtype=object)
        self._fields_not_stored_before_clear += self._payload.fields_not_stored
        self._payload = PayloadColumns(self._capacity, self._max_columns, self._name)
        self._staged.clear()
        self._staged_headers.clear()
        self.knows_retained: bool = False
        """The rows' retain flags are known (the ``mqtt_retained`` column is ``<NA>`` without)."""
        self.has_mqtt: bool = False
        """Some row was published by an MQTT client (frames then have the ``mqtt_*`` columns)."""
        self._stored: int = 0  # rows written or evicted at once (the seq of the first staged row)
        # Rows dropped alone for a payload larger than max_bytes. They get no seq of their own: the rows
        # kept stay one run of seqs, and the caller's count of rows added (rows_added) runs this far ahead.
        self._oversized: int = 0
        self._start: int = 0  # the seq of the oldest row kept
        self._ring_bytes: int = 0
        # Payload bytes that may still be staged before the rows must be written (max_bytes less the
        # bytes kept and staged): one number for the hot path to count down.
        self._room: int = self.max_bytes
        self._errors.clear()
        self._headers.clear()
        self._error_count: int = 0

    # -- adding rows ---------------------------------------------------------------------------------

    def append(
        self,
        subject: str,
        timestamp_ns: int,
        data: bytes,
        headers: Mapping[str, str] | None = None,
        decoder: BatchDecoder | None = None,
    ) -> None:
        """Add one message as a row; it is decoded and written to the columns with the next batch.

        It is what a capture's NATS callback calls for every message, so it does little: rows are
        written once :data:`FLUSH_ROWS` are staged, before the staged payloads exceed what ``max_bytes``
        leaves, and on every read. Rows of a buffer with ``sequence`` get sequence 0 (use :meth:`extend`).

        Args:
            subject: The subject the message arrived on.
            timestamp_ns: When it arrived, in ns since the epoch.
            data: The payload bytes.
            headers: Its NATS headers, if any (a ``Content-Type`` decides how the payload reads, as in
                :func:`fastiot.payloads.decode`).
            decoder: The decoder of the message's subscription (default: the buffer's).

        Example:
            >>> from fastiot.core.serialization import pack
            >>> buffer = ColumnarBuffer(max_rows=10)
            >>> buffer.append("v1.a", 1, pack({"v": 1.5}))
            >>> buffer.append("v1.a", 2, b"7", {"Content-Type": "text/plain"})
            >>> buffer.to_dataframe()[["v", "value"]].values.tolist()
            [[1.5, nan], [nan, '7']]
        """
        staged = self._staged
        if headers:
            self._staged_headers[self._stored + self._oversized + len(staged) // _WIDTH] = headers
        staged.extend((subject, timestamp_ns, data, decoder))
        room = self._room - len(data)
        self._room = room
        if room < 0 or len(staged) >= self._flush_length:
            self.flush()

    def extend(
        self,
        subjects: Sequence[str],
        times: _Ints,
        datas: Sequence[bytes],
        headers: Mapping[int, Mapping[str, str]] | None = None,
        sequences: _Ints | None = None,
    ) -> None:
        r"""Add a batch of messages as rows, decoded (by the buffer's decoder) and written at once.

        Args:
            subjects: The subject of each message.
            times: Their times in ns since the epoch (a list or an int64 array).
            datas: Their payload bytes.
            headers: The NATS headers of the messages that have some, by index in the batch.
            sequences: Their sequence numbers (for a buffer made with ``sequence=True``; else ignored).

        Example:
            >>> buffer = ColumnarBuffer(max_rows=10)
            >>> buffer.extend(["v1.a", "v1.b"], [1, 2], [b"\x01", b"x"])
            >>> buffer.to_dataframe()["value"].tolist()
            [1, 'x']
        """
        if not datas:
            return
        self.flush()  # rows appended before come first
        if headers:
            first = self._stored + self._oversized
            for k, row_headers in headers.items():
                self._staged_headers[first + k] = row_headers
        if self._with_sequence and sequences is None:
            sequences = [0] * len(datas)
        payloads = self._decoder.decode_batch(datas, subjects, headers)
        sequences = sequences if self._with_sequence else None
        self._write_batch(_Rows(subjects, times, payloads, list(map(len, datas)), sequences))

    @property
    def rows_added(self) -> int:
        """Rows added since the buffer was made or cleared, dropped ones included."""
        return self._stored + self._oversized + len(self._staged) // _WIDTH

    @property
    def byte_room(self) -> int:
        """Payload bytes that may be staged before the buffer is over :attr:`max_bytes`."""
        return self.max_bytes - self._ring_bytes

    # -- writing -------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Decode the staged rows and write them into the columns, evicting the oldest beyond the bounds."""
        staged = self._staged
        if not staged:
            return
        subjects, times, datas, decoders = (staged[i::_WIDTH] for i in range(_WIDTH))
        staged.clear()
        payloads = self._decode(datas, subjects, decoders)
        sequences = [0] * len(datas) if self._with_sequence else None
        self._write_batch(_Rows(subjects, times, payloads, list(map(len, datas)), sequences))

    def _decode(
        self, datas: list[bytes], subjects: list[str], decoders: list[BatchDecoder | None]
    ) -> list[Any]:
        """The staged payloads decoded, each by its row's decoder, a batch per decoder."""
        first_added = self._stored + self._oversized
        staged_headers = self._staged_headers
        headers = {seq - first_added: h for seq, h in staged_headers.items()} if staged_headers else None
        decoder = decoders[0]
        if decoders.count(decoder) == len(decoders):  # one subscription, or several taking turns rarely
            return (decoder or self._decoder).decode_batch(datas, subjects, headers)
        payloads: list[Any] = [None] * len(datas)
        groups: dict[int, list[int]] = {}
        by_id: dict[int, BatchDecoder] = {}
        for k, row_decoder in enumerate(decoders):
            key = id(row_decoder)
            groups.setdefault(key, []).append(k)
            by_id[key] = row_decoder or self._decoder
        for key, members in groups.items():
            group_headers = (
                {j: headers[k] for j, k in enumerate(members) if k in headers} if headers else None
            )
            decoded = by_id[key].decode_batch(
                [datas[k] for k in members], [subjects[k] for k in members], group_headers
            )
            for k, payload in zip(members, decoded, strict=True):
                payloads[k] = payload
        return payloads

    def _write_batch(self, rows: _Rows) -> None:
        """Write decoded rows (the next ones after those written) into the columns, within the bounds."""
        first_new = self._stored  # rows before first_new are in the ring (or evicted)
        first_added = first_new + self._oversized  # what the caller counted the first row as
        keep = self._drop_oversized(rows.sizes, rows.payloads) if max(rows.sizes) > self.max_bytes else None
        if keep is not None:
            rows = rows.picked(keep)
        if self._staged_headers:
            self._take_staged_headers(first_added, first_new, keep)
        n = len(rows.payloads)
        self._stored = first_new + n
        skip = self._rows_to_skip(rows.sizes, n)
        seq0 = first_new + skip
        if skip:  # rows that would be evicted at once are never written, only counted
            self._error_count += sum(1 for p in rows.payloads[:skip] if _is_failure(p))
            rows = rows.after(skip)
            n -= skip
            self._evict_to(seq0, first_new)  # every row kept so far is older than the skipped ones
        if n:
            new_bytes = sum(rows.sizes)
            self._evict_to(seq0 + n - self.max_rows, first_new)
            if self._ring_bytes + new_bytes > self.max_bytes:
                self._evict_bytes(self._ring_bytes + new_bytes - self._byte_target, first_new)
            self._write_rows(rows, seq0)
            self._ring_bytes += new_bytes
        self._room = self.max_bytes - self._ring_bytes
        self._prune(self._errors)
        self._prune(self._headers)
        self._payload.housekeep()

    def _drop_oversized(self, sizes: list[int], payloads: list[Any]) -> list[int]:
        """Count the staged rows with a payload larger than ``max_bytes`` as dropped; the others' indexes.

        Such a row can never be kept; dropping it alone keeps the rows before it, which evicting down to
        it would throw away.
        """
        max_bytes = self.max_bytes
        keep = [i for i, size in enumerate(sizes) if size <= max_bytes]
        too_large = [i for i, size in enumerate(sizes) if size > max_bytes]
        before = self._oversized
        self._oversized += len(too_large)
        self._error_count += sum(1 for i in too_large if _is_failure(payloads[i]))
        # A warning for the first, then one per thousand: a stream of them must not flood the log.
        if before == 0 or before // 1_000 != self._oversized // 1_000:
            _logger.warning(
                "%s: a %d byte payload is larger than max_bytes (%d) and was dropped (%d so far)",
                self._name,
                sizes[too_large[-1]],
                max_bytes,
                self._oversized,
            )
        return keep

    def _take_staged_headers(self, first_added: int, first_new: int, keep: list[int] | None) -> None:
        """Move the staged headers to their rows' seqs: the caller's numbers, less the rows dropped before."""
        staged_headers = self._staged_headers
        if not self.has_mqtt:  # once per batch, until the first MQTT message
            self.has_mqtt = any(MQTT_PUBLISH_HEADER in h for h in staged_headers.values())
        if keep is None:
            shift = first_added - first_new
            self._headers.update(
                {seq - shift: h for seq, h in staged_headers.items()} if shift else staged_headers
            )
        else:
            for j, i in enumerate(keep):
                headers = staged_headers.get(first_added + i)
                if headers is not None:
                    self._headers[first_new + j] = headers
        staged_headers.clear()

    def _rows_to_skip(self, sizes: list[int], n: int) -> int:
        """How many of the oldest staged rows cannot be kept: beyond ``max_rows``, or ``max_bytes``.

        No row is larger than ``max_bytes`` (:meth:`_drop_oversized` took those out), so the newest is kept.
        """
        skip = max(0, n - self.max_rows)
        if sum(sizes[skip:]) <= self.max_bytes:
            return skip
        k = n - 1
        kept = sizes[k]
        while k > skip and kept + sizes[k - 1] <= self._byte_target:
            k -= 1
            kept += sizes[k]
        return k

    def _evict_to(self, start: int, ring_stop: int) -> None:
        """Evict the rows before seq ``start``; rows from ``ring_stop`` on are not in the ring yet."""
        if start <= self._start:
            return
        for part in self._slices(self._start, min(start, ring_stop)):
            self._ring_bytes -= int(self._sizes[part].sum())
            self._payload.release(part)
        self._start = start

    def _evict_bytes(self, excess: int, stop: int) -> None:
        """Evict the oldest rows kept (before seq ``stop``) until ``excess`` bytes are freed."""
        sizes = self._take(self._sizes, self._slices(self._start, stop))
        if not len(sizes):
            return
        freed = np.cumsum(sizes)
        count = min(int(np.searchsorted(freed, excess)) + 1, len(sizes))
        self._ring_bytes -= int(freed[count - 1])
        for part in self._slices(self._start, self._start + count):
            self._payload.release(part)
        self._start += count

    def _prune(self, by_seq: dict[int, Any]) -> None:
        # Keyed by seq in arrival order, so the evicted rows are at the front of the dict.
        start = self._start
        while by_seq:
            first = next(iter(by_seq))
            if first >= start:
                break
            del by_seq[first]

    def _write_rows(self, rows: _Rows, seq0: int) -> None:
        subjects, times, payloads, sizes, sequences = rows
        n, max_rows = len(payloads), self.max_rows
        if seq0 + n > self._capacity and self._capacity < max_rows:
            self._grow(min(max_rows, max(self._capacity * 2, seq0 + n)))
        names = self._subject_names
        subjects = list(map(names.setdefault, subjects, subjects))
        if len(names) > _MAX_SUBJECT_NAMES:
            names.clear()
        first = seq0 % max_rows
        parts = (
            [(0, n, first)]
            if first + n <= max_rows
            else [(0, max_rows - first, first), (max_rows - first, n, 0)]
        )
        for lo, hi, slot0 in parts:
            slots = slice(slot0, slot0 + hi - lo)
            self._times[slots] = times[lo:hi]
            self._sizes[slots] = sizes[lo:hi]
            self._subject_values[slots] = subjects[lo:hi]
            if sequences is not None and self._sequences is not None:
                self._sequences[slots] = sequences[lo:hi]
            self._payload.write(payloads[lo:hi], slot0, seq0 + lo)
        for seq, raw, text in self._payload.take_errors():
            self._errors[seq] = (raw, text)
            self._error_count += 1

    def _grow(self, capacity: int) -> None:
        def grown(old: np.ndarray) -> np.ndarray:
            new = np.zeros(capacity, dtype=old.dtype) if old.dtype != object else np.empty(capacity, object)
            new[: self._capacity] = old
            return new

        self._times, self._sizes, self._subject_values = map(
            grown, (self._times, self._sizes, self._subject_values)
        )
        if self._sequences is not None:
            self._sequences = grown(self._sequences)
        self._payload.grow(capacity)
        self._capacity = capacity

    # -- reading -------------------------------------------------------------------------------------

    def __len__(self) -> int:
        start, stop = self.live_range()
        return stop - start

    @property
    def dropped(self) -> int:
        """Rows evicted or dropped, exact.

        Evicted to keep the bounds (``max_rows``, ``max_bytes``), or dropped as larger than ``max_bytes``.
        """
        self.flush()
        return self._start + self._oversized

    @property
    def errors(self) -> int:
        """Rows whose payload did not decode, evicted ones included."""
        self.flush()
        return self._error_count

    @property
    def payload_bytes(self) -> int:
        """Payload bytes of the rows kept and staged (what ``max_bytes`` bounds)."""
        return self.max_bytes - self._room

    @property
    def fields_not_stored(self) -> int:
        """Field values not stored because the payloads had more than ``max_columns`` distinct fields."""
        return self._fields_not_stored_before_clear + self._payload.fields_not_stored

    def live_range(self) -> tuple[int, int]:
        """Write the staged rows and return the seq range ``[start, stop)`` of the rows kept."""
        self.flush()
        return self._start, self._stored

    def column_order(self) -> list[str]:
        """The payload columns (flattened names), in the order frames use."""
        self.flush()
        return self._payload.order()

    def _slices(self, start_seq: int, stop_seq: int) -> list[slice]:
        if stop_seq <= start_seq:
            return []
        max_rows = self.max_rows
        first = start_seq % max_rows
        last = (stop_seq - 1) % max_rows + 1
        if first < last:
            return [slice(first, last)]
        return [slice(first, max_rows), slice(0, last)]

    def _take(self, array: np.ndarray, slices: list[slice]) -> np.ndarray:
        if not slices:
            return array[:0].copy()
        if len(slices) == 1:
            return array[slices[0]].copy()
        return np.concatenate([array[s] for s in slices])

    def times(self) -> np.ndarray:
        """The receive times (ns) of the rows kept, oldest first."""
        return self._take(self._times, self._slices(*self.live_range()))

    def subjects(self) -> list[str]:
        """The distinct subjects of the rows kept, sorted."""
        found: set[str] = set()
        for part in self._slices(*self.live_range()):
            found.update(self._subject_values[part])
        return sorted(found)

    def to_dataframe(self, *, release: bool = False) -> pd.DataFrame:
        """The rows kept, oldest first, as a new DataFrame (see :meth:`MessageCapture.to_dataframe`).

        With ``release`` the buffer is emptied (:meth:`clear`) while the frame is built: each column is
        let go as soon as it is converted, so building needs the buffer plus the frame, not also copies
        of every column (a recording's millions of rows are loaded this way).
        """
        return self.frame(*self.live_range(), release=release)

    def tail(self, n: int = 10) -> pd.DataFrame:
        """The newest ``n`` rows as a DataFrame (only those rows are converted)."""
        start, stop = self.live_range()
        return self.frame(max(start, stop - max(0, n)), stop)

    def frame(self, start_seq: int, stop_seq: int, *, release: bool = False) -> pd.DataFrame:
        """The rows with seq in ``[start_seq, stop_seq)`` (within :meth:`live_range`) as a DataFrame.

        With ``release`` the buffer is emptied while the frame is built (see :meth:`to_dataframe`).
        """
        import pandas as pd

        slices = self._slices(start_seq, stop_seq)
        n = max(0, stop_seq - start_seq)
        # Released columns are handed over as views, not copied: the buffer lets go of them.
        take = _view if release and len(slices) == 1 else self._take
        data: dict[str, Any] = {
            "received_at": pd.array(
                self._take(self._times, slices).view("M8[ns]"), dtype=pd.DatetimeTZDtype("ns", "UTC")
            ),
            "subject": string_array(self._take(self._subject_values, slices)),
        }
        if self._sequences is not None:
            data[SEQUENCE_COLUMN] = take(self._sequences, slices)
        if release:
            self._times = self._subject_values = self._sequences = np.zeros(0, dtype=np.int64)
        for name in self.column_order():
            column = self._payload.columns.pop(name) if release else self._payload.columns[name]
            key = f"payload.{name}" if name in data else name
            data[key] = column_to_pandas(
                column.kind,
                take(column.values, slices),
                None if column.mask is None else take(column.mask, slices),
            )
            del column
        headers = [(seq, h) for seq, h in self._headers.items() if start_seq <= seq < stop_seq]
        if headers:
            values = np.full(n, None, dtype=object)
            for seq, h in headers:
                values[seq - start_seq] = dict(h)
            data[HEADERS_COLUMN if HEADERS_COLUMN not in data else f"_{HEADERS_COLUMN}"] = values
            _add_mqtt_columns(data, headers, start_seq, n, self.knows_retained)
        errors = [
            (seq, raw, text) for seq, (raw, text) in self._errors.items() if start_seq <= seq < stop_seq
        ]
        if errors:
            raws = np.full(n, None, dtype=object)
            texts = np.full(n, None, dtype=object)
            for seq, raw, text in errors:
                raws[seq - start_seq] = raw
                texts[seq - start_seq] = text
            data[RAW_COLUMN if RAW_COLUMN not in data else f"_{RAW_COLUMN}"] = raws
            data[ERROR_COLUMN if ERROR_COLUMN not in data else f"_{ERROR_COLUMN}"] = string_array(texts)
        if release:
            self.clear()
        return pd.DataFrame(data, copy=False)


def _add_mqtt_columns(
    data: dict[str, Any],
    headers: list[tuple[int, Mapping[str, str]]],
    start_seq: int,
    n: int,
    knows_retained: bool,
) -> None:
    """The MQTT topic, QoS and retain flag of rows an MQTT client published (``Nmqtt-Pub`` header).

    The live delivery marks the headers of retained publishes (:class:`RetainedPublishHeaders`) where
    it learns the flag (:attr:`ColumnarBuffer.knows_retained`); else the column is ``<NA>`` (not known).
    """
    from fastiot.mqtt.topics import (
        MQTT_QOS_COLUMN,
        MQTT_RETAINED_COLUMN,
        MQTT_TOPIC_COLUMN,
        RetainedPublishHeaders,
        mqtt_qos,
        subject_to_topic,
    )

    mqtt = [
        (seq - start_seq, mqtt_qos(h), isinstance(h, RetainedPublishHeaders) if knows_retained else None)
        for seq, h in headers
    ]
    mqtt = [row for row in mqtt if row[1] is not None]
    if not mqtt or MQTT_TOPIC_COLUMN in data:
        return
    import pandas as pd

    rows = np.fromiter((row for row, _, _ in mqtt), dtype=np.int64, count=len(mqtt))
    subjects = np.asarray(data["subject"], dtype=object)[rows]  # one conversion, not one lookup per row
    known: dict[str, str] = {}  # devices publish on few topics: each converted once
    topics = np.full(n, None, dtype=object)
    topics[rows] = [known.get(s) or known.setdefault(s, subject_to_topic(s)) for s in subjects]
    qos_values: list[int | None] = [None] * n
    retained: list[bool | None] = [None] * n
    for row, qos, was_retained in mqtt:
        qos_values[row] = qos
        retained[row] = was_retained
    data[MQTT_TOPIC_COLUMN] = string_array(topics)
    data[MQTT_QOS_COLUMN] = pd.array(qos_values, dtype="Int64")
    data[MQTT_RETAINED_COLUMN] = pd.array(retained, dtype="boolean")
