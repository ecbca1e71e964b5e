"""DataGrid without a browser: sorting, filtering and the window protocol its ES module speaks."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pandas as pd

from fastiot_widgets import DataGrid
from fastiot_widgets.data_grid import MAX_VIEWS, MAX_WINDOW_ROWS

from .grid_view import GridViews


def _frame(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "machine": [f"press_{i % 7}" for i in range(n)],
            "value": [float(i % 100) for i in range(n)],
            "at": pd.date_range("2024-05-01T12:00:00Z", periods=n, freq="s"),
        }
    )


def test_headers_sort_ascending_descending_and_off() -> None:
    grid = DataGrid(pd.DataFrame({"name": ["b", "c", "a"], "value": [2.0, None, 1.0]}))
    assert grid.columns == ["name", "value"]
    assert grid.column_kinds == {"name": "text", "value": "number"}
    grid.sort_column = "value"
    assert grid.rows()["value"].tolist() == ["1", "2", ""], "missing values last"
    grid.sort_descending = True
    assert grid.rows()["value"].tolist() == ["2", "1", ""]
    grid.sort_column = ""
    assert grid.rows()["name"].tolist() == ["b", "c", "a"], "the source's order again"


def test_a_column_of_mixed_types_sorts_by_text() -> None:
    grid = DataGrid(pd.DataFrame({"value": [3, "on", 1.5, None]}, dtype=object))
    grid.sort_column = "value"
    assert grid.rows()["value"].tolist() == ["1.5", "3", "on", ""]


def test_filters_combine_and_a_bad_one_is_named_not_raised() -> None:
    grid = DataGrid(_frame(50))
    grid.filters = {"machine": "press_3", "value": "<20"}
    assert set(grid.rows()["machine"]) == {"press_3"}
    assert all(float(v) < 20 for v in grid.rows()["value"])
    assert grid.row_count == 3 and grid.total_rows == 50 and grid.filter_error == ""
    grid.filters = {"machine": "press_3", "value": "<cold"}
    assert "value: 'cold' is not a number" in grid.filter_error
    assert grid.row_count == 7, "the readable filter still applies"


def test_a_view_gets_only_its_window_and_only_rows_it_lacks() -> None:
    grid = DataGrid(_frame(50_000))
    views = GridViews(grid)
    view = views.view(rows=30)
    first = views.sent[-1]
    assert first["count"] == 50_000 and len(first["ids"]) == 30 and len(first["rows"]) == 30
    assert view.column("value")[:3] == ["0", "1", "2"]

    view.scroll_to(49_980)  # the very end: 20 rows exist there
    assert view.column("value")[-1] == "99" and len(view.shown()) == 20
    assert views.bytes_sent() < 10_000, "two windows, not 50,000 rows"

    view.scroll_to(49_985)  # overlaps what it has: only the rows it lacks travel (none here)
    assert views.sent[-1]["rows"] == []
    sent = len(views.sent)
    view.scroll_to(49_985)
    grid.refresh()
    assert len(views.sent) == sent, "nothing changed, nothing sent"

    too_big = {"type": "window", "view": "view", "start": 0, "stop": 10**9}
    grid._handle_custom_msg(too_big, [])
    assert len(views.sent[-1]["ids"]) == MAX_WINDOW_ROWS


def test_sorting_50000_rows_sends_the_top_of_the_new_order_to_every_view() -> None:
    grid = DataGrid(_frame(50_000))
    views = GridViews(grid)
    top, deep = views.view("top"), views.view("deep")
    deep.scroll_to(20_000)
    grid.sort_column, grid.sort_descending = "value", True
    for view in (top, deep):
        assert view.first == 0 or view.messages[-1]["start"] == 0
        assert view.messages[-1]["reset"] is False
    assert set(top.column("value")) == {"99"}
    grid.filters = {"machine": "press_0"}
    assert grid.row_count == len([i for i in range(50_000) if i % 7 == 0])
    assert set(top.column("machine")) == {"press_0"}


def test_views_are_bounded_and_say_goodbye() -> None:
    grid = DataGrid(_frame(10))
    views = GridViews(grid)
    for i in range(MAX_VIEWS + 3):
        views.view(f"v{i}")
    assert len(grid._views) == MAX_VIEWS
    grid._handle_custom_msg({"type": "bye", "view": f"v{MAX_VIEWS + 2}"}, [])
    assert len(grid._views) == MAX_VIEWS - 1
    grid._handle_custom_msg("not a dict", [])  # ignored


def test_columns_can_be_chosen_and_new_data_resets_the_views() -> None:
    grid = DataGrid(_frame(10))
    views = GridViews(grid)
    view = views.view()
    grid.visible_columns = ["value", "nonexistent", "machine"]
    assert grid.columns == ["value", "machine"]
    assert views.sent[-1]["reset"] and view.shown()[0] == ["0", "press_0"]
    grid.set_data(pd.DataFrame({"x": [1, 2]}))
    assert grid.columns == ["x"] and view.shown() == [["1"], ["2"]]


def _front_end_sets(grid: DataGrid, state: dict[str, Any]) -> None:
    """What the widget manager sends the kernel when the ES module does model.set(...); save_changes()."""
    grid._handle_msg(
        {"content": {"data": {"method": "update", "state": state, "buffer_paths": []}}, "buffers": []}
    )


async def test_messages_handled_on_a_kernel_subshell_thread_are_answered_on_the_grids_loop() -> None:
    """JupyterLab can send widget messages on a kernel subshell, which ipykernel 7 handles on a thread of
    its own. A live source (a capture) changes on the grid's loop only: sorted on the subshell's thread,
    a view got rows under the ids of rows that arrived meanwhile (values out of order, one row twice)."""
    loop, here = asyncio.get_running_loop(), threading.get_ident()
    grid = DataGrid(_frame(100))
    views = GridViews(grid)
    view = views.view(rows=10)
    readers: set[int] = set()
    read_frame = grid.source.frame

    def frame() -> tuple[pd.DataFrame, np.ndarray]:
        readers.add(threading.get_ident())
        return read_frame()

    grid.source.frame = frame  # type: ignore[method-assign]
    senders: set[int] = set()
    sorted_arrived = asyncio.Event()
    record = views._send

    def send(content: dict[str, Any], buffers: Any = None) -> None:
        senders.add(threading.get_ident())
        record(content, buffers)
        if grid.sort_column:
            loop.call_soon_threadsafe(sorted_arrived.set)

    grid.send = send  # type: ignore[method-assign]

    def subshell() -> None:
        async def handle() -> None:  # a subshell runs its handlers on that thread's own loop
            _front_end_sets(grid, {"sort_column": "value", "sort_descending": True})
            window = {"type": "window", "view": view.name, "start": 0, "stop": 10}
            grid._handle_msg({"content": {"data": {"method": "custom", "content": window}}, "buffers": []})

        asyncio.run(handle())

    thread = threading.Thread(target=subshell, name="subshell")
    thread.start()
    await asyncio.wait_for(asyncio.to_thread(thread.join), 10)
    await asyncio.wait_for(sorted_arrived.wait(), 10)
    assert view.column("value") == [str(v) for v in range(99, 89, -1)], "the top of the new order"
    assert readers == {here} and senders == {here}, "the source is read and views answered on its loop only"


def test_column_widths_dragged_in_the_browser_are_kept_and_widths_set_in_code_reach_it() -> None:
    grid = DataGrid(_frame(10))
    states: list[dict[str, Any]] = []
    grid._send = lambda msg, buffers=None: states.append(  # type: ignore[method-assign]
        msg.get("state", {}) if msg.get("method") == "update" else {}  # not the protocol's echo_update
    )

    # A drag on a header's edge ends: data_grid.js sets column_widths and saves it.
    _front_end_sets(grid, {"column_widths": {"value": 140}})
    assert grid.column_widths == {"value": 140}
    # Sorting, filtering, choosing columns and new data keep the width (it belongs to the column's name).
    grid.sort_column = "value"
    grid.filters = {"machine": "press_1"}
    grid.visible_columns = ["value", "machine"]
    grid.set_data(_frame(20))
    assert grid.column_widths == {"value": 140}
    # A view that opens later (the notebook reloaded, the cell shown twice) starts with the widths.
    assert grid.get_state()["column_widths"] == {"value": 140}

    # Set from code: the browser gets the new widths (it applies them as CSS widths of the columns).
    grid.column_widths = {"value": 90, "machine": 200}
    assert states[-1] == {"column_widths": {"value": 90, "machine": 200}}
