"""The Timeline widget, headless: seek, step, play, and the views that follow the cursor."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.history import Recording
from fastiot.history import Timeline as TimelineModel
from fastiot.nats_server import NatsServer
from fastiot_widgets import SubjectBrowser, Timeline, WidgetError
from tests.history.conftest import publish
from tests.waits import wait_until
from tests.widgets.test_subject_browser import frontend_sends

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


class Reads:
    """Counts the timeline's reads (and the messages they give), the real ones still done."""

    def __init__(self, model: TimelineModel) -> None:
        self.calls: dict[str, list[tuple[int, int]]] = {
            "window": [],
            "window_messages": [],
            "messages_at": [],
        }
        for name in self.calls:
            self._wrap(model, name)

    def _wrap(self, model: TimelineModel, name: str) -> None:
        read = getattr(model, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            second = args[1] if len(args) > 1 and isinstance(args[1], int) else 0
            self.calls[name].append((int(args[0]), second))
            return await read(*args, **kwargs)

        setattr(model, name, counted)

    def clear(self) -> None:
        for calls in self.calls.values():
            calls.clear()


def _flashed(browser: SubjectBrowser) -> set[str]:
    """The rows the browser's tree marks as changed when it renders now."""
    sent: list[dict[str, Any]] = []
    browser.tree_view.send = sent.append  # type: ignore[method-assign]
    browser.refresh()
    return {path for message in sent for path in message.get("flash", [])}


async def test_the_views_follow_a_cursor_move_without_reloading_what_they_hold(view: Timeline) -> None:
    full = await view.model.recording.to_dataframe()
    times = full["received_at"].astype("int64").tolist()
    browser = view.subject_browser()
    plot = view.live_plot("value", window=dt.timedelta(microseconds=(times[N - 1] - times[0]) // 1000 + 1))
    # The table holds the rows twice the next step's gap either side of the cursor: that step stays
    # in the middle of what it holds.
    table = view.table(window=dt.timedelta(microseconds=2 * (times[16] - times[15]) // 1000 + 2))
    half = view.views[-1].half_ns  # type: ignore[union-attr]
    frontend_sends(browser.tree_view, {"type": "viewport", "start": 0, "stop": 40})
    await view.seek(times[15])
    await view.settled()
    reads = Reads(view.model)
    _flashed(browser)

    # The browser: each subject's value at the cursor; the row of the one message stepped over flashes.
    await view.seek(times[16])
    await view.settled()
    assert _values(browser.index) == {"v1.tl.m0.value": 15.0, "v1.tl.m1.value": 16.0, "v1.tl.m2.value": 14.0}
    flashed = _flashed(browser)
    assert "v1.tl.m1.value" in flashed
    assert not {"v1.tl.m0.value", "v1.tl.m2.value"} & flashed, "only what changed is marked"
    # The plot: a window ending at the cursor, of which only the new part was read.
    assert max(max(t) for t, _ in plot.series.data(10_000).values()).astype("int64") == times[16]
    assert reads.calls["window"] == [(times[15] + 1, times[16])], "the plot reads only past its last cursor"
    # The table: still in the middle of the rows it holds, so no read.
    assert reads.calls["window_messages"] == []
    held = full[(full["received_at"].astype("int64") - times[15]).abs() <= half]
    assert table.to_dataframe()["value"].tolist() == held["value"].tolist(), "the rows around the cursor"

    # Far away: the table reloads once, around the new cursor.
    far = times[15] + half + 1
    await view.seek(far)
    await view.settled()
    assert len(reads.calls["window_messages"]) == 1
    held = full[(full["received_at"].astype("int64") - far).abs() <= half]
    assert table.to_dataframe()["value"].tolist() == held["value"].tolist()
    assert reads.calls["messages_at"] == [(times[16], 0), (far, 0)], "the browser's messages, one read a move"


async def test_a_view_not_following_keeps_what_it_shows_and_catches_up_when_set_again(view: Timeline) -> None:
    times = (await view.model.recording.to_dataframe())["received_at"].astype("int64").tolist()
    browser = view.subject_browser()
    table = view.table(window=3600)
    await view.seek(times[4])
    await view.settled()
    browser.follow_button.value = False
    table.follow_button.value = False
    reads = Reads(view.model)
    await view.seek(times[N - 1])
    await view.settled()
    assert _values(browser.index)["v1.tl.m1.value"] == 4.0, "the browser kept the state it showed"
    assert reads.calls["window_messages"] == []
    browser.follow_button.value = True
    table.follow_button.value = True
    await view.settled()
    assert _values(browser.index) == {"v1.tl.m0.value": 27.0, "v1.tl.m1.value": 28.0, "v1.tl.m2.value": 29.0}
    assert len(reads.calls["window_messages"]) == 1 and len(table.capture) == N


async def test_the_table_of_a_recording_has_no_live_controls(view: Timeline) -> None:
    table = view.table()
    await view.settled()
    hidden = (table.connection_status, table.pause_button, table.clear_button, table.copy_code.button)
    assert all(w.layout.display == "none" for w in hidden), "nothing to pause or reconnect in a recording"
    assert table.csv_button.layout.display != "none" and not table.capture.is_running
