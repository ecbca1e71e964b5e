"""The one place where recorded messages become DataFrame rows: the capture's columnar buffer.

A recording's DataFrame has the columns and the decoding of ``MessageCapture.to_dataframe()`` plus a
``sequence`` column, because it is made by the same code: rows go into a
:class:`~fastiot.capture.ColumnarBuffer` (with ``sequence=True``), decoded by the decoder a capture
on ``>`` uses (:func:`fastiot.payloads.value_decoder`, which reads a message's headers as
:func:`fastiot.payloads.decode` does), and the buffer exports them. The only difference is
``received_at``: here it is the time the stream stored the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastiot.capture import ColumnarBuffer
from fastiot.core.serialization import unpackb
from fastiot.payloads import decode, value_decoder
from fastiot.payloads.decoding import is_msgpack_first

if TYPE_CHECKING:
    import pandas as pd

    from fastiot.history._consumers import RawBatch

__all__ = ["SEQUENCE_COLUMN", "FrameBuilder", "decode_value"]

SEQUENCE_COLUMN = "sequence"
"""The column with each row's stream sequence, after ``subject``."""

# A recording is loaded whole: the buffer's bound in bytes must not evict any of it.
_NO_BYTE_LIMIT = 2**62


class FrameBuilder:
    """Collects decoded rows of recorded messages and turns them into one DataFrame.

    Args:
        expected_rows: How many rows will come (the buffer keeps at most that many).

    Example:
        >>> FrameBuilder(0).to_dataframe().columns.tolist()
        ['received_at', 'subject', 'sequence']
    """

    def __init__(self, expected_rows: int) -> None:
        self.capacity: int = max(1, expected_rows)
        self._buffer: ColumnarBuffer = ColumnarBuffer(
            self.capacity, max_bytes=_NO_BYTE_LIMIT, sequence=True, name="recording"
        )
        self._decode = value_decoder(None, fields=True)
        self._msgpack_first: bool = is_msgpack_first(self._decode)

    def __len__(self) -> int:
        return self._buffer.rows_added

    def _payloads(self, batch: RawBatch) -> list[Any]:
        datas, decode_one = batch.payloads, self._decode
        if not self._msgpack_first:
            return list(map(decode_one, datas, batch.subjects))
        # What a capture's callback does per message (msgpack inline, the decoder for the rest),
        # for a whole batch at once.
        try:
            payloads = list(map(unpackb, datas))
        except Exception:
            payloads = [
                _decode_msgpack_first(decode_one, data, subject)
                for data, subject in zip(datas, batch.subjects, strict=True)
            ]
        for k, data in enumerate(datas):
            if len(data) == 1 and type(payloads[k]) is int:
                payloads[k] = decode_one(data, batch.subjects[k])  # text, e.g. `nats pub subject 5`
        return payloads

    def add(self, batch: RawBatch, headers: Mapping[int, Mapping[str, str]] | None = None) -> None:
        """Decode the rows of ``batch`` and add them (``headers``: parsed NATS headers by row index).

        Raises:
            ValueError: More rows than ``expected_rows`` in all.
        """
        n = len(batch)
        buffer = self._buffer
        first = buffer.rows_added
        if first + n > self.capacity:
            raise ValueError(f"more rows than the {self.capacity} expected")
        # The buffer's staging area, flat: subject, time, payload, size, sequence per row.
        staged: list[Any] = [None] * (5 * n)
        staged[0::5] = batch.subjects
        staged[1::5] = batch.times.tolist()
        payloads = self._payloads(batch)
        for k, row_headers in (headers or {}).items():
            # A Content-Type decides how the payload reads, as in a capture and fastiot.payloads.decode.
            payloads[k] = self._decode(batch.payloads[k], batch.subjects[k], row_headers)
            buffer.staged_headers[first + k] = row_headers
        staged[2::5] = payloads
        staged[3::5] = list(map(len, batch.payloads))
        staged[4::5] = batch.sequences.tolist()
        buffer.staged.extend(staged)
        buffer.flush()

    def to_dataframe(self) -> pd.DataFrame:
        """The rows added, in the order they were added.

        The builder is emptied: each column of the buffer is let go once converted, so a load needs the buffer
        plus the frame, not copies too.
        """
        return self._buffer.to_dataframe(release=True)


def _decode_msgpack_first(decode_one: Any, data: bytes, subject: str) -> Any:
    try:
        return unpackb(data)
    except Exception:
        return decode_one(data, subject)


def decode_value(data: bytes, subject: str | None = None) -> tuple[Any, str | None]:
    """Decode one payload (a key-value value) as every view does: ``(value, None)`` or ``(None, error)``."""
    decoded = decode(data, subject=subject)
    return (decoded.value, None) if decoded.error is None else (None, decoded.error)
