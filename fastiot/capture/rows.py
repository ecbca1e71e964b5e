"""PayloadColumns: decoded payloads written into the ring's slots as columns, a batch at a time.

The common batch (every payload a dict with the same keys) is written column by column with numpy;
rows of other shapes are grouped by shape, and what does not fit a group is written row by row,
flattened by :func:`fastiot.payloads.flatten`: nested mappings to paths (``a.b``, ``a["c.d"]``), models
to their fields, anything else to the ``value`` column. Payloads that did not decode become error rows.

Example:
    >>> columns = PayloadColumns(capacity=4, max_columns=10)
    >>> columns.write([{"v": 1.5}, {"v": 2.5}], slot0=0, seq0=0)
    >>> columns.columns["v"].values[:2].tolist()
    [1.5, 2.5]
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pydantic

from fastiot.capture.columns import Column, kind_of
from fastiot.core.logger import setup_logger
from fastiot.payloads import Decoded, error_text, flatten
from fastiot.payloads.paths import VALUE_PATH

__all__ = ["VALUE_COLUMN", "PayloadColumns"]

VALUE_COLUMN = VALUE_PATH
"""The column of a payload that decodes to something other than a mapping (a number, a list, ...)."""

# Column order of Thing messages: what a person reads first comes first.
_THING_COLUMN_ORDER = ("machine", "name", "value", "unit", "timestamp", "measurement_id")
# Fewer rows of one shape than this in a mixed batch are written one by one.
_MIN_GROUP_ROWS = 4
_QUOTED = frozenset('.[]"')

_logger = setup_logger("capture")


@functools.lru_cache(maxsize=1024)
def _field_getter(key: Any) -> Callable[[Any], Any]:
    return operator.itemgetter(key)


def _is_plain_key(key: Any) -> bool:
    """Whether ``key`` is its own column name (a str that needs no quoting in a path)."""
    return type(key) is str and bool(key) and _QUOTED.isdisjoint(key)


class PayloadColumns:
    """The payload fields of a ring's rows, one :class:`Column` each.

    Args:
        capacity: The slots of every column.
        max_columns: The most distinct fields kept; further ones are counted in :attr:`fields_not_stored`.
        name: What the columns belong to, for log lines.
    """

    def __init__(self, capacity: int, max_columns: int, name: str = "capture") -> None:
        self.columns: dict[str, Column] = {}
        self.capacity: int = capacity
        self.max_columns: int = max_columns
        self.name: str = name
        self.fields_not_stored: int = 0
        self.errors: list[tuple[int, bytes, str]] = []
        """Rows written since the last :meth:`take_errors` that did not decode: (seq, raw, why)."""

    def order(self) -> list[str]:
        """The column names, Thing fields first when every one of them is there."""
        names = list(self.columns)
        if all(name in self.columns for name in _THING_COLUMN_ORDER):
            names = list(_THING_COLUMN_ORDER) + [n for n in names if n not in _THING_COLUMN_ORDER]
        return names

    def take_errors(self) -> list[tuple[int, bytes, str]]:
        """The error rows written since the last call."""
        errors, self.errors = self.errors, []
        return errors

    def grow(self, capacity: int) -> None:
        """Give every column ``capacity`` slots."""
        for column in self.columns.values():
            column.grow(capacity)
        self.capacity = capacity

    def release(self, slots: slice) -> None:
        """Let go of the values of evicted rows: a slot keeps its object until overwritten otherwise."""
        for column in self.columns.values():
            if column.values.dtype == object:
                column.values[slots] = None

    def housekeep(self) -> None:
        """Forget interned strings of columns whose values are too varied to be worth it."""
        for column in self.columns.values():
            column.housekeep()

    def write(self, payloads: list[Any], slot0: int, seq0: int) -> None:
        """Write decoded payloads (values or :class:`~fastiot.payloads.Decoded`) into consecutive slots."""
        m = len(payloads)
        first = payloads[0]
        if type(first) is dict and first:
            # The common case: every payload of the batch has the same fields.
            keys = tuple(first)
            try:
                # Non-dicts fail len() or the getters. One list per field: per-row tuples would each
                # cost the garbage collector a visit.
                uniform = set(map(len, payloads)) == {len(keys)}
                columns_values = [list(map(_field_getter(key), payloads)) for key in keys] if uniform else []
            except (KeyError, TypeError, IndexError):
                uniform = False
            if uniform:
                if not self._write_group(
                    keys, columns_values, slice(slot0, slot0 + m), range(slot0, slot0 + m)
                ):
                    for k, payload in enumerate(payloads):
                        self._store_row(payload, slot0 + k, seq0 + k)
                return
        self._write_mixed(payloads, slot0, seq0)

    def _write_mixed(self, payloads: Sequence[Any], slot0: int, seq0: int) -> None:
        groups: dict[tuple[Any, ...], list[int]] = {}
        singles: list[int] = []
        for k, payload in enumerate(payloads):
            if type(payload) is dict and payload:
                groups.setdefault(tuple(payload), []).append(k)
            else:
                singles.append(k)
        for keys, members in groups.items():
            group = [payloads[k] for k in members]
            slot_list = [slot0 + k for k in members]
            if len(members) < _MIN_GROUP_ROWS or not self._write_group(
                keys, [list(map(_field_getter(key), group)) for key in keys], np.array(slot_list), slot_list
            ):
                singles.extend(members)
        for k in sorted(singles):
            self._store_row(payloads[k], slot0 + k, seq0 + k)

    def _write_group(
        self,
        keys: tuple[Any, ...],
        columns_values: list[list[Any]],
        slots: slice | np.ndarray,
        slot_list: Sequence[int],
    ) -> bool:
        """Write rows that share their fields column by column; ``False`` if the rows need the slow path.

        Columns written before a ``False`` are overwritten by the slow path, which writes whole rows.
        """
        if not all(map(_is_plain_key, keys)):
            return False
        columns = self.columns
        for key, values in zip(keys, columns_values, strict=True):
            column = columns.get(key)
            if column is not None and column.store_many(slots, values):
                continue
            types = set(map(type, values))
            if dict in types or any(issubclass(t, pydantic.BaseModel) for t in types):
                return False  # nested payloads are flattened row by row
            for slot, value in zip(slot_list, values, strict=True):
                self._store(key, value, slot)
        if len(columns) != len(keys):
            present = set(keys)
            for name, column in columns.items():
                if name not in present:
                    column.set_missing(slots)
        return True

    def _store_row(self, payload: Any, i: int, seq: int) -> None:
        original = payload
        try:
            if type(payload) is Decoded:
                if payload.error is not None:
                    self._store_error(i, seq, payload.value, payload.error)
                    return
                payload = payload.value
            flat = flatten(payload)  # the paths the subject browser and diffs name, as column names
            for name, value in flat.items():
                self._store(name, value, i)
            for name, column in self.columns.items():
                if name not in flat:
                    column.set_missing(i)
        except Exception as e:  # a bug here must cost one row, not the capture
            data = original.value if type(original) is Decoded and isinstance(original.value, bytes) else b""
            self._store_error(i, seq, data, f"could not store the decoded payload: {error_text(e)}")

    def _store(self, name: str, value: Any, i: int) -> None:
        """Store the value of one field (never a mapping: :func:`~fastiot.payloads.flatten` made paths)."""
        column = self.columns.get(name)
        if column is None:
            if value is None:
                return  # a column is made when its first value comes; until then it is missing anyway
            if len(self.columns) >= self.max_columns:
                if self.fields_not_stored == 0:
                    _logger.warning(
                        "%s: more than %d distinct payload fields; further fields are not stored "
                        "(raise max_columns to keep them)",
                        self.name,
                        self.max_columns,
                    )
                self.fields_not_stored += 1
                return
            column = self.columns[name] = Column(name, self.capacity, kind_of(value))
        column.store(i, value)

    def _store_error(self, i: int, seq: int, data: bytes, text: str) -> None:
        for column in self.columns.values():
            column.set_missing(i)
        self.errors.append((seq, bytes(data), text))
