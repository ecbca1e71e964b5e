"""DataGrid: a virtualized data grid (anywidget) whose rows come from Python in windows.

The browser draws only the rows on screen. It tells the kernel which rows it shows (a window of
positions), and the kernel answers with those rows only, as cell text, leaving out the rows that view
already has. Sorting and filtering run in the kernel with pandas, so the browser never holds the data
and what goes over the comm is bounded by the window, however many rows there are.

A person clicks a header to sort (ascending, descending, off), types in the filter box under a header
(``>20``, ``10..20``, ``!idle``, text; see :func:`~fastiot.capture.grid_rows.filter_mask`), drags a
header's right edge to resize the column, and clicks a row to select it.

Live data: :meth:`DataGrid.refresh` re-reads the source and sends each view only what changed in
its window. While a view is scrolled away from the top, the rows it shows stay in place (the view
is told how many rows arrived above them). Sorting or filtering a large, changing source costs a
full pass over its rows, so such a view refreshes at most once per :attr:`DataGrid.min_sort_interval`
seconds, and less often if a pass takes long (at most about 5 % of the loop's time).

Example:
    >>> import pandas as pd
    >>> from fastiot_widgets import DataGrid
    >>> grid = DataGrid(pd.DataFrame({"machine": ["press_1", "oven_2"], "value": [21.5, 180.0]}))
    >>> grid.sort_column, grid.sort_descending = "value", True
    >>> grid.rows(0, 1)["machine"].tolist()
    ['oven_2']
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import anywidget
import numpy as np
import pandas as pd
import traitlets

from fastiot.capture.grid_rows import FrameSource, RowSource, cells, column_kind, filter_mask, sort_positions
from fastiot.exceptions import GridFilterError

from ._common import front_end_file
from ._loop_bound import LoopBound

__all__ = ["DEFAULT_GRID_HEIGHT", "MAX_VIEWS", "MAX_WINDOW_ROWS", "DataGrid"]

MAX_WINDOW_ROWS = 300  # the most rows one view may ask for at once (a tall screen plus overscan)
MAX_VIEWS = 8  # views of one grid the kernel keeps windows for (a closed browser tab never says goodbye)
DEFAULT_GRID_HEIGHT = "26em"
# A sorted or filtered pass may take at most this share of the loop's time.
_SORT_LOAD = 0.05

_logger = logging.getLogger("fastiot_widgets")


@dataclass
class _View:
    """One browser view of the grid: the window it shows and the row ids it already has."""

    start: int = 0
    stop: int = 0
    ids: list[int] = field(default_factory=list)
    count: int = -1
    layout: int = -1
    used: float = 0.0


class DataGrid(LoopBound, anywidget.AnyWidget):
    """A virtualized, sortable, filterable grid over a DataFrame or a live row source.

    Args:
        data: A DataFrame, or a :class:`~fastiot.capture.grid_rows.RowSource` (MessageTable passes
            one over its capture).
        height: The grid's CSS height.

    State is in traitlets (``sort_column``, ``sort_descending``, ``filters``, ``column_widths``,
    ``visible_columns``, ``selected_id``); :meth:`rows` returns what the grid shows, as text, in its
    order.
    """

    _esm = front_end_file("data_grid.js")
    _css = front_end_file("data_grid.css")

    columns = traitlets.List(traitlets.Unicode(), help="The columns shown, in order.").tag(sync=True)
    column_kinds = traitlets.Dict(
        help="Per column: number, time, bool or text (alignment and filter hints)."
    ).tag(sync=True)
    column_widths = traitlets.Dict(
        help="Per column: its width in pixels, as dragged in the browser (missing: a default)."
    ).tag(sync=True)
    visible_columns = traitlets.List(
        traitlets.Unicode(), help="The columns to show, in order; empty shows every column."
    )
    sort_column = traitlets.Unicode(
        "", help="The column rows are sorted by; '' keeps the source's order."
    ).tag(sync=True)
    sort_descending = traitlets.Bool(False, help="Sort from largest to smallest.").tag(sync=True)
    filters = traitlets.Dict(
        help="Per column: a filter such as '>20', '10..20', '!idle' or text to search."
    ).tag(sync=True)
    filter_error = traitlets.Unicode("", help="Why a filter is ignored; '' if every filter applies.").tag(
        sync=True
    )
    row_count = traitlets.Int(0, help="Rows the grid shows (after filtering).").tag(sync=True)
    total_rows = traitlets.Int(0, help="Rows in the source.").tag(sync=True)
    selected_id = traitlets.Int(-1, help="The id of the row clicked last; -1 if none.").tag(sync=True)
    row_height = traitlets.Int(22, help="Pixels per row.").tag(sync=True)
    height = traitlets.Unicode(DEFAULT_GRID_HEIGHT, help="The grid's CSS height.").tag(sync=True)
    placeholder = traitlets.Unicode("no rows", help="What an empty grid says.").tag(sync=True)
    min_sort_interval = traitlets.Float(
        1.0, help="The least seconds between two sorted or filtered passes over a changing source."
    )

    def __init__(
        self, data: pd.DataFrame | RowSource, *, height: str = DEFAULT_GRID_HEIGHT, **kwargs: Any
    ) -> None:
        super().__init__(height=height, **kwargs)
        self.source: RowSource = FrameSource(data) if isinstance(data, pd.DataFrame) else data
        self._views: dict[str, _View] = {}
        self._layout: int = 0  # bumped when cells already sent are no longer valid (columns, clear)
        self._epoch: int = -1
        self._seen_version: tuple[int, int] = (-1, -1)
        # The sorted / filtered order: None while the grid shows the source's own order.
        self._order_ids: np.ndarray | None = None
        self._order_frame: pd.DataFrame | None = None
        self._order_version: tuple[int, int] = (-1, -1)
        self._order_dirty: bool = True
        self._next_pass: float = 0.0
        self._deferred: asyncio.TimerHandle | None = None
        self.on_msg(self._on_front_end_msg)
        self.refresh()

    # -- reading -----------------------------------------------------------------------------------

    @property
    def is_ordered(self) -> bool:
        """Whether rows are sorted or filtered (else they are in the source's order)."""
        return bool(self.sort_column) or any(str(v).strip() for v in self.filters.values())

    def rows(self, start: int = 0, stop: int | None = None) -> pd.DataFrame:
        """The rows the grid shows at positions ``[start, stop)``, as the cell text it sends.

        The index holds the row ids. ``rows()`` returns every row (avoid that on a big source).
        """
        stop = self.row_count if stop is None else stop
        ids, frame = self._window(start, stop)
        return pd.DataFrame(cells(frame, self.columns), columns=self.columns, index=pd.Index(ids, name="id"))

    def set_data(self, data: pd.DataFrame) -> None:
        """Show another DataFrame (a grid made from a DataFrame)."""
        if not isinstance(self.source, FrameSource):
            raise TypeError("set_data() replaces a DataFrame; this grid shows a live source")
        self.source.set_frame(data)
        self.refresh()

    # -- refresh -----------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the source and send every view what changed in its window."""
        version = self.source.version
        if version[0] != self._epoch:  # new ids: what the views hold is stale
            self._epoch = version[0]
            self._layout += 1
            self._order_dirty = True
            self.selected_id = -1
        elif version != self._seen_version:
            self._order_dirty = True
        self._seen_version = version
        self._update_columns()
        self._update_order(force=False)
        self.total_rows = self.source.row_count()
        for name in list(self._views):
            self._send_window(name, anchor=True)

    def _update_columns(self) -> None:
        available = self.source.columns()
        chosen = [c for c in self.visible_columns if c in available]
        shown = chosen or available
        if shown != self.columns:
            self.columns = shown
            self._layout += 1
        if any(c not in self.column_kinds for c in shown):
            sample, _ids = self.source.window(0, 1)
            kinds = {c: column_kind(sample[c]) if c in sample.columns else "text" for c in shown}
            self.column_kinds = {**self.column_kinds, **kinds}

    def _update_order(self, *, force: bool) -> None:
        """Sort and filter the whole source, if the rows or the order changed and it is time to."""
        if not self.is_ordered:
            self._order_ids, self._order_frame = None, None
            self.filter_error = ""
            self.row_count = self.source.row_count()
            return
        if not (self._order_dirty or force):
            return
        now = time.monotonic()
        if not force and now < self._next_pass:
            self._defer(self._next_pass - now)
            return
        frame, ids = self.source.frame()
        mask = np.ones(len(frame), dtype=bool)
        problems = []
        for column, text in self.filters.items():
            if column not in frame.columns or not str(text).strip():
                continue
            try:
                mask &= filter_mask(frame[column], str(text), column)
            except GridFilterError as e:
                problems.append(str(e))
        frame, ids = frame[mask], ids[mask]
        if self.sort_column in frame.columns:
            positions = sort_positions(frame[self.sort_column], descending=self.sort_descending)
            frame, ids = frame.iloc[positions], ids[positions]
        self._order_frame, self._order_ids = frame, ids
        self._order_dirty = False
        self._order_version = self.source.version
        took = time.monotonic() - now
        self._next_pass = now + max(self.min_sort_interval, took / _SORT_LOAD)
        self.filter_error = "; ".join(problems)
        self.row_count = len(ids)

    def _defer(self, delay: float) -> None:
        """Refresh again after ``delay`` s: a sorted pass was skipped, and the traffic may stop now."""
        if self._deferred is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return

        def run() -> None:
            self._deferred = None
            try:
                self.refresh()
            except Exception:  # a comm closed meanwhile: nothing is shown anymore
                _logger.exception("refreshing the data grid failed")

        self._deferred = loop.call_later(delay, run)

    def _window(self, start: int, stop: int) -> tuple[list[int], pd.DataFrame]:
        start, stop = max(0, start), max(0, min(stop, self.row_count))
        if self._order_ids is None or self._order_frame is None:
            frame, ids = self.source.window(start, stop)
            return [int(i) for i in ids], frame
        return [int(i) for i in self._order_ids[start:stop]], self._order_frame.iloc[start:stop]

    def _position(self, row_id: int) -> int | None:
        if self._order_ids is None:
            return self.source.position(row_id)
        found = np.flatnonzero(self._order_ids == row_id)
        return int(found[0]) if len(found) else None

    # -- the views ---------------------------------------------------------------------------------

    def _on_front_end_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        kind, name = content.get("type"), str(content.get("view", ""))
        if kind == "window" and name:
            view = self._views.get(name)
            if view is None or content.get("reset"):
                view = self._views[name] = _View(used=time.monotonic())
                self._forget_old_views()
            start = max(0, int(content.get("start", 0)))
            stop = min(int(content.get("stop", 0)), start + MAX_WINDOW_ROWS)
            view.start, view.stop = start, max(start, stop)
            self._send_window(name)
        elif kind == "bye":
            self._views.pop(name, None)

    def _forget_old_views(self) -> None:
        while len(self._views) > MAX_VIEWS:
            oldest = min(self._views, key=lambda n: self._views[n].used)
            del self._views[oldest]

    def _send_window(self, name: str, *, anchor: bool = False) -> None:
        """Send the view what it lacks of its window; with ``anchor``, first move the window along with
        the row at its top if rows arrived above it (only while the view is scrolled away from the top)."""
        view = self._views[name]
        view.used = time.monotonic()
        shift = 0
        if anchor and view.start > 0 and view.ids and view.layout == self._layout:
            # Scrolled away from the top: keep the rows shown in place while rows arrive above them.
            moved_to = self._position(view.ids[0])
            if moved_to is not None and moved_to != view.start:
                shift = moved_to - view.start
                view.start, view.stop = moved_to, moved_to + (view.stop - view.start)
        ids, frame = self._window(view.start, view.stop)
        reset = view.layout != self._layout
        if not reset and not shift and ids == view.ids and self.row_count == view.count:
            return  # nothing this view does not have
        known = set() if reset else set(view.ids)
        new = [i for i, row_id in enumerate(ids) if row_id not in known]
        rows = cells(frame.iloc[new], self.columns) if new else []
        self.send(
            {
                "type": "rows",
                "view": name,
                "layout": self._layout,
                "reset": reset,
                "start": view.start,
                "count": self.row_count,
                "shift": shift,
                "ids": ids,
                "rows": [[ids[i], *cells_of_row] for i, cells_of_row in zip(new, rows, strict=True)],
            }
        )
        view.ids, view.count, view.layout = ids, self.row_count, self._layout

    # -- what the person changes -------------------------------------------------------------------

    @traitlets.observe("sort_column", "sort_descending", "filters")
    def _on_order(self, _change: Any) -> None:
        if "_views" not in self.__dict__:  # during __init__
            return
        self._order_dirty = True
        self._next_pass = 0.0
        self._update_order(force=True)
        for name in list(self._views):
            view = self._views[name]
            view.stop, view.start = view.stop - view.start, 0  # back to the top of the new order
            self._send_window(name)

    @traitlets.observe("visible_columns")
    def _on_visible_columns(self, _change: Any) -> None:
        if "_views" in self.__dict__:
            self.refresh()

    def close(self) -> None:
        if self.__dict__.get("_deferred") is not None:
            self._deferred.cancel()  # type: ignore[union-attr]
            self._deferred = None
        super().close()
