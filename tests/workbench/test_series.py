"""fastiot.series, headless: bounded series, min/max thinning, and a LiveSeries on the real nats-server."""

from __future__ import annotations

import numpy as np
import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.serialization import pack
from fastiot.exceptions import LivePlotError
from fastiot.series import LiveSeries, SeriesBuffer, SeriesKey, decimate, numeric_value


def test_decimate_keeps_the_extremes_in_time_order_within_the_limit() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(size=10_001)
    values[4321], values[7777] = 50.0, -50.0
    times = np.arange(len(values)).astype("M8[ms]")
    t, v = decimate(times, values, 1_000)
    assert len(v) <= 1_000 and 50.0 in v and -50.0 in v
    assert np.all(np.diff(t.astype(np.int64)) > 0)
    assert len(decimate(times[:10], values[:10], 1_000)[1]) == 10  # few points stay as they are
    nan = values.copy()
    nan[:5000] = np.nan
    assert len(decimate(times, nan, 100)[1]) <= 100
    with pytest.raises(LivePlotError, match="max_points"):
        decimate(times, values, 1)


def test_a_buffer_is_bounded_by_points_and_window() -> None:
    buffer = SeriesBuffer(window_ns=10, max_points=5)
    for t in range(8):
        buffer.append(t, float(t))
    assert len(buffer) == 5 and buffer.dropped == 3
    buffer.trim(now_ns=15)  # keeps t >= 5
    times, values = buffer.arrays()
    assert values.tolist() == [5.0, 6.0, 7.0] and times.dtype == np.dtype("M8[ns]")
    numbers = [numeric_value(x) for x in (1, 2.5, True, "3", None, np.float32(1.5))]
    assert numbers == [1.0, 2.5, None, None, None, 1.5]
    assert SeriesKey("a.b", "value").label == "a.b" and SeriesKey("a.b", "x.y").label == "a.b x.y"


async def test_a_live_series_follows_subjects_fields_and_clears(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    news: list[int] = []
    async with LiveSeries(f"{prefix}.*", ["value", "inner.x"], broker, window=60) as series:
        series.on_change(news.append)
        await broker.publish_raw(f"{prefix}.a", pack({"value": 1, "inner": {"x": 2}}))
        await broker.publish_raw(f"{prefix}.b", b"3.5")  # a bare number is the field "value"
        await broker.publish_raw(f"{prefix}.c", pack({"value": "text"}))  # no points
        await series.wait_for(3, timeout=5)
        assert series.keys == [
            SeriesKey(f"{prefix}.a", "inner.x"),
            SeriesKey(f"{prefix}.a", "value"),
            SeriesKey(f"{prefix}.b", "value"),
        ]
        assert {k.label: v.tolist() for k, (t, v) in series.data().items()}[f"{prefix}.b"] == [3.5]
        series.clear()
        assert series.keys == [] and news[-1] == 0
    assert not series.is_running
    with pytest.raises(LivePlotError, match="fields"):
        LiveSeries("a", [])
