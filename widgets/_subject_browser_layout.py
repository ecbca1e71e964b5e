"""The controls of the SubjectBrowser and where they sit; the browser itself wires what they do.

At 1280 px with JupyterLab's file browser open (an output about 850 px wide), the tree takes the
whole width and the detail pane goes below it, so the tree's last-value column has room; from about
1000 px of output they sit side by side.

Example:
    >>> from fastiot_widgets._subject_browser_layout import SubjectBrowserLayout
    >>> SubjectBrowserLayout.__mro__[1].__name__
    'LiveView'
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets

from . import _loop_bound as ui
from ._code import CopyAsCode
from ._layout import toolbar
from ._live import LiveView
from .subject_detail import SubjectDetailView
from .subject_tree import SubjectTreeView

__all__ = ["SubjectBrowserLayout"]

# Side by side when both fit at these widths (tree, pane); else the pane wraps below the tree.
_TREE_BASIS = "620px"
_DETAIL_BASIS = "340px"


class SubjectBrowserLayout(LiveView):
    """The SubjectBrowser's controls (its public attributes) and their arrangement."""

    pattern_box: ui.Text
    filter_box: ui.Text
    sort_box: ui.Dropdown
    unfold_all_button: ui.Button
    fold_all_button: ui.Button
    open_table_button: ui.Button
    raw_button: ui.ToggleButton
    system_button: ui.ToggleButton
    nats_names_button: ui.ToggleButton
    deliveries_button: ui.ToggleButton
    record_button: ui.Button
    copy_code: CopyAsCode
    copy_record_code: CopyAsCode
    summary_view: widgets.HTML
    status_view: widgets.HTML
    tree_view: SubjectTreeView
    detail_view: SubjectDetailView
    table_area: widgets.VBox
    plot_area: widgets.VBox

    def _make_controls(
        self, *, pattern: str, height: int, code: Callable[[], str], record_code: Callable[[], str]
    ) -> None:
        """Make the controls (before the live view's own: pause, resume, clear, connection)."""
        self.pattern_box = ui.Text(
            value=pattern,
            description="subscribe",
            placeholder="a NATS pattern, e.g. v1.thing.>",
            continuous_update=False,
            layout=widgets.Layout(width="19em"),
            style={"description_width": "initial"},
        )
        self.filter_box = ui.Text(
            placeholder="filter: text, or v1.*.press_1.>", continuous_update=True, layout={"width": "15em"}
        )
        self.sort_box = ui.Dropdown(
            options=[("name", "name"), ("count", "count"), ("rate", "rate"), ("last seen", "last_seen")],
            description="sort",
            layout={"width": "10em"},
            style={"description_width": "initial"},
        )
        self.unfold_all_button = ui.Button(
            description="Unfold all", icon="plus-square", layout={"width": "auto"}
        )
        self.fold_all_button = ui.Button(
            description="Fold all", icon="minus-square", layout={"width": "auto"}
        )
        self.open_table_button = ui.Button(
            description="Open table",
            icon="table",
            disabled=True,
            layout={"width": "auto"},
            tooltip="A live table of the selected subject's messages below",
        )
        self.raw_button = ui.ToggleButton(description="Raw bytes", icon="code", layout={"width": "auto"})
        self.system_button = ui.ToggleButton(
            description="System subjects",
            icon="cogs",
            layout={"width": "auto"},
            tooltip="Show NATS' own subjects too: $JS. $KV. $SYS. $MQTT. $SRV. _INBOX.",
        )
        self.nats_names_button = ui.ToggleButton(
            description="NATS names",
            icon="exchange",
            layout={"width": "auto"},
            tooltip="Show MQTT topics (tele/plug_1/SENSOR) by their NATS subjects (tele.plug_1.SENSOR)",
        )
        self.deliveries_button = ui.ToggleButton(
            description="JetStream deliveries",
            icon="database",
            layout={"width": "auto"},
            tooltip="Count what JetStream consumers deliver (reply $JS.ACK...: a recording being read) too",
        )
        self.record_button = ui.Button(
            description="Record",
            icon="circle",
            layout={"width": "auto"},
            tooltip="Record the subscribed pattern into JetStream (fastiot.history)",
        )
        self.copy_code = CopyAsCode(
            code,
            tooltip="Insert the code that captures the selection into a DataFrame (or, while a table is "
            "open, opens that table) as a cell below",
        )
        self.copy_record_code = CopyAsCode(
            record_code,
            description="Copy record code",
            tooltip="Insert the code that records this pattern as a cell below",
        )
        self.summary_view = widgets.HTML()
        self.status_view = widgets.HTML()
        self.tree_view = SubjectTreeView(height=height)
        self.detail_view = SubjectDetailView()
        self.table_area = widgets.VBox()
        self.plot_area = widgets.VBox()

    def _arrange(self) -> list[widgets.Widget]:
        """The browser's children: status and live controls, the tree's controls, tree and pane, areas."""
        self.tree_view.layout.width = "100%"
        tree = widgets.Box([self.tree_view], layout=widgets.Layout(flex=f"3 1 {_TREE_BASIS}", min_width="0"))
        detail = widgets.VBox(
            [
                toolbar(
                    self.open_table_button,
                    self.raw_button,
                    self.record_button,
                    self.copy_code.button,
                    self.copy_record_code.button,
                ),
                self.status_view,
                self.copy_code.output,
                self.copy_record_code.output,
                self.detail_view,
            ],
            layout=widgets.Layout(flex=f"2 1 {_DETAIL_BASIS}", min_width="0", overflow="hidden"),
        )
        return [
            toolbar(
                self.connection_status,
                self.pause_button,
                self.resume_button,
                self.clear_button,
                self.system_button,
                self.nats_names_button,
                self.deliveries_button,
                self.summary_view,
            ),
            toolbar(
                self.pattern_box,
                self.filter_box,
                self.sort_box,
                self.unfold_all_button,
                self.fold_all_button,
            ),
            widgets.HBox(
                [tree, detail], layout=widgets.Layout(flex_flow="row wrap", align_items="flex-start")
            ),
            self.error_view,
            self.plot_area,
            self.table_area,
        ]
