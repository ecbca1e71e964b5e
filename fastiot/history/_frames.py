"""The one place where recorded messages become DataFrame rows: the capture's columnar buffer.

A recording's DataFrame has the columns and the decoding of ``MessageCapture.to_dataframe()`` plus a
``sequence`` column, because it is made by the same code: rows go into a
:class:`~fastiot.capture.ColumnarBuffer` (with ``sequence=True``) through its batch writer, decoded by
the decoder a capture on ``>`` uses (a :class:`fastiot.payloads.BatchDecoder`, which reads a message's
headers as :func:`fastiot.payloads.decode` does), and the buffer exports them. The only difference is
``received_at``: here it is the time the stream stored the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastiot.capture import ColumnarBuffer
from fastiot.payloads import BatchDecoder, decode

if TYPE_CHECKING:
    import pandas as pd

    from fastiot.history._consumers import RawBatch

__all__ = ["SEQUENCE_COLUMN", "FrameBuilder", "decode_value"]

SEQUENCE_COLUMN = "sequence"
"""The column with each row's stream sequence, after ``subject``."""

# A recording is loaded whole: the buffer's bound in bytes must not evict any of it.
_NO_BYTE_LIMIT = 2**62


class FrameBuilder:
    """Collects recorded messages, a batch at a time, and turns them into one DataFrame.

    Args:
        expected_rows: How many rows will come (the buffer keeps at most that many).

    Example:
        >>> FrameBuilder(0).to_dataframe().columns.tolist()
        ['received_at', 'subject', 'sequence']
    """

    def __init__(self, expected_rows: int) -> None:
        self.capacity: int = max(1, expected_rows)
        # Decoded as a capture on ">" decodes (fields=True: a model a registered decoder gives is columns).
        self._buffer: ColumnarBuffer = ColumnarBuffer(
            self.capacity,
            max_bytes=_NO_BYTE_LIMIT,
            sequence=True,
            decoder=BatchDecoder(fields=True),
            name="recording",
        )

    def __len__(self) -> int:
        return self._buffer.rows_added

    def add(self, batch: RawBatch, headers: Mapping[int, Mapping[str, str]] | None = None) -> None:
        """Decode the rows of ``batch`` and add them (``headers``: parsed NATS headers by row index).

        Raises:
            ValueError: More rows than ``expected_rows`` in all.
        """
        n = len(batch)
        if self._buffer.rows_added + n > self.capacity:
            raise ValueError(f"more rows than the {self.capacity} expected")
        self._buffer.extend(batch.subjects, batch.times, batch.payloads, headers, batch.sequences)

    def to_dataframe(self) -> pd.DataFrame:
        """The rows added, in the order they were added.

        The builder is emptied: each column of the buffer is let go once converted, so a load needs the buffer
        plus the frame, not copies too.
        """
        return self._buffer.to_dataframe(release=True)


def decode_value(data: bytes, subject: str | None = None) -> tuple[Any, str | None]:
    """Decode one payload (a key-value value) as every view does: ``(value, None)`` or ``(None, error)``."""
    decoded = decode(data, subject=subject)
    return (decoded.value, None) if decoded.error is None else (None, decoded.error)
