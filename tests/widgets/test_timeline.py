"""The Timeline widget, headless: seek, step, play, and the views that follow the cursor."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.history import Recording
from fastiot.history import Timeline as TimelineModel
from fastiot.nats_server import NatsServer
from fastiot_widgets import Timeline, WidgetError
from tests.history.conftest import publish
from tests.waits import wait_until

N = 30


@pytest.fixture
async def js_broker() -> AsyncIterator[NatsBrokerConnection]:
    async with NatsServer(jetstream=True) as server:
        connection = await NatsBrokerConnection.connect(servers=server.url)
        yield connection
        await connection.close()


@pytest.fixture
async def view(js_broker: NatsBrokerConnection) -> AsyncIterator[Timeline]:
    rec = await Recording.start("plant", "v1.tl.>", connection=js_broker)
    for i in range(N):  # one by one: each message its own time
        await publish(js_broker, [(f"v1.tl.m{i % 3}.value", {"value": float(i)})])
    widget = Timeline(await TimelineModel.open(rec))
    await widget.start()
    yield widget
    widget.close()


def _kept(plot: object) -> int:
    return sum(len(times) for times, _ in plot.series.data(10_000).values())  # type: ignore[attr-defined]


def _values(browser_index: object) -> dict[str, float]:
    index = browser_index
    return {s: index.last_payload(s)["value"] for s in index.subjects}  # type: ignore[attr-defined]


async def test_the_browser_shows_the_values_at_the_cursor_and_marks_what_changed(view: Timeline) -> None:
    browser = view.subject_browser()
    full = await view.model.recording.to_dataframe()
    times = full["received_at"].astype("int64").tolist()
    await view.seek(times[4])
    await view.settled()
    assert _values(browser.index) == {"v1.tl.m0.value": 3.0, "v1.tl.m1.value": 4.0, "v1.tl.m2.value": 2.0}
    step = await view.seek(times[5])
    assert step is not None and step.changed == ["v1.tl.m2.value"]  # only what the move changed
    assert _values(browser.index)["v1.tl.m2.value"] == 5.0
    await view.seek(times[0])  # back before two subjects' first message: they are gone from the view
    assert _values(browser.index) == {"v1.tl.m0.value": 0.0}
    assert view.axis.cursor_ms == pytest.approx(times[0] / 1e6)


async def test_the_browser_shows_the_recording_not_live_traffic(
    view: Timeline, js_broker: NatsBrokerConnection
) -> None:
    browser = view.subject_browser()
    await browser.start()  # what a notebook does: an index it is given gets started
    await view.seek(view.model.start_ns)
    await view.settled()
    assert not browser.index.is_running
    await js_broker.publish_raw("v1.live.x", b"\x05")
    await js_broker.flush()
    await view.seek(view.model.start_ns + 1)
    assert browser.index.subjects == ["v1.tl.m0.value"]


async def test_a_cursor_dragged_in_the_browser_moves_the_views(view: Timeline) -> None:
    browser = view.subject_browser()
    view.axis.cursor_ms = view.model.end_ns / 1e6  # what the front end sets while dragging
    await wait_until(lambda: view.cursor_ns == view.model.end_ns, 10, "the cursor at the end")
    await view.settled()
    assert _values(browser.index)["v1.tl.m2.value"] == float(N - 1)


async def test_step_buttons_go_to_the_selected_subjects_messages(view: Timeline) -> None:
    view.subject_choice.value = "v1.tl.m1.value"
    await view.seek(view.model.start_ns)
    step = await view.step(+1)
    assert step is not None and step.state.set_index("subject").loc["v1.tl.m1.value", "value"] == 1.0
    step = await view.step(+1)
    assert step is not None and step.state.set_index("subject").loc["v1.tl.m1.value", "value"] == 4.0
    step = await view.step(-1)
    assert step is not None and step.state.set_index("subject").loc["v1.tl.m1.value", "value"] == 1.0
    view.subject_choice.value = None
    with pytest.raises(WidgetError, match="choose a subject"):
        await view.step(+1)


async def test_play_moves_the_cursor_to_the_end_and_stops(view: Timeline) -> None:
    await view.seek(view.model.start_ns)
    view.play(speed=100)
    assert view.play_button.description == "Pause"
    await wait_until(lambda: not view.playing, 20, "the replay of the timeline reaching the end")
    assert view.cursor_ns == view.model.end_ns
    view.speed = 1000
    assert view.speed == 100.0  # at most 100x


async def test_plot_and_table_follow_without_reloading_what_they_hold(view: Timeline) -> None:
    plot = view.live_plot("value", window=3600)
    table = view.table(window=3600)
    times = (await view.model.recording.to_dataframe())["received_at"].astype("int64").tolist()
    await view.seek(times[10])
    await view.settled()
    assert _kept(plot) == 11
    added = plot.series.points
    await view.seek(view.model.end_ns)
    await view.settled()
    assert _kept(plot) == N
    assert plot.series.points - added == N - 11  # moving on reads only the rows after the last cursor
    assert len(table.capture) == N
    first = view.model.start_ns
    await view.seek(first)
    await view.settled()
    assert _kept(plot) == 1  # a window ending at the cursor: only the first message
    with pytest.raises(WidgetError, match="not a time"):
        await view.seek("yesterday-ish")
