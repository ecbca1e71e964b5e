"""The pandas side of the columnar buffer: column arrays -> pandas arrays, and DataFrames -> CSV / Parquet.

pandas is imported only when a frame is built, so importing a capture stays cheap.

Example:
    >>> import numpy as np
    >>> list(string_array(np.array(["a", None], dtype=object)))
    ['a', nan]
"""

from __future__ import annotations

import math
from datetime import timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fastiot.exceptions import ParquetUnavailableError
from fastiot.payloads import to_text

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RAW_COLUMNS", "column_to_pandas", "string_array", "write_csv", "write_parquet"]

RAW_COLUMNS = ("raw", "_raw")
"""The names the column of undecoded bytes may have (``_raw`` when a payload field is named ``raw``)."""


def string_array(values: Any) -> Any:
    """A pandas text array in which missing values stay missing (never the text ``'None'``).

    pandas 3 does this for ``dtype="str"``; pandas 2 would turn ``None`` into ``'None'`` there, so
    it gets its nullable ``StringDtype`` instead.
    """
    import pandas as pd

    if int(pd.__version__.split(".", 1)[0]) >= 3:
        return pd.array(values, dtype="str")
    return pd.array(values, dtype=pd.StringDtype())


def column_to_pandas(kind: str, values: np.ndarray, mask: np.ndarray | None) -> Any:
    """Convert a copy of one column's rows to a pandas-ready array of the column's dtype."""
    import pandas as pd

    if kind in ("int", "bool") and mask is not None:
        if not mask.any():
            return values
        if kind == "int":
            return pd.arrays.IntegerArray(values, mask)
        return pd.arrays.BooleanArray(values, mask)
    if kind == "str":
        return string_array(values)
    if kind == "datetime":
        return _datetimes_to_pandas(values)
    return values


def _datetimes_to_pandas(values: np.ndarray) -> Any:
    import pandas as pd

    try:
        index = pd.DatetimeIndex(values)
    except (TypeError, ValueError):
        # Mixed time zones or naive values: fastiot treats naive datetimes as UTC.
        index = pd.to_datetime(
            [
                v if v is None or getattr(v, "tzinfo", None) is not None else v.replace(tzinfo=timezone.utc)
                for v in values
            ],
            utc=True,
        )
    if index.tz is None:
        index = index.tz_localize("UTC")
    elif str(index.tz) != "UTC":
        index = index.tz_convert("UTC")
    return index.as_unit("ns").array


def _text_or_none(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return to_text(value)


def write_csv(frame: pd.DataFrame, path: str | Path, **kwargs: Any) -> Path:
    """Write a capture's frame to CSV: no index, raw bytes as hex, datetimes ISO 8601 UTC."""
    for name in RAW_COLUMNS:
        if name in frame.columns and frame[name].dtype == object:
            frame[name] = frame[name].map(lambda v: v.hex() if isinstance(v, bytes) else v)
    kwargs.setdefault("index", False)
    frame.to_csv(path, **kwargs)
    return Path(path)


def write_parquet(frame: pd.DataFrame, path: str | Path, **kwargs: Any) -> Path:
    """Write a capture's frame to Parquet; object columns Parquet cannot hold as they are become text.

    Raises:
        ParquetUnavailableError: If pyarrow is not installed.
    """
    try:
        import pyarrow as pa
    except ImportError as e:
        raise ParquetUnavailableError(
            "exporting Parquet needs pyarrow: pip install 'fastiot-workbench[parquet]' "
            "(or use to_csv(), which needs nothing extra)"
        ) from e
    for name in frame.columns:
        if frame[name].dtype == object:
            try:
                pa.array(frame[name], from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                frame[name] = frame[name].map(_text_or_none)
    kwargs.setdefault("index", False)
    kwargs.setdefault("engine", "pyarrow")
    frame.to_parquet(path, **kwargs)
    return Path(path)
