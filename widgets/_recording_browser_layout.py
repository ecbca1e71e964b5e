"""The controls of the RecordingBrowser and where they sit; the browser itself wires what they do.

Example:
    >>> from fastiot_widgets._recording_browser_layout import RecordingBrowserLayout
    >>> RecordingBrowserLayout.__mro__[1].__name__
    'VBox'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import ipywidgets as widgets

from . import _loop_bound as ui
from ._code import CopyAsCode
from ._common import ConnectionStatus
from ._history_parts import ConfirmButton, RangePicker, ReplayOptions, SubjectChooser
from ._layout import BOX, keep_width, toolbar
from ._plot_action import PlotAction
from .replay_view import ReplayProgress

if TYPE_CHECKING:
    from .live_plot import LivePlot

__all__ = ["RecordingBrowserLayout"]


class RecordingBrowserLayout(widgets.VBox):
    """The RecordingBrowser's controls (its public attributes) and their arrangement."""

    connection_status: ConnectionStatus
    recording_select: ui.Select
    refresh_button: ui.Button
    info_view: widgets.HTML
    subject_chooser: SubjectChooser
    subject_select: ui.SelectMultiple
    range_picker: RangePicker
    max_rows_input: ui.BoundedIntText
    load_table_button: ui.Button
    load_frame_button: ui.Button
    timeline_button: ui.Button
    timeline_box: widgets.VBox
    replay_options: ReplayOptions
    replay_button: ui.Button
    replay_view: ReplayProgress
    delete_confirmation: ConfirmButton
    delete_button: ui.Button
    notice_view: widgets.HTML
    error_view: widgets.HTML
    table_box: widgets.VBox
    plot_action: PlotAction
    record_code: CopyAsCode
    load_code: CopyAsCode
    replay_code: CopyAsCode

    def _make_controls(
        self,
        *,
        max_rows: int,
        confirm_delete: Callable[[], None],
        make_plot: Callable[[list[str]], LivePlot],
        show_failure: Callable[[str], None],
        code: dict[str, Callable[[], str]],
    ) -> None:
        """Make the controls; ``code`` gives the copy-as-code texts of "record", "load" and "replay"."""
        self.connection_status = ConnectionStatus()
        self.recording_select = ui.Select(options=[], rows=6, layout=widgets.Layout(width="16em"))
        self.refresh_button = ui.Button(
            icon="refresh", tooltip="List the recordings and read their numbers again"
        )
        self.refresh_button.layout = widgets.Layout(width="auto")
        self.info_view = widgets.HTML()
        self.subject_chooser = SubjectChooser()
        self.subject_select = self.subject_chooser.select
        self.range_picker = RangePicker()
        self.max_rows_input = ui.BoundedIntText(
            value=max_rows,
            min=1,
            max=100_000_000,
            description="at most",
            layout=widgets.Layout(width="12em"),
            style={"description_width": "initial"},
        )
        self.load_table_button = ui.Button(description="Load into table", icon="table")
        self.load_frame_button = ui.Button(description="Load into DataFrame", icon="download")
        self.timeline_button = ui.Button(
            description="Open timeline",
            icon="clock-o",
            tooltip="Scrub through the recording: a browser, a plot and a table follow the cursor",
        )
        self.timeline_box = widgets.VBox()
        self.replay_options = ReplayOptions()
        self.replay_button = ui.Button(description="Replay", icon="play")
        self.replay_view = ReplayProgress()
        self.delete_confirmation = ConfirmButton("Delete…", confirm_delete)
        self.delete_button = self.delete_confirmation.button
        self.notice_view = widgets.HTML()
        self.error_view = widgets.HTML()
        self.table_box = widgets.VBox()
        self.plot_action = PlotAction(
            make_plot, show_failure, tooltip="Chart the chosen numeric column of what was loaded"
        )
        self.record_code = CopyAsCode(code["record"], description="Record as code")
        self.load_code = CopyAsCode(code["load"], description="Load as code")
        self.replay_code = CopyAsCode(code["replay"], description="Replay as code")
        for button in (
            self.load_table_button,
            self.load_frame_button,
            self.timeline_button,
            self.replay_button,
            self.record_code.button,
            self.load_code.button,
            self.replay_code.button,
        ):
            button.layout.width = "auto"

    def _arrange(self) -> list[widgets.Widget]:
        """The browser's children: list and info, subjects, range and actions, then what they show."""
        keep_width(self.recording_select)
        info = widgets.VBox(
            [self.info_view, toolbar(self.delete_button, self.record_code.button)],
            layout=widgets.Layout(flex="1 1 20em", min_width="0"),
        )
        return [
            toolbar(widgets.HTML("<b>Recordings</b>"), self.refresh_button, self.connection_status),
            toolbar(self.recording_select, info),
            self.delete_confirmation,
            self.record_code.output,
            widgets.Box([self.subject_chooser], layout=widgets.Layout(**BOX)),
            widgets.VBox(
                [
                    self.range_picker,
                    toolbar(
                        self.max_rows_input,
                        self.load_table_button,
                        self.load_frame_button,
                        self.timeline_button,
                        self.load_code.button,
                        toolbar(self.plot_action.field_box, self.plot_action.button),  # wrap together
                    ),
                    self.load_code.output,
                    toolbar(self.replay_options, self.replay_button, self.replay_code.button),
                    self.replay_code.output,
                    self.replay_view,
                ],
                layout=widgets.Layout(**BOX),
            ),
            self.notice_view,
            self.error_view,
            self.table_box,
            self.plot_action.area,
            self.timeline_box,
        ]
