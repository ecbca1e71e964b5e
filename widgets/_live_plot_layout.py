"""The controls of the LivePlot, where they sit, and how its time axis and legend read.

The time axis reads a 24-hour UTC clock (bqplot's own guess is a 12-hour one without AM/PM), with
the date when the range spans days. The legend sits above the chart: bqplot's legend box inside the
plot area covered the lines. A plain mouse wheel over the chart scrolls the notebook; it zooms only
while the Zoom toggle is on.

Example:
    >>> from fastiot_widgets._live_plot_layout import legend_html, time_tick_format
    >>> time_tick_format(0, 30 * 1_000_000_000)
    '%H:%M:%S'
    >>> "v1.a" in legend_html(["v1.a"])
    True
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable

import bqplot
import ipywidgets as widgets
import numpy as np

from . import _loop_bound as ui
from ._code import CopyAsCode
from ._layout import toolbar
from ._live import LiveView

__all__ = ["PALETTE", "LivePlotLayout", "color", "epoch_ns", "legend_html", "time_tick_format"]

PALETTE = ("#1565c0", "#c62828", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#4e342e", "#ad1457")
"""Colors of the lines, in order (Material 800 shades: readable on light and dark themes)."""
_NS_PER_S = 1_000_000_000
_NS_PER_DAY = 86_400 * _NS_PER_S


def time_tick_format(first_ns: int, last_ns: int) -> str:
    """The d3 time format of the time axis for a range (nanoseconds since the epoch, UTC).

    bqplot's own guess reads a 12-hour clock without AM/PM ("11:20" for 23:20); the tables beside a
    chart read 24-hour UTC, and so does the chart with this format: seconds for a short range,
    milliseconds for a very short one, and the date once the range spans days.

    Example:
        >>> time_tick_format(0, 30 * 1_000_000_000)
        '%H:%M:%S'
        >>> time_tick_format(0, 2 * 86_400 * 1_000_000_000)
        '%Y-%m-%d %H:%M'
    """
    if first_ns // _NS_PER_DAY != last_ns // _NS_PER_DAY:
        return "%Y-%m-%d %H:%M"
    span = last_ns - first_ns
    if span < 5 * _NS_PER_S:
        return "%H:%M:%S.%L"
    if span < 3_600 * _NS_PER_S:
        return "%H:%M:%S"
    return "%H:%M"


def color(i: int) -> str:
    """The color of the ``i``-th line."""
    return PALETTE[i % len(PALETTE)]


def legend_html(labels: list[str]) -> str:
    """One entry per line drawn: a swatch in the line's color and its label; entries wrap."""
    entries = "".join(
        f"<span style='display:inline-block;margin-right:1.2em;white-space:nowrap'>"
        f"<span style='display:inline-block;width:1.5em;height:3px;vertical-align:middle;"
        f"background:{color(i)}'></span> {html.escape(label)}</span>"
        for i, label in enumerate(labels)
    )
    return f"<div class='fastiot-plot-legend' style='line-height:1.6'>{entries}</div>" if labels else ""


def epoch_ns(value: dt.datetime) -> int:
    """A scale's bound (naive means UTC, as bqplot's date scales send it) in nanoseconds since the epoch."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return int(np.datetime64(value, "ns").view(np.int64))


class LivePlotLayout(LiveView):
    """The LivePlot's controls (its public attributes) and their arrangement."""

    x_scale: bqplot.DateScale
    y_scale: bqplot.LinearScale
    figure: bqplot.Figure
    zoom_button: ui.ToggleButton
    reset_zoom_button: ui.Button
    summary_view: widgets.HTML
    legend_view: widgets.HTML
    copy_code: CopyAsCode

    def _make_controls(self, *, fields_text: str, title: str, height: str, code: Callable[[], str]) -> None:
        """Make the chart and the controls (before the live view's own: pause, resume, clear, connection)."""
        self.x_scale = bqplot.DateScale()
        self.y_scale = bqplot.LinearScale()
        self.figure = bqplot.Figure(
            marks=[],
            axes=[
                bqplot.Axis(
                    scale=self.x_scale, label="time (UTC)", grid_lines="dashed", tick_format="%H:%M:%S"
                ),
                bqplot.Axis(scale=self.y_scale, side="left", label=fields_text, grid_lines="dashed"),
            ],
            title=title,
            animation_duration=0,
            # Room on the right for the last time label.
            fig_margin={"top": 30 if title else 15, "bottom": 45, "left": 60, "right": 40},
            layout=widgets.Layout(width="100%", height=height),
        )
        self.figure.add_class("fastiot-live-plot")
        # A plain wheel scrolls the notebook: bqplot's PanZoom only takes the wheel with allow_zoom.
        self.figure.interaction = bqplot.PanZoom(
            scales={"x": [self.x_scale], "y": [self.y_scale]}, allow_zoom=False
        )
        self.zoom_button = ui.ToggleButton(
            value=False,
            description="Zoom",
            icon="search-plus",
            tooltip="While on, the mouse wheel over the chart zooms it; off, it scrolls the page",
            layout={"width": "auto"},
        )
        self.reset_zoom_button = ui.Button(
            description="Reset zoom",
            icon="expand",
            tooltip="Follow the newest points again",
            layout={"width": "auto"},
        )
        self.summary_view = widgets.HTML()
        self.legend_view = widgets.HTML()
        """The legend, above the chart."""
        self.copy_code = CopyAsCode(code, tooltip="Insert the code that opens this plot as a cell below")

    def _arrange(self, live: bool) -> list[widgets.Widget]:
        """The plot's children: the toolbar (connection and copy as code if live), legend, chart."""
        controls: list[widgets.Widget] = [
            self.pause_button,
            self.resume_button,
            self.clear_button,
            self.zoom_button,
            self.reset_zoom_button,
        ]
        if live:
            controls = [self.connection_status, *controls, self.copy_code.button]
        return [
            toolbar(*controls, self.summary_view),
            self.legend_view,
            self.figure,
            self.error_view,
            self.copy_code.output,
        ]
