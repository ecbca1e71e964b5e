"""LivePlot: a 24-hour UTC time axis (dates across days); the wheel scrolls the page; the legend is above."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from fastiot_widgets import LivePlot
from fastiot_widgets.live_plot import time_tick_format

NS = 1_000_000_000


def frame(start: str, periods: int, freq: str) -> pd.DataFrame:
    times = pd.date_range(start, periods=periods, freq=freq, tz="UTC")
    return pd.DataFrame({"received_at": times, "subject": "m.a", "value": range(periods)})


def test_the_time_axis_reads_a_24_hour_utc_clock() -> None:
    # 23:20 UTC must read 23:20, not 11:20 (bqplot's own guess is "%I:%M", 12-hour without AM/PM).
    plot = LivePlot.from_dataframe(frame("2024-05-01 23:20", 10, "1min"), "value")
    axis = plot.figure.axes[0]

    assert axis.label == "time (UTC)"
    assert axis.tick_format == "%H:%M:%S"
    assert "%I" not in axis.tick_format and "%p" not in axis.tick_format
    plot.close()


def test_a_range_over_days_shows_dates() -> None:
    plot = LivePlot.from_dataframe(frame("2024-05-01 22:00", 6, "1h"), "value")

    assert plot.figure.axes[0].tick_format == "%Y-%m-%d %H:%M"

    # Zoomed into a few seconds of it (what PanZoom does in the browser): seconds, no date.
    plot.x_scale.max = dt.datetime(2024, 5, 1, 23, 0, 2)
    plot.x_scale.min = dt.datetime(2024, 5, 1, 23, 0, 0)
    assert plot.figure.axes[0].tick_format == "%H:%M:%S.%L"
    plot.close()


def test_time_tick_format_by_range() -> None:
    day = 86_400 * NS
    assert time_tick_format(0, 2 * NS) == "%H:%M:%S.%L"
    assert time_tick_format(0, 10 * 60 * NS) == "%H:%M:%S"
    assert time_tick_format(0, 3 * 3_600 * NS) == "%H:%M"
    assert time_tick_format(day - 60 * NS, day + 60 * NS) == "%Y-%m-%d %H:%M", "past midnight: a date"
    for n in (0, NS, 3_600 * NS, 2 * day):
        assert "%I" not in time_tick_format(0, n)


def test_the_mouse_wheel_zooms_only_while_zoom_is_on() -> None:
    plot = LivePlot.from_dataframe(frame("2024-05-01 12:00", 5, "1s"), "value")
    interaction = plot.figure.interaction

    # Off: bqplot's PanZoom leaves the wheel event alone, so it scrolls the notebook; dragging pans.
    assert not plot.wheel_zoom and interaction.allow_zoom is False and interaction.allow_pan is True

    plot.zoom_button.value = True  # the Zoom toggle, clicked
    assert plot.wheel_zoom and interaction.allow_zoom is True

    plot.wheel_zoom = False  # from code
    assert not plot.zoom_button.value and interaction.allow_zoom is False
    plot.close()


def test_the_legend_sits_above_the_chart_not_over_its_lines() -> None:
    rows = pd.concat([frame("2024-05-01 12:00", 5, "1s"), frame("2024-05-01 12:00", 5, "1s")])
    rows["subject"] = ["m.a"] * 5 + ["m.<b>"] * 5
    plot = LivePlot.from_dataframe(rows, "value")

    assert sorted(plot.labels) == ["m.<b>", "m.a"]
    assert not any(mark.display_legend for mark in plot.figure.marks), "bqplot's legend box covers lines"
    assert "m.a" in plot.legend_view.value and "m.&lt;b&gt;" in plot.legend_view.value
    assert plot.children.index(plot.legend_view) < plot.children.index(plot.figure)
    plot.close()
