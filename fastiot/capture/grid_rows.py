"""What a DataGrid shows, without a front end: row sources, filters, sorting and cell text.

A :class:`RowSource` holds rows in a default order, each with a stable integer id. The grid asks it
for a window of rows by position (cheap: the default view never converts more than the rows on
screen) or, when the person sorts or filters, for all of them as a DataFrame, which pandas then
filters and sorts. Everything here runs in a plain script and is tested without a browser.

Example:
    >>> import pandas as pd
    >>> from fastiot.capture.grid_rows import FrameSource, filter_mask
    >>> source = FrameSource(pd.DataFrame({"value": [3.0, 21.5, 40.0]}))
    >>> frame, ids = source.frame()
    >>> filter_mask(frame["value"], ">20").tolist()
    [False, True, True]
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from fastiot.capture.buffer import ERROR_COLUMN, RAW_COLUMN
from fastiot.exceptions import GridFilterError
from fastiot.mqtt.topics import MQTT_QOS_COLUMN, MQTT_RETAINED_COLUMN, MQTT_TOPIC_COLUMN

if TYPE_CHECKING:
    from fastiot.capture.message_capture import MessageCapture

__all__ = [
    "MAX_CELL_CHARS",
    "CaptureSource",
    "FrameSource",
    "RowSource",
    "cell_text",
    "column_kind",
    "filter_mask",
    "sort_positions",
]

MAX_CELL_CHARS = 200  # the grid cuts longer cell text (the full value is in the DataFrame)
_MAX_HEX_BYTES = 32
_LEADING = ("received_at", "subject")  # MessageCapture's columns before the payload's
_MQTT_COLUMNS = (
    MQTT_TOPIC_COLUMN,
    MQTT_QOS_COLUMN,
    MQTT_RETAINED_COLUMN,
)  # shown next to the subject once MQTT devices publish
_COMPARISON = re.compile(r"^\s*(>=|<=|!=|==|=|>|<)\s*(.+?)\s*$")
_RANGE = re.compile(r"^\s*(\S+)\s*\.\.\s*(\S+)\s*$")


class RowSource(Protocol):
    """Rows in a default order, each with a stable integer id (a capture's sequence number)."""

    @property
    def version(self) -> tuple[int, int]:
        """Changes whenever the rows change; ``(epoch, n)``, epoch changing when ids are reused."""
        ...

    def row_count(self) -> int:
        """How many rows there are."""
        ...

    def columns(self) -> list[str]:
        """The column names, in order."""
        ...

    def window(self, start: int, stop: int) -> tuple[pd.DataFrame, np.ndarray]:
        """Rows ``[start, stop)`` of the default order and their ids (cost: about ``stop - start``)."""
        ...

    def frame(self) -> tuple[pd.DataFrame, np.ndarray]:
        """Every row in the default order and their ids (for sorting and filtering)."""
        ...

    def position(self, row_id: int) -> int | None:
        """Where the row ``row_id`` is in the default order now; ``None`` if it is gone."""
        ...


class FrameSource:
    """A DataFrame as a row source: its own row order, ids 0..n-1 (by position).

    Args:
        frame: The DataFrame to show.

    Example:
        >>> FrameSource(pd.DataFrame({"a": [1, 2]})).row_count()
        2
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame: pd.DataFrame = frame
        self._epoch: int = 0

    def set_frame(self, frame: pd.DataFrame) -> None:
        """Show ``frame`` instead (ids start again, so the grid forgets what it sent)."""
        self._frame = frame
        self._epoch += 1

    @property
    def version(self) -> tuple[int, int]:
        """Changes whenever the rows may have changed: (frame epoch, row count)."""
        return self._epoch, len(self._frame)

    def row_count(self) -> int:
        """How many rows there are."""
        return len(self._frame)

    def columns(self) -> list[str]:
        """The frame's column names, in order."""
        return [str(c) for c in self._frame.columns]

    def window(self, start: int, stop: int) -> tuple[pd.DataFrame, np.ndarray]:
        """Rows ``[start, stop)`` of the frame and their ids (their positions)."""
        return self._frame.iloc[start:stop], np.arange(start, max(start, min(stop, len(self._frame))))

    def frame(self) -> tuple[pd.DataFrame, np.ndarray]:
        """The whole frame and its ids (positions)."""
        return self._frame, np.arange(len(self._frame))

    def position(self, row_id: int) -> int | None:
        """``row_id`` itself while the frame has that row; ``None`` if not."""
        return row_id if 0 <= row_id < len(self._frame) else None


class CaptureSource:
    """A :class:`~fastiot.capture.MessageCapture`, newest row first.

    A row's id is its sequence number (0 for the first message after start or clear).

    Only the rows asked for are converted: a window near the newest rows costs the window, never the
    whole buffer.

    Args:
        capture: The capture to show.
    """

    def __init__(self, capture: MessageCapture) -> None:
        self.capture: MessageCapture = capture
        self._epoch: int = 0
        self._last_received: int = 0

    def cleared(self) -> None:
        """The capture was cleared: sequence numbers start again at 0, so ids are new."""
        self._epoch += 1

    @property
    def version(self) -> tuple[int, int]:
        """Changes whenever the rows may have changed: (clear epoch, messages received)."""
        received = self.capture.received
        if received < self._last_received:  # cleared without telling us
            self._epoch += 1
        self._last_received = received
        return self._epoch, received

    def row_count(self) -> int:
        """How many rows the capture holds."""
        return len(self.capture)

    def columns(self) -> list[str]:
        """The column names :meth:`MessageCapture.to_dataframe` would give, in order."""
        # The names MessageCapture.to_dataframe() uses, without building a frame: the leading columns, the
        # payload's (prefixed where they clash with a leading one), then raw / error if rows did not decode.
        leading = [*_LEADING, *(_MQTT_COLUMNS if self.capture.has_mqtt else ())]
        names = [*leading, *(f"payload.{c}" if c in leading else c for c in self.capture.columns)]
        if self.capture.errors:  # rows that did not decode add their raw bytes and the reason
            names += [name if name not in names else f"_{name}" for name in (RAW_COLUMN, ERROR_COLUMN)]
        return names

    def _newest_seq(self) -> int:
        return self.capture.received - 1

    def window(self, start: int, stop: int) -> tuple[pd.DataFrame, np.ndarray]:
        """Rows ``[start, stop)``, newest first, and their ids (sequence numbers)."""
        count = len(self.capture)
        start, stop = max(0, start), min(stop, count)
        if stop <= start:
            return self.capture.tail(0), np.zeros(0, dtype=np.int64)
        newest = self._newest_seq()
        # tail(stop) holds rows newest-stop+1 .. newest, oldest first; the window is its first rows reversed.
        frame = self.capture.tail(stop).iloc[: stop - start].iloc[::-1]
        return frame, np.arange(newest - start, newest - stop, -1, dtype=np.int64)

    def frame(self) -> tuple[pd.DataFrame, np.ndarray]:
        """Every row, newest first, and their ids (sequence numbers)."""
        frame = self.capture.to_dataframe()
        newest = self._newest_seq()
        return frame.iloc[::-1], np.arange(newest, newest - len(frame), -1, dtype=np.int64)

    def position(self, row_id: int) -> int | None:
        """Where the message with sequence number ``row_id`` is, newest first; ``None`` if it is gone."""
        at = self._newest_seq() - row_id
        return at if 0 <= at < len(self.capture) else None


# -- cells ------------------------------------------------------------------------------------------


def column_kind(series: pd.Series) -> str:
    """``number``, ``time``, ``bool`` or ``text``: how the grid aligns a column and reads its filter."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "time"
    return "text"


def cell_text(value: Any) -> str:
    r"""One value as a grid cell shows it.

    Missing values are empty, times to the millisecond, bytes as hex, nested values as (depth-limited)
    text, at most :data:`MAX_CELL_CHARS` characters.

    Example:
        >>> cell_text(21.5), cell_text(None), cell_text(b"\x01\xff")
        ('21.5', '', '01 ff')
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, dt.datetime):  # pandas Timestamps too
        return value.strftime("%H:%M:%S.%f")[:-3]
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value[:_MAX_HEX_BYTES])
        return data.hex(" ") + (" …" if len(value) > _MAX_HEX_BYTES else "")
    if isinstance(value, (dict, list, tuple)):
        from fastiot.payloads import to_text  # values nested past a sane depth become serialized text

        text = to_text(value)
    else:
        text = str(value)
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 1] + "…"


def _column_texts(series: pd.Series) -> list[str]:
    """:func:`cell_text` of each value, with quicker paths for the common dtypes (times, floats)."""
    dtype = series.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return series.dt.strftime("%H:%M:%S.%f").str.slice(0, -3).fillna("").tolist()
    if dtype == np.float64:
        return ["" if v != v else f"{v:.6g}" for v in series.to_numpy().tolist()]
    return [cell_text(v) for v in series.tolist()]


def cells(frame: pd.DataFrame, columns: list[str]) -> list[list[str]]:
    """The rows of ``frame`` as lists of cell text, ``columns`` in order (missing columns empty)."""
    if frame.empty:
        return []
    texts = [_column_texts(frame[name]) if name in frame.columns else [""] * len(frame) for name in columns]
    return [list(row) for row in zip(*texts, strict=True)]


# -- filters ----------------------------------------------------------------------------------------


def _as_text(series: pd.Series) -> pd.Series:
    return series.map(lambda v: "" if v is None or v is pd.NA or v is pd.NaT else str(v)).astype(object)


def _bound(series: pd.Series, text: str, column: str) -> Any:
    """``text`` as a value comparable with ``series`` (a number or a UTC time)."""
    kind = column_kind(series)
    if kind == "time":
        try:
            stamp = pd.Timestamp(text)
        except (ValueError, TypeError):
            raise GridFilterError(
                f"{column}: {text!r} is not a time; write e.g. >2024-05-01T12:00 or 12:00..12:05"
            ) from None
        if stamp.tzinfo is None:
            stamp = stamp.tz_localize("UTC")
        return stamp
    try:
        return float(text)
    except ValueError:
        if kind == "number":
            raise GridFilterError(
                f"{column}: {text!r} is not a number; write e.g. >20, <=5, 10..20, or text to search"
            ) from None
        return text


def _compare(series: pd.Series, op: str, bound: Any) -> np.ndarray:
    values = series
    if isinstance(bound, float) and column_kind(series) != "number":
        values = pd.to_numeric(series, errors="coerce")
    elif isinstance(bound, str):
        values = _as_text(series)
    with np.errstate(invalid="ignore"):
        if op in ("=", "=="):
            result = values == bound
        elif op == "!=":
            result = values != bound
        elif op == ">":
            result = values > bound
        elif op == ">=":
            result = values >= bound
        elif op == "<":
            result = values < bound
        else:
            result = values <= bound
    return np.asarray(pd.Series(result).fillna(False), dtype=bool)


def filter_mask(series: pd.Series, text: str, column: str = "") -> np.ndarray:
    """Which values of ``series`` a column filter keeps.

    The filter language: ``>20``, ``>=20``, ``<20``, ``<=20``, ``=20``, ``!=20`` compare by the column's
    type (numbers as numbers, times as times, e.g. ``>2024-05-01T12:00``); ``10..20`` is a range
    (both ends included); anything else matches the cell's text, case-insensitively; a leading ``!``
    keeps what does not match. An empty filter keeps everything.

    Raises:
        GridFilterError: A comparison with a value that is not of the column's type; the message
            shows what to write.

    Example:
        >>> filter_mask(pd.Series(["press_1", "oven_2"]), "PRESS").tolist()
        [True, False]
    """
    text = text.strip()
    if not text:
        return np.ones(len(series), dtype=bool)
    found = _RANGE.match(text)
    if found and column_kind(series) in ("number", "time"):
        low, high = (_bound(series, part, column) for part in found.groups())
        return _compare(series, ">=", low) & _compare(series, "<=", high)
    found = _COMPARISON.match(text)
    if found:
        op, operand = found.groups()
        return _compare(series, op, _bound(series, operand, column))
    negate = text.startswith("!")
    needle = text[1:] if negate else text
    matched = np.asarray(
        _as_text(series).str.contains(needle, case=False, regex=False).fillna(False), dtype=bool
    )
    return ~matched if negate else matched


# -- sorting ----------------------------------------------------------------------------------------


def sort_positions(series: pd.Series, *, descending: bool) -> np.ndarray:
    """Positions that put ``series`` in order; missing values last, ties in their given order.

    Columns of mixed types (e.g. numbers and text from differently shaped payloads) sort by text.
    """
    try:
        ordered = series.reset_index(drop=True).sort_values(
            ascending=not descending, kind="stable", na_position="last"
        )
    except TypeError:
        keys = _as_text(series).reset_index(drop=True)
        missing = series.isna().to_numpy()
        keys[missing] = None
        ordered = keys.sort_values(ascending=not descending, kind="stable", na_position="last")
    return ordered.index.to_numpy()
