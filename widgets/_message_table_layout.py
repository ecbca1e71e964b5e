"""The controls of the MessageTable and where they sit; the table itself wires what they do.

Example:
    >>> from fastiot_widgets._message_table_layout import MessageTableLayout
    >>> MessageTableLayout.__mro__[1].__name__
    'LiveView'
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import TYPE_CHECKING

import ipywidgets as widgets

from fastiot.capture import MessageCapture

from . import _loop_bound as ui
from ._code import CopyAsCode
from ._common import plural
from ._layout import toolbar
from ._live import LiveView
from ._plot_action import PlotAction
from .data_grid import DataGrid

if TYPE_CHECKING:
    from .live_plot import LivePlot

__all__ = ["META_COLUMNS", "MessageTableLayout"]

META_COLUMNS = ("received_at", "subject")


class MessageTableLayout(LiveView):
    """The MessageTable's controls (its public attributes) and their arrangement."""

    title: widgets.HTML
    counters_view: widgets.HTML
    csv_button: ui.Button
    parquet_button: ui.Button
    export_view: widgets.HTML
    grid: DataGrid
    details_view: widgets.HTML
    plot_action: PlotAction
    copy_code: CopyAsCode
    column_chooser: ui.SelectMultiple

    def _make_controls(
        self,
        capture: MessageCapture,
        grid: DataGrid,
        *,
        make_plot: Callable[[list[str]], LivePlot],
        show_error: Callable[[str], None],
        code: Callable[[], str],
    ) -> None:
        """Make the controls (before the live view's own: pause, resume, clear, connection).

        ``grid`` is the table's DataGrid over the capture's rows.
        """
        self.title = widgets.HTML(
            f"<b>{html.escape(', '.join(capture.patterns))}</b> "
            f"<span style='color:#757575'>(newest first, the newest "
            f"{plural(capture.max_rows, 'row')} kept)</span>"
        )
        self.counters_view = widgets.HTML()
        self.csv_button = ui.Button(
            description="CSV", icon="download", tooltip="Write every captured row to a CSV file"
        )
        self.parquet_button = ui.Button(
            description="Parquet", icon="download", tooltip="Write every captured row to a Parquet file"
        )
        for button in (self.csv_button, self.parquet_button):
            button.layout = widgets.Layout(width="auto")
        self.export_view = widgets.HTML()
        self.grid = grid
        self.grid.layout.flex, self.grid.layout.width = "1 1 auto", "100%"
        self.grid.placeholder = "no messages yet"
        self.details_view = widgets.HTML()
        """The row clicked last, every column of it, nested payloads in full (depth-limited)."""
        self.plot_action = PlotAction(
            make_plot,
            show_error,
            tooltip="Chart the chosen numeric column below; it follows the capture (again: adds a line)",
        )
        self.copy_code = CopyAsCode(code, tooltip="Insert the code that opens this table as a cell below")
        self.column_chooser = ui.SelectMultiple(
            options=list(META_COLUMNS),
            rows=8,
            tooltip="Columns shown (none selected: all); Ctrl/Shift-click to choose several",
            layout=widgets.Layout(width="13em", flex="0 0 auto"),
        )

    def _arrange(self) -> list[widgets.Widget]:
        """The table's children: title, toolbar, grid with its column chooser, then what they show."""
        return [
            toolbar(self.title, self.connection_status),
            toolbar(
                self.pause_button,
                self.resume_button,
                self.clear_button,
                widgets.HTML("&nbsp;export:"),
                self.csv_button,
                self.parquet_button,
                toolbar(self.plot_action.field_box, self.plot_action.button),  # wrap together
                self.copy_code.button,
                self.counters_view,
            ),
            self.export_view,
            self.copy_code.output,
            widgets.HBox(
                [
                    self.grid,
                    widgets.VBox([widgets.HTML("<small>columns (none: all)</small>"), self.column_chooser]),
                ]
            ),
            self.details_view,
            self.error_view,
            self.plot_action.area,
        ]
