"""The one place where recorded messages become DataFrame rows, through the capture's own machinery.

A recording's DataFrame has the columns and the decoding of ``MessageCapture.to_dataframe()`` plus a
``sequence`` column, because it is made by the same code: rows are fed into the columnar ring buffer of
a :class:`~fastiot.capture.MessageCapture` that is never started, and exported by it. The only
difference is ``received_at``: here it is the time the stream stored the message.

(Adapter until the capture package offers its columnar buffer publicly; then this module calls that.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from fastiot import capture as _capture
from fastiot.capture import MessageCapture, decode_payload

if TYPE_CHECKING:
    import pandas as pd

    from fastiot.history._reader import RawBatch

__all__ = ["SEQUENCE_COLUMN", "FrameBuilder", "decode_value"]

SEQUENCE_COLUMN = "sequence"
"""The column with each row's stream sequence, after ``subject``."""

_unpackb = _capture._unpackb
_decode_fallback = _capture._decode_msgpack_or_json


class FrameBuilder:
    """Collects decoded rows of recorded messages and turns them into one DataFrame.

    Args:
        expected_rows: How many rows will come (the buffer is made that big at once); more are refused.

    Example:
        >>> builder = FrameBuilder(0)
        >>> builder.to_dataframe().columns.tolist()
        ['received_at', 'subject', 'sequence']
    """

    def __init__(self, expected_rows: int) -> None:
        self.capacity: int = max(1, expected_rows)
        self._capture: MessageCapture = MessageCapture(">", max_rows=self.capacity)
        if self.capacity > self._capture._capacity:
            self._capture._grow(self.capacity)  # one allocation instead of doubling (and copying) up to it
        self._sequences: list[np.ndarray] = []
        self._rows: int = 0

    def __len__(self) -> int:
        return self._rows

    def add(self, batch: RawBatch) -> None:
        """Decode the rows of ``batch`` (as a capture decodes what it receives) and add them.

        Raises:
            ValueError: More rows than ``expected_rows`` in all.
        """
        n = len(batch)
        if self._rows + n > self.capacity:
            raise ValueError(f"more rows than the {self.capacity} expected")
        capture = self._capture
        stage = capture._staged.extend
        for subject, time_ns, data in zip(batch.subjects, batch.times.tolist(), batch.payloads, strict=True):
            # MessageCapture._on_msg's decoding: msgpack (the wire format) first, else msgpack-or-JSON.
            try:
                payload = _unpackb(data, raw=False, timestamp=3, strict_map_key=False)
            except Exception:
                payload = _decode_fallback(data)
            stage((subject, time_ns, payload))
        capture._received += n
        capture._flush()
        self._sequences.append(batch.sequences)
        self._rows += n

    def to_dataframe(self) -> pd.DataFrame:
        """The rows added so far, in the order they were added, with a ``sequence`` column."""
        frame = self._capture.to_dataframe()
        sequences = np.concatenate(self._sequences) if self._sequences else np.zeros(0, dtype=np.int64)
        frame.insert(2, SEQUENCE_COLUMN, sequences)
        return frame

    def clear(self) -> None:
        """Forget the rows (the buffer stays allocated for the next ones)."""
        self._capture.clear()
        self._sequences.clear()
        self._rows = 0


def decode_value(data: bytes) -> tuple[Any, str | None]:
    """Decode one payload (a key-value value) as captures do: ``(value, None)`` or ``(None, error text)``."""
    return decode_payload(data)
