"""MessageTable: the live tail of a MessageCapture as a table, with counters, pause and export.

A thin view over :class:`fastiot.capture.MessageCapture`, which subscribes, decodes and keeps the
newest ``max_rows`` messages in a columnar ring buffer. The widget shows the newest rows (the columns
you choose), the counters (rows, received, dropped, undecodable, rate), pause / resume / clear, and
writes the buffer to a CSV or Parquet file on a click. It re-renders at most every
``refresh_interval`` seconds however fast messages arrive.

Example:
    >>> from fastiot_widgets import MessageTable
    >>> table = MessageTable("v1.thing.press_1.>", max_rows=10_000)   # doctest: +SKIP
    >>> table                                   # shows it; it fills as messages arrive  # doctest: +SKIP
    >>> table.columns = ["received_at", "name", "value"]              # doctest: +SKIP
    >>> table.export_csv()                      # or click "CSV"      # doctest: +SKIP
    PosixPath('/home/me/v1.thing.press_1.all-20240501-120000.csv')
    >>> table.to_dataframe().describe()                               # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import html
import math
import os
import re
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pandas as pd
import traitlets

from fastiot.capture import DEFAULT_MAX_ROWS, CaptureSubjects, MessageCapture
from fastiot.core.broker_connection import BrokerConnection

from ._common import plural
from ._live import DEFAULT_REFRESH_INTERVAL, LiveView, summary_html

__all__ = ["DEFAULT_SHOWN_ROWS", "MessageTable", "table_html"]

DEFAULT_SHOWN_ROWS = 20
_MAX_CELL_CHARS = 80
_MAX_HEX_BYTES = 24
_META_COLUMNS = ("received_at", "subject")
_OK_COLOR = "#2e7d32"
_ERROR_COLOR = "#c62828"


def _cell_text(value: Any) -> str:
    """One value as the table shows it: short, missing values empty, times to the millisecond."""
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, dt.datetime):  # pandas Timestamps too
        if value != value:  # NaT
            return ""
        return value.strftime("%H:%M:%S.%f")[:-3]
    if isinstance(value, (bytes, bytearray)):
        text = bytes(value[:_MAX_HEX_BYTES]).hex(" ")
        return text + (" …" if len(value) > _MAX_HEX_BYTES else "")
    text = str(value)
    return text if len(text) <= _MAX_CELL_CHARS else text[: _MAX_CELL_CHARS - 1] + "…"


def table_html(frame: pd.DataFrame, columns: list[str], *, newest_first: bool = True) -> str:
    """``frame``'s ``columns`` as a compact HTML table (rows reversed when ``newest_first``).

    Example:
        >>> import pandas as pd
        >>> "<td>2</td>" in table_html(pd.DataFrame({"a": [1, 2]}), ["a"])
        True
    """
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    sub = frame[columns] if columns else frame.iloc[:, :0]
    records = list(sub.itertuples(index=False, name=None))
    if newest_first:
        records.reverse()
    for record in records:
        cells = []
        for value in record:
            text = _cell_text(value)
            align = "right" if isinstance(value, (int, float)) and not isinstance(value, bool) else "left"
            cells.append(f"<td style='text-align:{align}'>{html.escape(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    if not body:
        body.append(
            f"<tr><td colspan='{max(1, len(columns))}' style='color:#757575'>no messages yet</td></tr>"
        )
    return (
        "<div style='max-height:28em;overflow:auto'>"
        "<table class='fastiot-message-table' style='border-collapse:collapse;font-size:90%;"
        "font-family:var(--jp-code-font-family,monospace)'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


_TABLE_CSS = (
    "<style>.fastiot-message-table th{position:sticky;top:0;background:var(--jp-layout-color2,#eee);"
    "text-align:left;padding:2px 8px;border-bottom:1px solid #bdbdbd}"
    ".fastiot-message-table td{padding:1px 8px;border-bottom:1px solid var(--jp-border-color3,#eee);"
    "white-space:nowrap}</style>"
)


def _slug(patterns: list[str]) -> str:
    """A file-name-safe name for subject patterns: ``v1.thing.>`` -> ``v1.thing.all``."""
    text = "+".join(p.replace(">", "all").replace("*", "any") for p in patterns)
    text = re.sub(r"[^A-Za-z0-9_.+-]+", "_", text).strip("._") or "capture"
    return text[:80]


class MessageTable(LiveView):
    """The newest rows of a live capture as a table, with counters, pause / resume / clear and export.

    Args:
        subjects: A NATS pattern (``"v1.thing.>"``), a :class:`~fastiot.core.data_models.Subject`, a
            list of them, or a :class:`~fastiot.capture.MessageCapture` to view (which the table then
            neither starts nor stops; pass no ``connection`` or ``max_rows`` with it).
        connection: The broker connection; ``None`` means the workbench connection.
        max_rows: How many of the newest messages the capture keeps (memory stays bounded by it);
            older ones are evicted and counted in ``dropped``.
        shown_rows: How many of the newest rows the table shows.
        export_dir: Folder for export files; ``""`` is the current directory.
        refresh_interval: The least seconds between two re-renders.
        capture_kwargs: Passed on to :class:`~fastiot.capture.MessageCapture`.

    The capture (the headless model) is :attr:`capture`; :meth:`to_dataframe` returns all its rows.
    In a notebook the capture starts when the table is made; ``await table.start()`` waits for that.
    :meth:`close` stops it.
    """

    shown_rows = traitlets.Int(DEFAULT_SHOWN_ROWS, help="How many of the newest rows the table shows.")
    columns = traitlets.List(
        traitlets.Unicode(), help="The columns shown, in this order; empty shows every column."
    )
    export_dir = traitlets.Unicode("", help="The folder export files are written to; '' is the current one.")
    last_export = traitlets.Unicode("", help="The path of the file the last export wrote; '' if none.")
    export_message = traitlets.Unicode(
        "", help="What the last export said: the file written, or why it failed (e.g. pyarrow missing)."
    )
    rows = traitlets.Int(0, help="Rows in the capture's buffer (at most max_rows), as last rendered.")
    received = traitlets.Int(0, help="Messages captured since start or clear, evicted ones included.")
    dropped = traitlets.Int(0, help="Rows evicted from the buffer to make room for newer ones (exact).")
    errors = traitlets.Int(0, help="Rows whose payload did not decode, as last rendered.")
    rate = traitlets.Float(0.0, help="Messages per second over the capture's rate window, as last rendered.")

    def __init__(
        self,
        subjects: CaptureSubjects | MessageCapture,
        connection: BrokerConnection | None = None,
        max_rows: int | None = None,
        *,
        shown_rows: int = DEFAULT_SHOWN_ROWS,
        export_dir: str | os.PathLike[str] = "",
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
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
                connection,  # type: ignore[arg-type]
                DEFAULT_MAX_ROWS if max_rows is None else max_rows,
                **capture_kwargs,
            )
            owns = True
        self.capture: MessageCapture = capture
        self._updating_chooser: bool = False

        self.title = widgets.HTML(
            f"<b>{html.escape(', '.join(capture.patterns))}</b> "
            f"<span style='color:#757575'>(newest first, max {plural(capture.max_rows, 'row')} kept)</span>"
        )
        self.counters_view = widgets.HTML()
        self.csv_button = widgets.Button(
            description="CSV", icon="download", tooltip="Write the captured rows to a CSV file"
        )
        self.parquet_button = widgets.Button(
            description="Parquet", icon="download", tooltip="Write the captured rows to a Parquet file"
        )
        for button in (self.csv_button, self.parquet_button):
            button.layout = widgets.Layout(width="auto")
        self.export_view = widgets.HTML()
        self.table_view = widgets.HTML(layout=widgets.Layout(flex="1 1 auto", overflow="auto"))
        self.column_chooser = widgets.SelectMultiple(
            options=list(_META_COLUMNS),
            rows=8,
            tooltip="Columns shown (none selected: all); Ctrl/Shift-click to choose several",
            layout=widgets.Layout(width="13em", flex="0 0 auto"),
        )
        self.csv_button.on_click(lambda _b: self._export_clicked("csv"))
        self.parquet_button.on_click(lambda _b: self._export_clicked("parquet"))
        self.column_chooser.observe(self._on_chooser, names="value")

        super().__init__(
            capture,
            owns_model=owns,
            connection=connection,
            refresh_interval=refresh_interval,
            children=[],
        )
        self.children = [
            widgets.HTML(_TABLE_CSS),
            widgets.HBox([self.title, self.connection_status], layout=widgets.Layout(align_items="center")),
            widgets.HBox(
                [
                    self.pause_button,
                    self.resume_button,
                    self.clear_button,
                    widgets.HTML("&nbsp;export:"),
                    self.csv_button,
                    self.parquet_button,
                    self.counters_view,
                ],
                layout=widgets.Layout(align_items="center", flex_flow="row wrap"),
            ),
            self.export_view,
            widgets.HBox(
                [
                    self.table_view,
                    widgets.VBox([widgets.HTML("<small>columns (none: all)</small>"), self.column_chooser]),
                ]
            ),
            self.error_view,
        ]
        self.shown_rows = shown_rows
        self.export_dir = os.fspath(export_dir)
        self.refresh()

    def _listen(self, callback: Any, remove: bool) -> None:
        self.capture.on_message(callback, remove, min_interval=self.refresh_interval)

    # -- reading -----------------------------------------------------------------------------------

    def to_dataframe(self) -> pd.DataFrame:
        """Every row in the capture's buffer, oldest first, all columns (``MessageCapture.to_dataframe``)."""
        return self.capture.to_dataframe()

    @property
    def shown_columns(self) -> list[str]:
        """The columns the table shows now: the chosen ones that exist, or all."""
        available = self._available_columns()
        chosen = [c for c in self.columns if c in available]
        return chosen or available

    def _available_columns(self) -> list[str]:
        return list(self.column_chooser.options)

    # -- export ------------------------------------------------------------------------------------

    def export_csv(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write every captured row to a CSV file and show its path.

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

    def _export_path(self, suffix: str) -> Path:
        folder = Path(self.export_dir or os.getcwd()).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
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
        shown_path = html.escape(str(written))
        self.export_view.value = (
            f"<span style='color:{_OK_COLOR}'>saved {plural(rows, 'row')} to</span> <code>{shown_path}</code>"
        )
        return written

    def _export_clicked(self, kind: str) -> None:
        try:
            self._export(kind, None)
        except Exception:
            pass  # _export has shown why in the widget

    # -- columns -----------------------------------------------------------------------------------

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
        self._request_render(now=True)

    @traitlets.observe("shown_rows")
    def _on_shown_rows(self, _change: Any) -> None:
        self._request_render(now=True)

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

    # -- rendering ---------------------------------------------------------------------------------

    def _render(self) -> None:
        capture = self.capture
        frame = capture.tail(max(0, self.shown_rows))
        names = list(dict.fromkeys([*_META_COLUMNS, *capture.columns, *frame.columns]))
        self._update_chooser(names)
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
        if self.errors:
            parts.append(f"<span style='color:{_ERROR_COLOR}'>{self.errors:,} undecodable</span>")
        if lost:
            parts.append(f"<span style='color:{_ERROR_COLOR}'>{lost:,} lost (slow consumer)</span>")
        if self.paused:
            parts.append(f"<b>paused</b>, {capture.skipped:,} skipped")
        elif not self.running:
            parts.append("<b>stopped</b>")
        self.counters_view.value = summary_html(parts)
        shown = [c for c in self.shown_columns if c in frame.columns]
        self.table_view.value = table_html(frame, shown)
        self._set_shows_traffic(self.rate > 0)

    def __repr__(self) -> str:
        return f"MessageTable({', '.join(self.capture.patterns)}, {plural(self.rows, 'row')})"
