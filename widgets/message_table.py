"""MessageTable: a live MessageCapture in a virtualized data grid, with counters, pause and export.

A thin view over :class:`fastiot.capture.MessageCapture`, which subscribes, decodes and keeps the
newest ``max_rows`` messages in a columnar ring buffer. The table shows them newest first in a
:class:`~fastiot_widgets.DataGrid`: click a header to sort, type in the box under it to filter
(``>20``, ``10..20``, ``!press``), drag a header's edge to resize, scroll through all of them (50,000
rows are as quick as 50: the browser only ever gets the rows on screen). Clicking a row shows its
whole message below the grid. Counters (rows, received, dropped, undecodable, rate), pause / resume /
clear, CSV or Parquet export of every captured row, and "Plot" (a numeric column as a LivePlot that
follows the capture) sit above. The grid is updated at most every
``refresh_interval`` seconds however fast messages arrive, and then only with the rows a view lacks.

Example:
    >>> from fastiot_widgets import MessageTable
    >>> table = MessageTable("v1.thing.press_1.>", max_rows=50_000)   # doctest: +SKIP
    >>> table                                   # shows it; it fills as messages arrive  # doctest: +SKIP
    >>> table.columns = ["received_at", "name", "value"]              # doctest: +SKIP
    >>> table.grid.sort_column = "value"        # or click the header  # doctest: +SKIP
    >>> table.grid.filters = {"name": "temperature"}                  # doctest: +SKIP
    >>> table.export_csv()                      # or click "CSV"      # doctest: +SKIP
    PosixPath('/home/me/notebooks/exports/v1.thing.press_1.all-20240501-120000.csv')
    >>> plot = table.open_plot("value")         # or choose it and click "Plot"  # doctest: +SKIP
    >>> table.to_dataframe().describe()                               # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import html
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd
import traitlets

from fastiot.capture import DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS, CaptureSubjects, MessageCapture
from fastiot.capture.grid_rows import CaptureSource, cell_text
from fastiot.core.broker_connection import BrokerConnection
from fastiot.exports import EXPORTS_FOLDER, exports_dir

from ._code import code_for_table
from ._common import plural, pre_html
from ._live import DEFAULT_REFRESH_INTERVAL, summary_html
from ._message_table_layout import META_COLUMNS, MessageTableLayout
from ._plot_action import PlotsColumns, numeric_columns
from .data_grid import DEFAULT_GRID_HEIGHT, DataGrid
from .live_plot import LivePlot

__all__ = ["MessageTable"]

_META_COLUMNS = META_COLUMNS
_OK_COLOR = "#2e7d32"
_ERROR_COLOR = "#c62828"


def _slug(patterns: list[str]) -> str:
    """A file-name-safe name for subject patterns: ``v1.thing.>`` -> ``v1.thing.all``."""
    text = "+".join(p.replace(">", "all").replace("*", "any") for p in patterns)
    text = re.sub(r"[^A-Za-z0-9_.+-]+", "_", text).strip("._") or "capture"
    return text[:80]


class MessageTable(PlotsColumns, MessageTableLayout):
    """A live capture in a sortable, filterable, virtualized grid, with counters, pause / resume /
    clear and export.

    Args:
        subjects: A NATS pattern (``"v1.thing.>"``), a :class:`~fastiot.core.data_models.Subject`, a
            list of them, or a :class:`~fastiot.capture.MessageCapture` to view (which the table then
            neither starts nor stops; pass no ``connection`` or ``max_rows`` with it).
        connection: The broker connection; ``None`` means the workbench connection.
        max_rows: How many of the newest messages the capture keeps (memory stays bounded by it);
            older ones are evicted and counted in ``dropped``.
        export_dir: Folder for export files; ``""`` is the workbench's exports folder, ``exports/``
            beside the notebook (:func:`fastiot.exports.exports_dir`).
        refresh_interval: The least seconds between two updates of the view.
        height: The grid's CSS height.
        live: False for a table of rows fed with :meth:`MessageCapture.add_messages` (a recording's
            window, as a :class:`~fastiot_widgets.Timeline` feeds it): the capture is never started,
            and connection, Pause, Resume, Clear and "Copy as code" are not shown.
        capture_kwargs: Passed on to :class:`~fastiot.capture.MessageCapture`.

    The capture (the headless model) is :attr:`capture`, the grid :attr:`grid` (its sort, filters and
    column widths are traitlets there); :meth:`to_dataframe` returns all captured rows. In a notebook
    the capture starts when the table is made; ``await table.start()`` waits for that. :meth:`close`
    stops it. :meth:`open_plot` (the "Plot" button) charts numeric columns below the table; the
    chart is :attr:`plot`.
    """

    columns = traitlets.List(
        traitlets.Unicode(), help="The columns shown, in this order; empty shows every column."
    )
    export_dir = traitlets.Unicode(
        "", help="The folder export files are written to; '' is exports/ beside the notebook (exports_dir())."
    )
    last_export = traitlets.Unicode("", help="The path of the file the last export wrote; '' if none.")
    export_message = traitlets.Unicode(
        "", help="What the last export said: the file written, or why it failed (e.g. pyarrow missing)."
    )
    rows = traitlets.Int(0, help="Rows in the capture's buffer (at most max_rows), as last rendered.")
    received = traitlets.Int(0, help="Messages captured since start or clear, evicted ones included.")
    dropped = traitlets.Int(0, help="Rows evicted from the buffer to make room for newer ones (exact).")
    errors = traitlets.Int(0, help="Rows whose payload did not decode, as last rendered.")
    rate = traitlets.Float(0.0, help="Messages per second over the capture's rate window, as last rendered.")
    summary = traitlets.Unicode(
        "", help="The counters as the table shows them, e.g. '1 row · 1 received · 0 dropped · 0.2/s'."
    )
    selected_row = traitlets.Dict(help="The row clicked last, column -> value; empty if none (or evicted).")

    # Pause freezes the grid and the counters; the capture keeps capturing, so they are right at Resume.
    _pause_model = False

    def __init__(
        self,
        subjects: CaptureSubjects | MessageCapture,
        connection: BrokerConnection | None = None,
        max_rows: int | None = None,
        *,
        export_dir: str | os.PathLike[str] = "",
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
        height: str = DEFAULT_GRID_HEIGHT,
        live: bool = True,
        **capture_kwargs: Any,
    ) -> None:
        if isinstance(subjects, MessageCapture):
            if connection is not None or max_rows is not None or capture_kwargs:
                raise TypeError(
                    "give connection, max_rows and other options to the MessageCapture, not to MessageTable"
                )
            capture, owns = subjects, False
        else:
            capture = MessageCapture(
                subjects,
                connection,
                DEFAULT_MAX_ROWS if max_rows is None else max_rows,
                **capture_kwargs,
            )
            owns = True
        self.capture: MessageCapture = capture
        self._source: CaptureSource = CaptureSource(capture)
        self._updating_chooser: bool = False

        self._plot_columns: tuple[str, ...] = ()
        self._make_controls(
            capture,
            DataGrid(self._source, height=height),
            make_plot=lambda fields: LivePlot.from_capture(
                capture, fields, title=", ".join(capture.patterns)
            ),
            show_error=self._show_error,
            code=self._code,
        )
        self.csv_button.on_click(lambda _b: self._export_clicked("csv"))
        self.parquet_button.on_click(lambda _b: self._export_clicked("parquet"))
        self.column_chooser.observe(self._on_chooser, names="value")
        self.grid.observe(self._on_selected, names="selected_id")

        super().__init__(
            capture,
            owns_model=owns,
            connection=connection,
            refresh_interval=refresh_interval,
            autostart=live,
            children=[],
        )
        self.children = self._arrange()
        if not live:
            # Rows fed from a recording: no connection to show, nothing to pause, no cell that makes them.
            for control in (
                self.connection_status,
                self.pause_button,
                self.resume_button,
                self.clear_button,
                self.copy_code.button,
            ):
                control.layout.display = "none"
        self.export_dir = os.fspath(export_dir)
        self._export_dir_changed()
        self.refresh()

    def _listen(self, callback: Any, remove: bool) -> None:
        self.capture.on_message(callback, remove, min_interval=self.refresh_interval)

    def _on_model_news(self, news: Any) -> None:
        if news == 0:  # cleared: sequence numbers start again, so the grid's row ids are new
            self._source.cleared()
        super()._on_model_news(news)

    def clear(self) -> None:
        """Forget every captured row; counting starts again from zero."""
        self._source.cleared()
        super().clear()

    # -- reading -----------------------------------------------------------------------------------

    def to_dataframe(self) -> pd.DataFrame:
        """Every row in the capture's buffer, oldest first, all columns (``MessageCapture.to_dataframe``)."""
        return self.capture.to_dataframe()

    @property
    def shown_columns(self) -> list[str]:
        """The columns the grid shows now: the chosen ones that exist, or all."""
        return list(self.grid.columns)

    def _code(self) -> str:
        """Copy as code: the cell that opens a table of the same subjects, with the same bounds."""
        capture = self.capture
        options: dict[str, Any] = {}
        if capture.max_rows != DEFAULT_MAX_ROWS:
            options["max_rows"] = capture.max_rows
        if capture.max_bytes != DEFAULT_MAX_BYTES:
            options["max_bytes"] = capture.max_bytes
        return code_for_table(capture.targets, **options)

    # -- export ------------------------------------------------------------------------------------

    def export_csv(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write every captured row (not only the filtered ones) to a CSV file and show its path.

        Args:
            path: The file; ``None`` picks ``<subjects>-<time>.csv`` in :attr:`export_dir`.

        Returns:
            The absolute path written.
        """
        return self._export("csv", path)

    def export_parquet(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write every captured row to a Parquet file and show its path.

        Raises:
            fastiot.capture.ParquetUnavailableError: pyarrow is missing; the message names the extra to
                install (the button shows it instead of raising).
        """
        return self._export("parquet", path)

    @traitlets.observe("export_dir")
    def _export_dir_changed(self, _change: Any = None) -> None:
        if "csv_button" not in self.__dict__:
            return
        where = self.export_dir or f"{EXPORTS_FOLDER}/ beside this notebook"
        self.csv_button.tooltip = f"Write every captured row to a CSV file in {where}"
        self.parquet_button.tooltip = f"Write every captured row to a Parquet file in {where}"

    def _export_path(self, suffix: str) -> Path:
        if self.export_dir:
            folder = Path(self.export_dir).expanduser()
            folder.mkdir(parents=True, exist_ok=True)
        else:
            folder = exports_dir()
        stem = f"{_slug(self.capture.patterns)}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
        target = folder / f"{stem}.{suffix}"
        n = 2
        while target.exists():
            target = folder / f"{stem}-{n}.{suffix}"
            n += 1
        return target

    def _export(self, kind: str, path: str | os.PathLike[str] | None) -> Path:
        target = Path(path).expanduser() if path is not None else self._export_path(kind)
        rows = len(self.capture)
        try:
            if kind == "csv":
                written = self.capture.to_csv(target)
            else:
                written = self.capture.to_parquet(target)
        except Exception as e:
            self.export_message = f"{kind.upper()} export failed: {e}"
            self.export_view.value = (
                f"<span style='color:{_ERROR_COLOR}'>{html.escape(self.export_message)}</span>"
            )
            raise
        written = written.resolve()
        self.last_export = str(written)
        self.export_message = f"saved {plural(rows, 'row')} to {written}"
        self.export_view.value = (
            f"<span style='color:{_OK_COLOR}'>saved {plural(rows, 'row')} to</span> "
            f"<code>{html.escape(str(written))}</code>"
        )
        return written

    def _export_clicked(self, kind: str) -> None:
        try:
            self._export(kind, None)
        except Exception:
            pass  # _export has shown why in the widget

    # -- columns and the selected row --------------------------------------------------------------

    def _on_chooser(self, change: Any) -> None:
        if self._updating_chooser:
            return
        self.columns = list(change.new)

    @traitlets.observe("columns")
    def _on_columns(self, change: Any) -> None:
        wanted = tuple(c for c in change.new if c in self.column_chooser.options)
        if wanted != tuple(self.column_chooser.value):
            self._updating_chooser = True
            try:
                self.column_chooser.value = wanted
            finally:
                self._updating_chooser = False
        self.grid.visible_columns = list(change.new)

    def _update_chooser(self, names: list[str]) -> None:
        if tuple(names) == tuple(self.column_chooser.options):
            return
        self._updating_chooser = True
        try:
            with self.column_chooser.hold_sync():
                self.column_chooser.options = names  # resets the selection ...
                self.column_chooser.value = tuple(c for c in self.columns if c in names)  # ... restore it
        finally:
            self._updating_chooser = False

    def _on_selected(self, change: Any) -> None:
        row_id = change.new
        position = self._source.position(row_id) if row_id >= 0 else None
        if position is None:
            self.selected_row = {}
            self.details_view.value = ""
            return
        frame, _ids = self._source.window(position, position + 1)
        record = {str(k): v for k, v in frame.iloc[0].items() if not _is_missing(v)}
        self.selected_row = record
        text = "\n".join(f"{name}: {cell_text(value)}" for name, value in record.items())
        self.details_view.value = pre_html(text, max_height="16em")

    # -- rendering ---------------------------------------------------------------------------------

    def _render(self) -> None:
        capture = self.capture
        if self.paused:  # the view stands still; the capture keeps capturing and counting
            self._render_paused()
            return
        names = list(dict.fromkeys([*_META_COLUMNS, *self._source.columns()]))
        self._update_chooser(names)
        if tuple(names) != self._plot_columns:  # a new column: which ones hold numbers
            self._plot_columns = tuple(names)
            self.plot_action.set_fields(numeric_columns(capture.tail(1)))
        self.rows = len(capture)
        self.received = capture.received
        self.dropped = capture.dropped
        self.errors = capture.errors
        self.rate = capture.rate
        lost = capture.lost
        parts = [
            plural(self.rows, "row"),
            f"{self.received:,} received",
            f"{self.dropped:,} dropped",
            f"{self.rate:,.1f}/s",
        ]
        alarms = []
        if self.errors:
            alarms.append(f"{self.errors:,} undecodable")
        if lost:
            alarms.append(f"{lost:,} lost (slow consumer)")
        self._show_counters(parts, alarms, "" if self.running else "stopped")
        self.grid.refresh()
        self._set_shows_traffic(self.rate > 0)

    def _render_paused(self) -> None:
        """The counters as last shown, and how many messages came since (the capture has them)."""
        since = max(0, self.capture.received - self.received)
        parts = [
            plural(self.rows, "row"),
            f"{self.received:,} received",
            f"{self.dropped:,} dropped",
            f"{self.rate:,.1f}/s",
        ]
        self._show_counters(parts, [], f"paused: {plural(since, 'message')} since, still captured")
        self._set_shows_traffic(False)

    def _show_counters(self, parts: list[str], alarms: list[str], state: str) -> None:
        self.summary = " · ".join([*parts, *alarms, *([state] if state else [])])
        self.counters_view.value = summary_html(
            [
                *parts,
                *(f"<span style='color:{_ERROR_COLOR}'>{html.escape(a)}</span>" for a in alarms),
                *([f"<b>{html.escape(state)}</b>"] if state else []),
            ]
        )

    def close(self) -> None:
        """Stop the capture (if the table made it), the re-renders and the grid."""
        grid = self.__dict__.get("grid")
        plot_action = self.__dict__.get("plot_action")
        if plot_action is not None:
            plot_action.close()  # the chart stops following the capture
        super().close()
        if grid is not None:
            grid.close()

    def __repr__(self) -> str:
        return f"MessageTable({', '.join(self.capture.patterns)}, {plural(self.rows, 'row')})"


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists, dicts, arrays: a value
        return False
