"""The grid rows model without any widget: the column filter language, sorting and cell text.

What a DataGrid shows comes from :mod:`fastiot.capture.grid_rows`; a script filters and sorts a
DataFrame with the same rules.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fastiot.capture.grid_rows import FrameSource, cell_text, column_kind, filter_mask, sort_positions
from fastiot.exceptions import GridFilterError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (">20", [25.0, 30.0]),
        (">=20", [20.0, 25.0, 30.0]),
        ("<=5", [5.0]),
        ("!=20", [5.0, 25.0, 30.0]),
        ("=25", [25.0]),
        ("20..25", [20.0, 25.0]),
        ("", [5.0, 20.0, 25.0, 30.0]),
        ("3", [30.0]),  # plain text searches the cell's text
    ],
)
def test_filter_language_on_numbers(text: str, expected: list[float]) -> None:
    series = pd.Series([5.0, 20.0, 25.0, 30.0])
    assert series[filter_mask(series, text)].tolist() == expected


def test_filter_language_on_text_and_times() -> None:
    names = pd.Series(["press_1", "Oven_2", None, "press_3"])
    assert filter_mask(names, "PRESS").tolist() == [True, False, False, True]
    assert filter_mask(names, "!press").tolist() == [False, True, True, False]
    times = pd.Series(pd.date_range("2024-05-01T12:00:00Z", periods=4, freq="min"))
    assert filter_mask(times, ">2024-05-01T12:01").tolist() == [False, False, True, True]
    assert filter_mask(times, "2024-05-01T12:01..2024-05-01T12:02").tolist() == [False, True, True, False]
    with pytest.raises(GridFilterError, match=r"not a number; write e\.g\. >20"):
        filter_mask(pd.Series([1.0]), ">warm", "value")
    with pytest.raises(GridFilterError, match="not a time"):
        filter_mask(times, ">soon", "at")


def test_cells_are_short_text() -> None:
    assert cell_text(np.float64(1 / 3)) == "0.333333"
    assert cell_text(pd.Timestamp("2024-05-01T12:00:00.123456Z")) == "12:00:00.123"
    assert cell_text(pd.NaT) == "" and cell_text(float("nan")) == ""
    assert cell_text(bytes(range(40))).endswith(" …")
    assert len(cell_text("x" * 1_000)) == 200
    assert json.loads(cell_text({"a": [1, 2]})) == {"a": [1, 2]}


def test_sorting_puts_missing_values_last_and_keeps_ties_in_order() -> None:
    series = pd.Series([2.0, None, 1.0, 2.0], index=[10, 11, 12, 13])
    assert sort_positions(series, descending=False).tolist() == [2, 0, 3, 1]
    assert sort_positions(series, descending=True).tolist() == [0, 3, 2, 1]
    mixed = pd.Series([3, "on", 1.5, None], dtype=object)
    assert sort_positions(mixed, descending=False).tolist() == [2, 0, 1, 3], "mixed types sort as text"


def test_a_frame_source_pages_a_frame_by_position() -> None:
    frame = pd.DataFrame({"value": [1.0, 2.0, 3.0], "at": pd.date_range("2024-05-01", periods=3, freq="s")})
    source = FrameSource(frame)
    window, ids = source.window(1, 10)
    assert window["value"].tolist() == [2.0, 3.0] and ids.tolist() == [1, 2]
    assert source.position(2) == 2 and source.position(3) is None
    assert [column_kind(frame[c]) for c in source.columns()] == ["number", "time"]
    before = source.version
    source.set_frame(frame.iloc[:1])
    assert source.version != before and source.row_count() == 1
