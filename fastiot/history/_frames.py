"""The one place where recorded messages become DataFrame rows, through the capture's own machinery.

A recording's DataFrame has the columns and the decoding of ``MessageCapture.to_dataframe()`` plus a
``sequence`` column, because it is made by the same code: rows are fed into the columnar ring buffer of
a :class:`~fastiot.capture.MessageCapture` that is never started, and exported by it. The only
difference is ``received_at``: here it is the time the stream stored the message.

(Adapter until the capture package offers its columnar buffer publicly; then this module calls that.)
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np

from fastiot import capture as _capture
from fastiot.capture import MessageCapture, decode_payload

if TYPE_CHECKING:
    import pandas as pd

    from fastiot.history._consumers import RawBatch

__all__ = ["SEQUENCE_COLUMN", "FrameBuilder", "decode_value"]

SEQUENCE_COLUMN = "sequence"
"""The column with each row's stream sequence, after ``subject``."""

_unpackb = _capture._unpackb
_decode_fallback = _capture._decode_msgpack_or_json
_unpack = functools.partial(_unpackb, raw=False, timestamp=3, strict_map_key=False)


def _decode_one(data: bytes) -> Any:
    try:
        return _unpack(data)
    except Exception:
        return _decode_fallback(data)


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
        # MessageCapture._on_msg's decoding: msgpack (the wire format) first, else msgpack-or-JSON.
        try:
            payloads = list(map(_unpack, batch.payloads))
        except Exception:  # a payload that is not msgpack: the batch again, one payload at a time
            payloads = [_decode_one(data) for data in batch.payloads]
        # The capture's staging area holds subject, time, payload per row, flat.
        staged: list[Any] = [None] * (3 * n)
        staged[0::3] = batch.subjects
        staged[1::3] = batch.times.tolist()
        staged[2::3] = payloads
        capture._staged.extend(staged)
        capture._received += n
        capture._flush()
        self._sequences.append(batch.sequences)
        self._rows += n

    def to_dataframe(self) -> pd.DataFrame:
        """The rows added so far, in the order they were added, with a ``sequence`` column.

        The builder is used up: each column of the buffer is released as soon as it is converted, so a
        load needs the buffer plus the DataFrame at most, not the buffer, the DataFrame and copies of both
        (MessageCapture._frame's conversions, done column by column).
        """
        import pandas as pd

        capture = self._capture
        capture._flush()
        n = self._rows
        data: dict[str, Any] = {
            "received_at": pd.array(
                capture._times[:n].view("M8[ns]"), dtype=pd.DatetimeTZDtype("ns", "UTC"), copy=True
            ),
            "subject": _capture.string_array(capture._subject_values[:n]),
            SEQUENCE_COLUMN: np.concatenate(self._sequences) if self._sequences else np.zeros(0, np.int64),
        }
        capture._times = capture._subject_values = np.zeros(0, dtype=np.int64)
        self._sequences.clear()
        for name in capture._column_order():
            column = capture._columns.pop(name)
            key = f"payload.{name}" if name in _capture._META_COLUMNS else name
            mask = None if column.mask is None else column.mask[:n]
            data[key] = _capture._column_to_pandas(column.kind, column.values[:n], mask)
            del column
        errors = [(seq, raw, text) for seq, (raw, text) in capture._errors.items() if seq < n]
        if errors:
            raws = np.full(n, None, dtype=object)
            texts = np.full(n, None, dtype=object)
            for seq, raw, text in errors:
                raws[seq], texts[seq] = raw, text
            data[_capture.RAW_COLUMN if _capture.RAW_COLUMN not in data else f"_{_capture.RAW_COLUMN}"] = raws
            error_name = (
                _capture.ERROR_COLUMN if _capture.ERROR_COLUMN not in data else f"_{_capture.ERROR_COLUMN}"
            )
            data[error_name] = _capture.string_array(texts)
        self._rows = 0
        return pd.DataFrame(data, copy=False)


def decode_value(data: bytes) -> tuple[Any, str | None]:
    """Decode one payload (a key-value value) as captures do: ``(value, None)`` or ``(None, error text)``."""
    return decode_payload(data)
