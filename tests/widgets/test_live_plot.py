"""LivePlot, headless, against the session's real nats-server: what the chart's marks and traitlets hold."""

from __future__ import annotations

import datetime as dt

import bqplot
import numpy as np
import pandas as pd
import pytest

from fastiot.capture import MessageCapture
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.serialization import pack
from fastiot.exceptions import LivePlotError
from fastiot.series import LiveSeries
from fastiot_widgets import LivePlot
from tests.waits import wait_for_trait

FAST = 0.02


def _line(plot: LivePlot, label: str) -> tuple[np.ndarray, np.ndarray]:
    """The points a line of the chart holds (what went to the browser): times in ms, values."""
    mark = plot.figure.marks[plot.labels.index(label)]
    assert mark.labels == [label]
    return mark.x, mark.y


async def _plot(broker: NatsBrokerConnection, *args: object, **kwargs: object) -> LivePlot:
    plot = LivePlot(*args, connection=broker, refresh_interval=FAST, **kwargs)  # type: ignore[arg-type]
    await plot.start()
    return plot


async def test_plots_fields_of_several_subjects_on_one_chart(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    a, b = f"{prefix}.press_1.temperature", f"{prefix}.oven_1.temperature"
    plot = await _plot(broker, f"{prefix}.*.temperature", ["value", "sensor.raw", '["a.b"]'])
    assert plot.running and plot.series.is_running
    for i in range(3):
        await broker.publish_raw(a, pack({"value": 20.0 + i, "sensor": {"raw": 100 + i}, "a.b": i * 10}))
        await broker.publish_raw(b, pack({"value": 180.5 - i, "unit": "degC"}))
    await wait_for_trait(plot, "points_shown", lambda n: n == 3 * 3 + 3)
    assert sorted(plot.labels) == sorted([a, f"{a} sensor.raw", f'{a} ["a.b"]', b])
    times, values = _line(plot, a)
    assert values.tolist() == [20.0, 21.0, 22.0] and values.dtype == np.float32
    assert times.dtype == np.dtype("M8[ms]") and np.all(np.diff(times.astype(np.int64)) >= 0)
    now = np.datetime64(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None), "ms")
    assert abs((now - times[-1]) / np.timedelta64(1, "s")) < 60, "stamped with the receive time"
    assert _line(plot, f"{a} sensor.raw")[1].tolist() == [100, 101, 102]
    assert _line(plot, f'{a} ["a.b"]')[1].tolist() == [0, 10, 20]  # a key with a dot in it
    assert _line(plot, b)[1].tolist() == [180.5, 179.5, 178.5]
    assert plot.figure.axes[1].label == 'value, sensor.raw, ["a.b"]'
    # The legend names every line, above the chart (inside it, bqplot's legend box covered lines).
    assert all(label in plot.legend_view.value for label in (a, f"{a} sensor.raw", b))
    assert isinstance(plot.figure.interaction, bqplot.PanZoom)
    assert set(plot.figure.interaction.scales) == {"x", "y"}  # pan and zoom on both axes
    await plot.aclose()
    assert not plot.series.is_running


async def test_new_points_move_the_lines_and_only_changed_lines_are_sent(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    a, b = f"{prefix}.a", f"{prefix}.b"
    plot = await _plot(broker, [a, b])
    await broker.publish_raw(a, pack({"value": 1}))
    await broker.publish_raw(b, pack({"value": 2}))
    await wait_for_trait(plot, "points_shown", lambda n: n == 2)
    first_a = _line(plot, a)[0][-1]
    sent = plot.updates_sent
    await broker.publish_raw(a, pack({"value": 3}))
    await wait_for_trait(plot, "points_shown", lambda n: n == 3)
    times, values = _line(plot, a)
    assert values.tolist() == [1, 3] and times[-1] >= first_a
    assert plot.updates_sent == sent + 1, "the line of b did not change and was not sent again"
    await plot.aclose()


async def test_memory_and_what_is_sent_are_bounded(broker: NatsBrokerConnection, prefix: str) -> None:
    subject = f"{prefix}.fast"
    plot = await _plot(broker, subject, max_points=50, display_points=10)
    for i in range(120):
        await broker.publish_raw(subject, pack({"value": float(i % 7) if i != 90 else 1000.0}))
    await plot.series.wait_for(120, timeout=10)
    await wait_for_trait(plot, "points_shown", lambda n: n == 10)
    key = plot.series.keys[0]
    assert len(plot.series._series[key]) == 50 and plot.series.dropped == 70
    values = _line(plot, subject)[1]
    assert len(values) == 10 and 1000.0 in values.tolist(), "thinning keeps the spike"
    await plot.aclose()

    with pytest.raises(LivePlotError, match="window"):
        LivePlot(subject, window=dt.timedelta(0))
    with pytest.raises(LivePlotError, match="subjects"):
        LivePlot([])
    with pytest.raises(LivePlotError, match="fields"):
        LivePlot(subject, fields=[])


async def test_only_numbers_are_plotted(broker: NatsBrokerConnection, prefix: str) -> None:
    subject = f"{prefix}.mixed"
    plot = await _plot(broker, subject, ["value", "on"])
    await broker.publish_raw(subject, pack({"value": "high", "on": True}))  # text and bool: no points
    await broker.publish_raw(subject, b"\xc1\xff")  # nothing decodes
    await broker.publish_raw(subject, b"21.5")  # text that is JSON: a number
    await broker.publish_raw(subject, pack({"value": 7}))
    await plot.series.wait_for(2, timeout=10)
    await wait_for_trait(plot, "points_shown", lambda n: n == 2)
    assert plot.labels == [subject] and _line(plot, subject)[1].tolist() == [21.5, 7]
    await plot.aclose()


async def test_pause_freezes_the_chart_and_keeps_collecting(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    subject = f"{prefix}.p"
    plot = await _plot(broker, subject)
    await broker.publish_raw(subject, pack({"value": 1}))
    await wait_for_trait(plot, "points_shown", lambda n: n == 1)
    plot.pause_button.click()
    assert plot.paused and not plot.series.is_paused
    for v in (2, 3):
        await broker.publish_raw(subject, pack({"value": v}))
    await plot.series.wait_for(3, timeout=10)
    plot.refresh()
    assert _line(plot, subject)[1].tolist() == [1]
    plot.resume_button.click()
    await wait_for_trait(plot, "points_shown", lambda n: n == 3)
    assert _line(plot, subject)[1].tolist() == [1, 2, 3]
    await plot.aclose()


async def test_zooming_stops_following_and_reset_zoom_fits_again(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    plot = await _plot(broker, f"{prefix}.z")
    assert plot.follow
    plot.x_scale.min = dt.datetime(2024, 1, 1)  # what PanZoom does in the browser
    assert not plot.follow
    plot.reset_zoom_button.click()
    assert plot.follow and plot.x_scale.min is None and plot.y_scale.max is None
    await plot.aclose()


async def test_add_a_field_of_another_subject_to_the_chart(broker: NatsBrokerConnection, prefix: str) -> None:
    a, b = f"{prefix}.a", f"{prefix}.b"
    plot = await _plot(broker, a)
    await plot.add(b, "load")
    assert plot.series.selections == [(a, "value"), (b, "load")] and plot.running
    await broker.publish_raw(b, pack({"value": 1, "load": 0.5}))
    await broker.publish_raw(a, pack({"value": 2, "load": 9}))
    await wait_for_trait(plot, "labels", lambda labels: len(labels) == 2)
    assert sorted(plot.labels) == [a, f"{b} load"]
    await plot.aclose()


async def test_from_a_capture_and_from_a_dataframe(broker: NatsBrokerConnection, prefix: str) -> None:
    capture = await MessageCapture(f"{prefix}.>", broker).start()
    for i in range(3):
        await broker.publish_raw(f"{prefix}.s", pack({"value": i, "nested": {"x": i * 2}}))
    await capture.wait_for(3, timeout=10)
    plot = LivePlot.from_capture(capture, ["value", "nested.x"], refresh_interval=FAST)
    assert not plot.running and plot.copy_code.button.disabled
    assert sorted(plot.labels) == [f"{prefix}.s", f"{prefix}.s nested.x"]
    assert _line(plot, f"{prefix}.s nested.x")[1].tolist() == [0, 2, 4]
    # It keeps following the capture.
    await broker.publish_raw(f"{prefix}.s", pack({"value": 3, "nested": {"x": 6}}))
    await wait_for_trait(plot, "points_shown", lambda n: n == 8)
    plot.close()
    await broker.publish_raw(f"{prefix}.s", pack({"value": 4, "nested": {"x": 8}}))
    await capture.wait_for(5, timeout=10)
    assert plot.series.points == 8, "a closed plot stops following the capture"
    await capture.stop()

    frame = pd.DataFrame(
        {
            "received_at": pd.date_range("2024-05-01", periods=6, freq="1s", tz="UTC")[::-1],
            "subject": ["m.a", "m.b"] * 3,
            "value": [1.0, 2.0, None, 4.0, 5.0, 6.0],
        }
    )
    plot = LivePlot.from_dataframe(frame, "value", window=dt.timedelta(seconds=3.5))
    assert plot.labels == ["m.a", "m.b"]
    times, values = _line(plot, "m.a")
    # Sorted by time, the window counted back from the newest row, the missing value skipped.
    assert values.tolist() == [1.0] and times[0] == np.datetime64("2024-05-01T00:00:05", "ms")
    assert _line(plot, "m.b")[1].tolist() == [4.0, 2.0]
    with pytest.raises(LivePlotError, match="no time column"):
        LivePlot.from_dataframe(frame, "value", time="t")
    with pytest.raises(LivePlotError, match="none of the fields"):
        LivePlot.from_dataframe(frame, "pressure")
    plot.close()


async def test_copy_as_code_gives_the_code_of_this_plot(broker: NatsBrokerConnection, prefix: str) -> None:
    plot = await _plot(broker, [f"{prefix}.a", f"{prefix}.b"], ["value", "x"], window=60)
    plot.copy_code.frontend_timeout = 0.05
    assert await plot.copy_code.copy() == "shown"
    assert plot.copy_code.code.splitlines()[-2] == (
        f'plot = LivePlot(["{prefix}.a", "{prefix}.b"], fields=["value", "x"], '
        "window=datetime.timedelta(seconds=60.0))"
    )
    await plot.aclose()


async def test_close_cancels_the_subscription(broker: NatsBrokerConnection, prefix: str) -> None:
    plot = await _plot(broker, f"{prefix}.c")
    assert plot.series.is_running
    plot.close()
    await plot._tasks.wait()
    assert not plot.series.is_running and not plot.is_render_scheduled

    # A plot of a given series leaves it running.
    series = await LiveSeries(f"{prefix}.c", connection=broker).start()
    plot = LivePlot(series, refresh_interval=FAST)
    await plot.start()
    await plot.aclose()
    assert series.is_running
    await series.stop()


async def test_one_line_of_one_point_is_counted_in_the_singular(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    plot = await _plot(broker, f"{prefix}.s")
    await broker.publish_raw(f"{prefix}.s", pack({"value": 1.5, "text": "no number"}))
    await broker.publish_raw(f"{prefix}.s", b"\xc1")
    await wait_for_trait(plot, "points_shown", lambda n: n == 1)
    await wait_for_trait(plot.summary_view, "value", lambda v: "did not decode" in v)
    summary = plot.summary_view.value
    assert "1 line" in summary and "1 point" in summary and "1 payload did not decode" in summary
    assert "1 lines" not in summary and "1 points" not in summary
    assert repr(plot).endswith("1 line)")
    await plot.aclose()
