"""The controls of the Publisher and where they sit; the Publisher itself wires what they do.

Example:
    >>> from fastiot_widgets._publisher_layout import PublisherLayout
    >>> PublisherLayout.__mro__[1].__name__
    'VBox'
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets

from . import _loop_bound as ui
from ._code import CopyAsCode
from ._common import ConnectionStatus
from ._forms import DESCRIPTION_STYLE, FormField
from ._layout import toolbar
from ._publisher_panels import HistoryPanel, TemplatesPanel

__all__ = ["PublisherLayout"]

_WIDE = "32em"  # the inputs' width (a Layout per widget: widgets must not share one)


class PublisherLayout(widgets.VBox):
    """The Publisher's controls (its public attributes) and their arrangement."""

    subject_field: ui.Text
    mode_buttons: ui.ToggleButtons
    encoding_field: ui.Dropdown
    payload_field: ui.Textarea
    headers_field: ui.Textarea
    publish_button: ui.Button
    timeout_field: ui.BoundedFloatText
    qos_field: ui.ToggleButtons
    retain_box: ui.Checkbox
    copy_code: CopyAsCode
    connection_status: ConnectionStatus
    field_errors: widgets.HTML
    output: widgets.HTML
    history_panel: HistoryPanel
    templates_panel: TemplatesPanel
    title: widgets.HTML

    def _make_controls(
        self,
        *,
        subject: str,
        timeout: float,
        code: Callable[[], str],
    ) -> None:
        """Make the controls; the Publisher adds its history and templates panels (they act on it)."""
        self.subject_field = ui.Text(
            value=subject,
            description="subject",
            tooltip="Edit to publish elsewhere; clear it to go back to the model's subject",
            style=DESCRIPTION_STYLE,
            layout=widgets.Layout(width=_WIDE),
        )
        self.mode_buttons = ui.ToggleButtons(
            options=["publish", "request", "mqtt"],
            tooltips=["Publish on NATS", "Send a request and show the reply", "Publish to MQTT devices"],
            style={"button_width": "7em"},
        )
        self.qos_field = ui.ToggleButtons(
            options=[("QoS 0", 0), ("QoS 1", 1)],
            value=0,
            tooltips=["At most once", "At least once: acknowledged by the broker's MQTT listener"],
            style={"button_width": "5em"},
        )
        self.retain_box = ui.Checkbox(
            value=False, description="retain", indent=False, layout=widgets.Layout(width="7em")
        )
        self.encoding_field = ui.Dropdown(
            options=[
                ("msgpack (written as JSON)", "msgpack"),
                ("JSON", "json"),
                ("text", "text"),
                ("hex bytes", "hex"),
            ],
            value="msgpack",
            description="payload as",
            style=DESCRIPTION_STYLE,
            layout=widgets.Layout(width=_WIDE),
        )
        self.payload_field = ui.Textarea(
            description="payload",
            placeholder='{"value": 21.5}',
            style=DESCRIPTION_STYLE,
            layout=widgets.Layout(width=_WIDE, height="6em"),
        )
        self.headers_field = ui.Textarea(
            description="headers",
            placeholder="one a line, e.g. Trace-Id: 42",
            style=DESCRIPTION_STYLE,
            layout=widgets.Layout(width=_WIDE, height="3.2em"),
        )
        self.publish_button = ui.Button(icon="paper-plane", button_style="primary")
        self.timeout_field = ui.BoundedFloatText(
            value=timeout,
            min=0.01,
            max=3600.0,
            step=0.5,
            description="timeout s",
            style=DESCRIPTION_STYLE,
            layout=widgets.Layout(width="16em"),
        )
        self.copy_code = CopyAsCode(code, tooltip="Insert the Python that sends this message as a cell below")
        self.connection_status = ConnectionStatus()
        self.field_errors = widgets.HTML()
        """Validation errors, shown next to the form."""
        self.output = widgets.HTML()
        """The reply, the error, or what was published."""
        self.title = widgets.HTML()

    def _arrange(self, free_form: bool, fields: dict[str, FormField]) -> list[widgets.Widget]:
        """The Publisher's children: title, the form's inputs, the buttons, what happened, the panels."""
        inputs: list[widgets.Widget] = (
            [self.mode_buttons, self.subject_field, self.encoding_field, self.payload_field]
            if free_form
            else [self.subject_field, *(f.widget for f in fields.values())]
        )
        return [
            toolbar(self.title, self.connection_status),
            *inputs,
            self.headers_field,
            toolbar(
                self.publish_button,
                self.timeout_field,
                self.qos_field,
                self.retain_box,
                self.copy_code.button,
            ),
            self.copy_code.message,
            self.copy_code.code_box,
            self.field_errors,
            self.output,
            ui.Accordion(
                children=[self.history_panel, self.templates_panel], titles=("History", "Templates")
            ),
        ]
