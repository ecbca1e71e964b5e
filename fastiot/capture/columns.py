"""One payload field of the columnar ring buffer: a preallocated numpy array that changes kind as needed.

Example:
    >>> column = Column("value", capacity=4, kind=kind_of(1.5))
    >>> column.store(0, 1.5)
    >>> column.kind, float(column.values[0])
    ('float', 1.5)
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import numpy as np
import pydantic

from fastiot.payloads import limit_depth

__all__ = ["Column", "kind_of"]

# Low-cardinality strings (machine names, units) are stored once; a column whose distinct values
# exceed this is not worth deduplicating and its cache is reset.
_MAX_INTERNED_STRINGS = 16_384
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_FLOAT_EXACT_INT = 2**53
_SEQUENCES = (list, tuple)
# The one Python type a batch of a typed column must have to be stored as it is.
_KIND_TYPES: dict[str, type] = {"float": float, "int": int, "bool": bool, "datetime": datetime}


def kind_of(value: Any) -> str:
    """The column kind a first value asks for: float, int, bool, str, datetime or object."""
    t = type(value)
    if t is float:
        return "float"
    if t is bool:
        return "bool"
    if t is int:
        return "int" if _INT64_MIN <= value <= _INT64_MAX else "object"
    if t is str:
        return "str"
    if isinstance(value, datetime):
        return "datetime"
    return "object"


class Column:
    """One payload field in the ring buffer: a preallocated array plus what is needed to read it back.

    Kinds: ``float`` / ``int`` / ``bool`` (numpy arrays; int and bool with a mask of missing rows),
    ``str`` (an object array of deduplicated strings), ``datetime`` (an object array of datetimes,
    converted to ``datetime64[ns, UTC]`` when a DataFrame is built) and ``object`` (anything else;
    lists nested deeper than :data:`fastiot.payloads.DEFAULT_MAX_DEPTH` are kept as text).
    A slot that was never written reads back as missing (NaN, None or masked), so a column that
    appears late needs no back-filling. ``slots`` arguments are an int, a slice or an index array.

    Args:
        name: The payload field (its flattened path).
        capacity: Rows preallocated; :meth:`grow` makes room for more.
        kind: The column's kind to start with (see above).
    """

    __slots__ = ("kind", "mask", "name", "strings", "values")

    def __init__(self, name: str, capacity: int, kind: str) -> None:
        self.name: str = name
        self.kind: str = kind
        self.mask: np.ndarray | None = None  # True where an int/bool row is missing
        self.strings: dict[str, str] | None = {} if kind == "str" else None
        if kind == "float":
            self.values: np.ndarray = np.full(capacity, np.nan)
        elif kind in ("int", "bool"):
            self.values = np.zeros(capacity, dtype=np.int64 if kind == "int" else np.bool_)
            self.mask = np.ones(capacity, dtype=np.bool_)
        else:
            self.values = np.empty(capacity, dtype=object)

    def _to_float(self) -> None:
        values = self.values.astype(np.float64)
        if self.mask is not None:
            values[self.mask] = np.nan
        self.values, self.mask, self.kind = values, None, "float"

    def _to_object(self) -> None:
        values = self.values.astype(object)
        if self.mask is not None:
            values[self.mask] = None
        self.values, self.mask, self.kind, self.strings = values, None, "object", None

    def store(self, i: int, value: Any) -> None:
        """Store one value in slot ``i``, changing the column's kind if the value does not fit it."""
        if value is None:
            self.set_missing(i)
            return
        kind = self.kind
        t = type(value)
        if kind == "float":
            if t is int and -_FLOAT_EXACT_INT <= value <= _FLOAT_EXACT_INT:
                self.values[i] = value
                return
            if t is not float:
                self._to_object()
        elif kind == "int":
            if t is float:
                self._to_float()
            elif t is not int or not _INT64_MIN <= value <= _INT64_MAX:
                self._to_object()
        elif kind == "bool":
            if t is not bool:
                self._to_object()
        elif kind == "str":
            if t is not str:
                self._to_object()
        elif kind == "datetime" and not isinstance(value, datetime):
            self._to_object()
        if t in _SEQUENCES:
            value = limit_depth(value)  # deeper lists would break reprs and exports (RecursionError)
        strings = self.strings
        if strings is not None:
            value = strings.setdefault(value, value)
        self.values[i] = value
        if self.mask is not None:
            self.mask[i] = False

    def store_many(self, slots: slice | np.ndarray, values: list[Any]) -> bool:
        """Store a batch of values if all fit the column as it is; ``False`` (nothing stored) if not."""
        kind = self.kind
        if kind == "str":
            # No type check needed when every value is a string seen before: only a str equals a str key.
            strings = self.strings
            assert strings is not None
            known = len(strings)
            try:
                canonical = list(map(strings.setdefault, values, values))
            except TypeError:  # an unhashable value, e.g. a list
                canonical = None
            if len(strings) != known:
                added = list(itertools.islice(reversed(strings), len(strings) - known))
                foreign = [key for key in added if type(key) is not str]
                for key in foreign:
                    del strings[key]
                if foreign:
                    return False
            if canonical is None:
                return False
            self.values[slots] = canonical
            return True
        types = set(map(type, values))
        if len(types) != 1:
            return False
        (t,) = types
        kind_type = _KIND_TYPES.get(kind)
        if kind_type is not None and t is not kind_type:
            return False
        if kind == "int":
            try:
                self.values[slots] = np.array(values, dtype=np.int64)
            except OverflowError:
                return False
        elif kind == "datetime":
            # fromiter: numpy would inspect every object of a plain assignment for nested sequences
            self.values[slots] = np.fromiter(values, dtype=object, count=len(values))
        elif kind_type is not None:  # float, bool: numpy converts the list as it is
            self.values[slots] = values
        else:
            if t is type(None) or t is dict or issubclass(t, pydantic.BaseModel):
                return False
            if t in _SEQUENCES:
                values = [limit_depth(v) for v in values]
            # fromiter also keeps lists and tuples as single values instead of a second array dimension
            self.values[slots] = np.fromiter(values, dtype=object, count=len(values))
        if self.mask is not None:
            self.mask[slots] = False
        return True

    def set_missing(self, slots: int | slice | np.ndarray) -> None:
        """Mark ``slots`` as missing (NaN in a float column, masked or None otherwise)."""
        if self.kind == "float":
            self.values[slots] = np.nan
        elif self.mask is not None:
            self.mask[slots] = True
        else:
            self.values[slots] = None

    def grow(self, capacity: int) -> None:
        """Make room for ``capacity`` rows, keeping the stored ones (new slots are missing)."""
        old = self.values
        if self.kind == "float":
            values = np.full(capacity, np.nan)
        elif self.mask is not None:
            values = np.zeros(capacity, dtype=old.dtype)
            mask = np.ones(capacity, dtype=np.bool_)
            mask[: len(self.mask)] = self.mask
            self.mask = mask
        else:
            values = np.empty(capacity, dtype=object)
        values[: len(old)] = old
        self.values = values

    def housekeep(self) -> None:
        """Forget the interned strings once there are too many of them."""
        if self.strings is not None and len(self.strings) > _MAX_INTERNED_STRINGS:
            self.strings.clear()
