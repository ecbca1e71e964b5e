"""LivePlot: numeric fields of live NATS subjects as a time-series chart (bqplot), zoomable and pannable.

A thin view over :class:`fastiot.series.LiveSeries`, which keeps each series bounded (time window,
points per series, number of series). The chart is bqplot, which sends arrays to the browser as
binary buffers: each update sends, per series that changed, at most ``display_points`` points
(thinned by min/max buckets, so spikes stay), and updates come at most every ``refresh_interval``
seconds however fast messages arrive.

The axes fit the points in the window, so the lines move left as time goes on; dragging the chart
pans it (bqplot's PanZoom) and holds the axes there, Reset zoom fits them again. The mouse wheel
scrolls the notebook, as everywhere else on the page; it zooms the chart only while the Zoom toggle
is on (:attr:`LivePlot.wheel_zoom`). Times read on a 24-hour UTC clock, with the date when the range
spans days. Pause freezes the chart while the series keep collecting, so nothing is missing after Resume.

Open one from code, from a numeric field in the SubjectBrowser, or from data you have:

Example:
    >>> from datetime import timedelta
    >>> from fastiot_widgets import LivePlot
    >>> plot = LivePlot("v1.thing.*.temperature", "value", window=timedelta(minutes=5))  # doctest: +SKIP
    >>> plot                                                     # shows it   # doctest: +SKIP
    >>> LivePlot.from_capture(capture, "value")                  # doctest: +SKIP
    >>> LivePlot.from_dataframe(recording.to_dataframe(), ["value", "pressure"])  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import bqplot
import numpy as np
import traitlets

from fastiot.core.broker_connection import BrokerConnection
from fastiot.exceptions import LivePlotError
from fastiot.series import (
    DEFAULT_DISPLAY_POINTS,
    DEFAULT_MAX_POINTS,
    DEFAULT_MAX_SERIES,
    DEFAULT_WINDOW,
    LiveSeries,
    SeriesKey,
)

from ._code import code_for_plot
from ._common import plural
from ._live import summary_html
from ._live_plot_layout import LivePlotLayout, color, epoch_ns, legend_html, time_tick_format

if TYPE_CHECKING:
    import pandas as pd

    from fastiot.capture import MessageCapture

__all__ = ["DEFAULT_PLOT_HEIGHT", "DEFAULT_PLOT_REFRESH", "LivePlot", "time_tick_format"]

DEFAULT_PLOT_HEIGHT = "320px"
# One update a second: a 5-minute window moves ~3 pixels per update, and each update costs comm
# bytes (three busy lines: 5.3 kB/s in bench/results/firehose.json); 2 Hz would send each line twice as often.
DEFAULT_PLOT_REFRESH = 1.0
_MS = np.dtype("M8[ms]")


class LivePlot(LivePlotLayout):
    """A live chart of numeric fields of NATS subjects over a sliding time window.

    Args:
        subjects: A subject or pattern, or a list of them (each matching subject is its own line); or
            a :class:`~fastiot.series.LiveSeries` to view (which the plot then neither starts nor stops).
        fields: A field path or a list of them (``"value"``, ``"sensor.temp"``, ``'["a.b"]'`` for a key
            with a dot).
        window: How much history is shown: a timedelta or seconds.
        connection: The broker connection; ``None`` means the workbench connection.
        max_points: Points kept per series at most.
        display_points: Points drawn per series at most (min/max thinning).
        max_series: Lines at most.
        refresh_interval: The least seconds between two updates of the chart.
        height: The chart's CSS height.

    Raises:
        fastiot.exceptions.LivePlotError: No subjects or fields, or a window that is not positive.

    The series (the headless model) are :attr:`series`; ``await plot.start()`` waits until they are
    subscribed (in a notebook that happens by itself), :meth:`close` unsubscribes.
    """

    _pause_model = False  # Pause freezes the chart; the series keep collecting

    follow = traitlets.Bool(
        True,
        help="The axes fit the newest points; panning or zooming stops it, Reset zoom resumes.",
    )
    display_points = traitlets.Int(DEFAULT_DISPLAY_POINTS, help="Points drawn per series at most.")
    labels = traitlets.List(traitlets.Unicode(), help="The legend: one label per line drawn, in order.")
    points_shown = traitlets.Int(0, help="Points drawn by the last update, all lines together.")
    updates_sent = traitlets.Int(0, help="Line updates sent to the browser (a line whose points changed).")
    wheel_zoom = traitlets.Bool(
        False,
        help="The mouse wheel over the chart zooms it (the Zoom toggle); off, the wheel scrolls the page.",
    )

    def __init__(
        self,
        subjects: str | Sequence[str] | LiveSeries,
        fields: str | Sequence[str] = "value",
        window: dt.timedelta | float | None = dt.timedelta(seconds=DEFAULT_WINDOW),
        *,
        connection: BrokerConnection | None = None,
        max_points: int = DEFAULT_MAX_POINTS,
        display_points: int = DEFAULT_DISPLAY_POINTS,
        max_series: int = DEFAULT_MAX_SERIES,
        refresh_interval: float = DEFAULT_PLOT_REFRESH,
        height: str = DEFAULT_PLOT_HEIGHT,
        title: str = "",
        _owns_series: bool = False,
    ) -> None:
        if isinstance(subjects, LiveSeries):
            series, owns = subjects, _owns_series
        else:
            if not isinstance(subjects, str) and not subjects:  # a bad pattern: LiveSeries says what is wrong
                raise LivePlotError("give the subjects to plot, e.g. LivePlot('v1.thing.press_1.temp')")
            series = LiveSeries(
                subjects,
                fields,
                connection,
                window=window,
                max_points=max_points,
                max_series=max_series,
            )
            owns = True
        if display_points < 2:
            raise LivePlotError(f"display_points must be >= 2, got {display_points}")
        live = bool(series.subjects)  # else DataFrame or capture rows fill it
        self.series: LiveSeries = series
        self._live: bool = live
        self._marks: dict[SeriesKey, bqplot.Lines] = {}
        self._shown: dict[SeriesKey, tuple[int, int, int]] = {}
        self._setting_scale: bool = False
        self._unfollow: Any = None  # how a capture source stops feeding the series (from_capture)

        self._make_controls(
            fields_text=", ".join(self.series.fields), title=title, height=height, code=self._code
        )
        self.copy_code.button.disabled = not live  # a DataFrame has no code that makes it again
        self.reset_zoom_button.on_click(lambda _b: self.reset_zoom())
        self.zoom_button.observe(self._on_zoom_toggle, names="value")
        self.x_scale.observe(self._on_user_zoom, names=["min", "max"])
        self.y_scale.observe(self._on_user_zoom, names=["min", "max"])

        super().__init__(
            self.series,
            owns_model=owns,
            connection=connection,
            refresh_interval=refresh_interval,
            autostart=live,
            children=[],
        )
        self.display_points = display_points
        self.children = self._arrange(live)
        self.add_class("fastiot-live-plot-view")
        self.refresh()

    # -- other sources ------------------------------------------------------------------------------

    @classmethod
    def from_dataframe(
        cls,
        frame: pd.DataFrame,
        fields: str | Sequence[str] = "value",
        *,
        time: str = "received_at",
        subject: str | None = "subject",
        window: dt.timedelta | float | None = None,
        **kwargs: Any,
    ) -> LivePlot:
        """A chart of a DataFrame's rows: a capture's, a recording's, or any with times and numbers.

        Args:
            frame: One row per message, with a time column and the fields as columns (a capture's
                flattened ``a.b`` columns work as the path ``a.b``).
            fields: The columns (or paths) to plot.
            time: The time column.
            subject: The column that names each row's series; ``None`` plots one line per field.
            window: Show only the last part (relative to the newest row); ``None`` shows everything.
            kwargs: ``display_points``, ``max_points``, ``height``, ``title``, ``refresh_interval``.

        Raises:
            fastiot.exceptions.LivePlotError: The time column or every field is missing.

        Example:
            >>> LivePlot.from_dataframe(capture.to_dataframe(), "value")   # doctest: +SKIP
        """
        series = _static_series(fields, window, kwargs)
        series.add_frame(frame, time=time, subject=subject)
        return cls(series, _owns_series=True, **kwargs)

    @classmethod
    def from_capture(
        cls, capture: MessageCapture, fields: str | Sequence[str] = "value", **kwargs: Any
    ) -> LivePlot:
        """A chart of a capture's rows that keeps following the capture while it runs.

        Example:
            >>> capture = await MessageCapture("v1.thing.>").start()   # doctest: +SKIP
            >>> LivePlot.from_capture(capture, "value")                 # doctest: +SKIP
        """
        window = kwargs.pop("window", None)
        series = _static_series(fields, window, kwargs)
        frame = capture.to_dataframe()
        if len(frame):
            series.add_frame(frame)
        plot = cls(series, _owns_series=True, **kwargs)

        def on_rows(n: int) -> None:
            if n > 0:  # 0: the capture was cleared; what is drawn stays
                series.add_frame(capture.tail(n))

        capture.on_message(on_rows, min_interval=plot.refresh_interval)
        plot._unfollow = lambda: capture.on_message(on_rows, remove=True)
        return plot

    # -- life cycle ---------------------------------------------------------------------------------

    def _listen(self, callback: Any, remove: bool) -> None:
        self.series.on_change(callback, remove, min_interval=self.refresh_interval)

    async def add(self, subject: str, field: str = "value") -> None:
        """Also plot ``field`` of ``subject`` on this chart (as the SubjectBrowser's plot buttons do)."""
        await self.series.add_selection(subject, field)
        self.running = self.series.is_running
        self.figure.axes[1].label = ", ".join(self.series.fields)
        self._request_render(now=True)

    def reset_zoom(self) -> None:
        """Undo panning and zooming: the axes fit the points again, and follow them as they come."""
        self.follow = True
        self._setting_scale = True
        try:
            for scale in (self.x_scale, self.y_scale):
                with scale.hold_sync():
                    scale.min = None
                    scale.max = None
                # Sent even if Python already had None: PanZoom may have moved it in the browser only.
                scale.send_state(["min", "max"])
        finally:
            self._setting_scale = False

    def _on_user_zoom(self, _change: Any) -> None:
        if not self._setting_scale:  # PanZoom in the browser moved a scale
            self.follow = False
        self._set_time_format()

    def _on_zoom_toggle(self, change: dict[str, Any]) -> None:
        self.wheel_zoom = bool(change["new"])

    @traitlets.observe("wheel_zoom")
    def _on_wheel_zoom(self, change: dict[str, Any]) -> None:
        if "figure" not in self.__dict__:
            return  # set before the chart exists (a constructor keyword): the chart reads it then
        self.figure.interaction.allow_zoom = change["new"]
        self.zoom_button.value = change["new"]

    def _set_time_format(self, times: Sequence[np.ndarray] = ()) -> None:
        """Format the time axis for the range shown: the one zoomed to, else the points'."""
        low, high = self.x_scale.min, self.x_scale.max
        if low is not None and high is not None:
            first, last = epoch_ns(low), epoch_ns(high)
        else:
            ends = [(int(t[0].view(np.int64)), _last(t)) for t in times if len(t)]
            if not ends:
                return
            first, last = min(e[0] for e in ends), max(e[1] for e in ends)
        tick_format = time_tick_format(first, last)
        axis = self.figure.axes[0]
        if axis.tick_format != tick_format:
            axis.tick_format = tick_format

    def close(self) -> None:
        """Stop the series' subscription (or stop following the capture) and the updates."""
        unfollow = self.__dict__.pop("_unfollow", None)  # not there if __init__ failed
        if unfollow is not None:
            unfollow()
        super().close()

    def _code(self) -> str:
        window = self.series.window_ns
        subjects = self.series.subjects
        return code_for_plot(
            subjects[0] if len(subjects) == 1 else subjects,
            self.series.fields if len(self.series.fields) > 1 else self.series.fields[0],
            window=None if window is None else window / 1e9,
        )

    # -- drawing ------------------------------------------------------------------------------------

    def _render(self) -> None:
        series = self.series
        parts = [plural(len(series.keys), "line"), plural(series.points, "point")]
        if series.undecodable:
            parts.append(f"{plural(series.undecodable, 'payload')} did not decode")
        if series.series_not_kept:
            parts.append(f"{plural(series.series_not_kept, 'value')} of further lines not kept (max_series)")
        if self.paused:
            parts.append("<b>paused</b>")
        elif self._live and not self.running:
            parts.append("<b>stopped</b>")
        self.summary_view.value = summary_html(parts)
        if self.paused:
            return
        data = series.data(self.display_points)
        shown = 0
        added = False
        for key, (times, values) in data.items():
            shown += len(values)
            mark = self._marks.get(key)
            if mark is None:
                mark = self._marks[key] = self._new_mark(key, len(self._marks))
                added = True
            signature = (len(times), int(times[0].view(np.int64)) if len(times) else 0, _last(times))
            if self._shown.get(key) == signature:
                continue  # nothing new on this line: send nothing
            self._shown[key] = signature
            with mark.hold_sync():
                mark.x = times.astype(_MS)
                mark.y = values.astype(np.float32)  # half the bytes; a chart needs no more precision
            self.updates_sent += 1
        for key in [k for k in self._marks if k not in data]:  # cleared
            del self._marks[key]
            self._shown.pop(key, None)
            added = True
        self._set_time_format([times for times, _values in data.values()])
        if added:
            self.figure.marks = list(self._marks.values())
            self.labels = [key.label for key in self._marks]
            self.legend_view.value = legend_html(self.labels)
        self.points_shown = shown
        self._set_shows_traffic(self._live and series.is_running)

    def _new_mark(self, key: SeriesKey, i: int) -> bqplot.Lines:
        return bqplot.Lines(
            x=np.array([], dtype=_MS),
            y=np.array([], dtype=np.float32),
            scales={"x": self.x_scale, "y": self.y_scale},
            labels=[key.label],
            display_legend=False,  # the legend is legend_view, above the chart
            colors=[color(i)],
            stroke_width=1.5,
        )

    def __repr__(self) -> str:
        return f"LivePlot({self.series.subjects}, {self.series.fields}, {plural(len(self._marks), 'line')})"


def _last(times: np.ndarray) -> int:
    return int(times[-1].view(np.int64)) if len(times) else 0


def _static_series(
    fields: str | Sequence[str], window: dt.timedelta | float | None, kwargs: dict[str, Any]
) -> LiveSeries:
    """A LiveSeries that subscribes to nothing: DataFrame rows and capture rows fill it."""
    return LiveSeries(
        [],
        fields,
        window=window,
        max_points=kwargs.pop("max_points", DEFAULT_MAX_POINTS),
        max_series=kwargs.pop("max_series", DEFAULT_MAX_SERIES),
    )
