"""RecordingBrowser, headless: list, info, range and subjects, load, replay, delete, copy as code."""

from __future__ import annotations

import ast
import asyncio
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import RecordingNotFoundError
from fastiot.history import Recording
from fastiot.nats_server import NatsServer
from fastiot_widgets import DataGrid, LivePlot, MessageTable, RecordingBrowser, SubjectBrowser, Timeline
from tests.waits import wait_for_trait, wait_until
from tests.widgets.history_helpers import MakeRecording, Recorded, make_recording, recorded

__all__ = ["make_recording", "recorded"]  # the fixtures, imported to be used here


async def browse(recording: Recorded, broker: NatsBrokerConnection, **kwargs: Any) -> RecordingBrowser:
    browser = RecordingBrowser(recording.name, connection=broker, **kwargs)
    await browser.wait_idle()
    assert browser.error == ""
    return browser


async def test_shows_a_recording_with_per_subject_counts_and_time_range(
    recorded: Recorded, broker: NatsBrokerConnection
) -> None:
    browser = await browse(recorded, broker)

    assert recorded.name in browser.recordings
    assert browser.recording == recorded.name
    assert browser.info["messages"] == 5
    assert browser.info["subject_counts"] == recorded.counts
    assert browser.info["first_time"] <= browser.info["last_time"]
    assert recorded.name in browser.info_view.value and "5 messages" in browser.info_view.value
    assert repr(browser).startswith("RecordingBrowser("), "a notebook can show it"
    labels = [label for label, _subject in browser.subject_select.options]
    assert labels == [f"{recorded.prefix}.a  (3)", f"{recorded.prefix}.b  (2)"]

    # Choosing subjects reads their own time ranges.
    browser.subject_select.value = (f"{recorded.prefix}.b",)
    await browser.wait_idle()
    assert browser.subjects == [f"{recorded.prefix}.b"]
    assert f"{recorded.prefix}.b" in browser.subject_chooser.ranges_view.value
    ranges = await browser.show_subject_ranges()  # what the view shows: count, first and last time
    assert list(ranges) == [f"{recorded.prefix}.b"]
    count, first, last = ranges[f"{recorded.prefix}.b"]
    assert count == 2 and first is not None and last is not None and first <= last


async def test_an_unknown_recording_is_reported_and_another_one_shown(
    recorded: Recorded, broker: NatsBrokerConnection
) -> None:
    browser = RecordingBrowser("no_such_recording", connection=broker)
    await browser.wait_idle()

    assert browser.notice == "there is no recording 'no_such_recording' on this server"
    assert browser.recording in browser.recordings and browser.info["messages"] >= 0


async def test_a_server_without_recordings_says_how_to_make_one() -> None:
    async with NatsServer(jetstream=True) as server:
        connection = await NatsBrokerConnection.connect(servers=server.url)
        try:
            browser = RecordingBrowser(connection=connection)
            await browser.wait_idle()

            assert browser.recordings == [] and browser.recording == "" and browser.error == ""
            assert "no recordings on this server yet" in browser.info_view.value
            assert browser.load_table_button.disabled and browser.delete_button.disabled
        finally:
            await connection.close()


async def test_the_rolling_history_is_listed_first_and_shown_by_default() -> None:
    from fastiot.history.rolling import HISTORY_STREAM, ensure_history_stream

    async with NatsServer(jetstream=True) as server:
        connection = await NatsBrokerConnection.connect(servers=server.url)
        try:
            await Recording.start("a_plant", "plant.>", connection=connection)  # sorts before it by name
            await ensure_history_stream(connection)
            browser = RecordingBrowser(connection=connection)
            await browser.wait_idle()
            assert browser.recordings == [HISTORY_STREAM, "a_plant"]
            assert browser.recording == HISTORY_STREAM and browser.error == ""
        finally:
            await connection.close()


async def test_key_value_streams_are_listed_only_when_asked_for(broker: NatsBrokerConnection) -> None:
    js = broker.client.jetstream()
    bucket = f"rb_{uuid.uuid4().hex[:10]}"
    await js.create_key_value(bucket=bucket)
    try:
        browser = RecordingBrowser(connection=broker)
        await browser.wait_idle()
        assert f"KV_{bucket}" not in browser.recordings

        browser.show_buckets = True
        await browser.wait_idle()
        assert f"KV_{bucket}" in browser.recordings
    finally:
        await js.delete_key_value(bucket)


async def test_subject_filter_finds_subjects_beyond_the_listed_ones(
    make_recording: MakeRecording, broker: NatsBrokerConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("fastiot_widgets._history_parts.MAX_SUBJECT_OPTIONS", 2)
    rec = await make_recording({"a": 1, "b": 1, "c": 1, "d": 1})
    browser = await browse(rec, broker)

    assert len(browser.subject_select.options) == 2
    assert "2 more" in browser.subject_select.tooltip
    # The whole subject: the random prefix itself may contain ".d" (a token starting with d).
    browser.subject_chooser.filter.value = f"{rec.prefix}.d"
    assert [s for _label, s in browser.subject_select.options] == [f"{rec.prefix}.d"]


async def test_subjects_chosen_before_the_recording_is_shown_are_kept(
    recorded: Recorded, broker: NatsBrokerConnection
) -> None:
    browser = RecordingBrowser(recorded.name, connection=broker)
    browser.subjects = [f"{recorded.prefix}.b"]  # while the browser still lists the recordings
    await browser.wait_idle()

    assert browser.subjects == [f"{recorded.prefix}.b"]
    assert browser.subject_select.value == (f"{recorded.prefix}.b",)
    assert len(await browser.load()) == 2


async def test_loads_the_chosen_range_and_subjects_into_a_dataframe(
    recorded: Recorded, broker: NatsBrokerConnection
) -> None:
    browser = await browse(recorded, broker)
    browser.subject_select.value = (f"{recorded.prefix}.a",)
    browser.set_range(timedelta(minutes=10))
    assert browser.range_picker.mode.value == "last" and browser.range_picker.last_minutes.value == 10

    frame = await browser.load()

    assert len(frame) == 3 and browser.loaded_rows == 3 and browser.frame is frame
    assert set(frame["subject"]) == {f"{recorded.prefix}.a"}
    assert frame["i"].tolist() == [0, 2, 4], "the payload's fields, decoded as a capture decodes them"
    assert "sequence" in frame.columns
    assert "loaded 3 rows" in browser.notice

    # A range after every message: an empty frame with the columns, no error.
    browser.set_range(datetime.now(timezone.utc) + timedelta(hours=1), None)
    empty = await browser.load()
    assert len(empty) == 0 and {"received_at", "subject", "sequence"} <= set(empty.columns)

    # At most max_rows rows, and the notice says the range holds more.
    browser.set_range()
    browser.subject_select.value = ()
    browser.max_rows_input.value = 2
    assert len(await browser.load()) == 2
    assert "the first 2 of the range" in browser.notice


async def test_load_into_table_shows_the_rows_in_a_grid(
    recorded: Recorded, broker: NatsBrokerConnection
) -> None:
    browser = await browse(recorded, broker)

    browser.load_table_button.click()
    await browser.wait_idle()

    assert browser.error == ""
    assert isinstance(browser.table, DataGrid) and browser.table_box.children == (browser.table,)
    assert browser.table.total_rows == 5
    assert "sequence" in browser.table.columns


async def test_plot_charts_a_numeric_column_of_what_was_loaded(
    recorded: Recorded, broker: NatsBrokerConnection
) -> None:
    browser = await browse(recorded, broker)
    assert browser.plot_action.button.disabled
    with pytest.raises(ValueError, match="load a range first"):
        browser.open_plot("value")

    browser.load_frame_button.click()
    await browser.wait_idle()
    assert list(browser.plot_action.field_box.options) == ["i", "value"], "numbers, not the stream sequence"
    browser.plot_action.field_box.value = "value"
    browser.plot_action.button.click()

    plot = browser.plot
    assert isinstance(plot, LivePlot) and plot in browser.plot_action.area.children
    assert browser.error == ""
    assert plot.labels == sorted(recorded.counts) and plot.points_shown == recorded.total
    browser.close_plot()
    assert browser.plot is None and browser.plot_action.area.children == ()
    browser.close()


async def test_open_timeline_shows_views_that_follow_its_cursor(
    recorded: Recorded, broker: NatsBrokerConnection
) -> None:
    browser = await browse(recorded, broker)
    browser.timeline_button.click()
    await browser.wait_idle()
    assert browser.error == ""
    timeline, views = browser.timeline, browser.timeline_views
    assert isinstance(timeline, Timeline) and views is not None
    subjects, plot, table = views
    assert (
        isinstance(subjects, SubjectBrowser)
        and isinstance(plot, LivePlot)
        and isinstance(table, MessageTable)
    )
    assert browser.timeline_box.children == (timeline, subjects, plot, table)
    assert plot.series.fields == ["i", "value"], "the recording's numeric fields, not the stream sequence"

    await timeline.settled()  # the cursor starts at the first message: only its subject has a value
    assert subjects.index.subjects == [f"{recorded.prefix}.a"]
    await timeline.seek(timeline.model.end_ns)
    await timeline.settled()
    assert sorted(subjects.index.subjects) == sorted(recorded.counts)
    assert len(table.capture) == recorded.total, "the table holds the rows around the cursor"

    browser.close()
    assert browser.timeline is None and browser.timeline_box.children == ()


async def test_replays_with_a_prefix_and_shows_the_progress(
    recorded: Recorded, broker: NatsBrokerConnection
) -> None:
    received: list[str] = []

    async def on_msg(msg: Any) -> None:
        received.append(msg.subject)

    sub = await broker.subscribe_raw(f"again.{recorded.prefix}.>", on_msg)
    try:
        browser = await browse(recorded, broker)
        browser.replay_options.max_speed.value = True
        browser.replay_options.prefix_input.value = "again"

        browser.replay_button.click()
        await browser.wait_idle()
        assert browser.error == ""
        await wait_for_trait(browser.replay_view, "state", lambda s: s == "finished")

        assert browser.replay_view.published == browser.replay_view.total == 5
        assert browser.replay_view.bar.value == 1.0
        await wait_until(lambda: len(received) == 5, what="the 5 replayed messages")
        assert sorted(set(received)) == [f"again.{recorded.prefix}.a", f"again.{recorded.prefix}.b"]
    finally:
        await sub.unsubscribe()


async def test_a_replay_can_be_paused_resumed_and_stopped(
    make_recording: MakeRecording, broker: NatsBrokerConnection
) -> None:
    rec = await make_recording({"a": 3}, spacing=0.05)
    browser = await browse(rec, broker)
    browser.replay_options.speed_input.value = 0.001  # 50 ms apart become 50 s: it waits after the first
    replay = await browser.start_replay()
    view = browser.replay_view
    await wait_for_trait(view, "published", lambda n: n >= 1)

    view.pause_button.click()
    assert view.state == "paused" and view.resume_button.disabled is False
    view.resume_button.click()
    assert view.state == "running" and view.pause_button.disabled is False
    view.stop_button.click()
    await replay.wait(timeout=10)
    await wait_for_trait(view, "state", lambda s: s == "stopped")
    assert view.published < 3 and view.stop_button.disabled


async def test_a_replay_into_the_recorded_subjects_on_the_same_broker_is_refused(
    recorded: Recorded, broker: NatsBrokerConnection
) -> None:
    browser = await browse(recorded, broker)
    browser.replay_options.prefix_input.value = ""

    browser.replay_button.click()
    await browser.wait_idle()

    assert "ReplayLoopError" in browser.error and "subject_prefix" in browser.error
    assert browser.replay is None


async def test_delete_needs_a_confirmation(recorded: Recorded, broker: NatsBrokerConnection) -> None:
    browser = await browse(recorded, broker)

    browser.delete_button.click()
    assert browser.delete_confirmation.confirming and "5 messages" in browser.delete_confirmation.text.value
    browser.delete_confirmation.cancel_button.click()
    assert not browser.delete_confirmation.confirming
    await Recording.open(recorded.name, connection=broker)  # still there

    browser.delete_button.click()
    browser.delete_confirmation.confirm_button.click()
    await browser.wait_idle()

    with pytest.raises(RecordingNotFoundError):
        await Recording.open(recorded.name, connection=broker)
    assert recorded.name not in browser.recordings and browser.recording != recorded.name
    assert browser.notice == f"deleted recording {recorded.name!r}"
    assert browser.error == ""


async def test_a_recording_deleted_elsewhere_is_reported_and_the_browser_goes_on(
    recorded: Recorded, make_recording: MakeRecording, broker: NatsBrokerConnection
) -> None:
    other = await make_recording({"c": 2})
    browser = await browse(recorded, broker)

    await recorded.recording.delete()

    await wait_for_trait(browser, "notice", lambda n: "was deleted" in n)
    assert recorded.name in browser.notice
    await wait_until(lambda: recorded.name not in browser.recordings, what="the list to drop it")
    # It goes on: another recording shows and loads.
    await browser.show(other.name)
    assert len(await browser.load()) == 2


async def test_an_action_on_a_deleted_recording_says_so(
    recorded: Recorded, broker: NatsBrokerConnection
) -> None:
    browser = await browse(recorded, broker)
    await recorded.recording.delete()

    with pytest.raises(RecordingNotFoundError):
        await browser.load()

    assert "was deleted" in browser.notice
    await wait_until(lambda: recorded.name not in browser.recordings, what="the list to drop it")


async def run_cell(code: str) -> dict[str, Any]:
    """Run a copied cell as a notebook would (top-level await); returns its namespace."""
    namespace: dict[str, Any] = {}
    result = eval(compile(code, "<copied>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT), namespace)
    if asyncio.iscoroutine(result):
        await result
    return namespace


async def copied(browser: RecordingBrowser, which: str) -> str:
    copy = getattr(browser, f"{which}_code")
    copy.frontend_timeout = 0.05  # no JupyterLab here: the code shows under the button
    assert await copy.copy() == "shown"
    assert copy.code_box.code == copy.code
    return str(copy.code)


async def test_copy_as_code_loads_what_the_browser_loads(
    recorded: Recorded, broker: NatsBrokerConnection
) -> None:
    browser = await browse(recorded, broker)
    browser.subject_select.value = (f"{recorded.prefix}.b",)
    browser.set_range(timedelta(minutes=30))

    code = await copied(browser, "load")

    assert "timedelta(seconds=1800.0)" in code
    frame = (await run_cell(code))["df"]
    assert frame["subject"].tolist() == [f"{recorded.prefix}.b"] * 2
    assert frame["i"].tolist() == (await browser.load())["i"].tolist()


async def test_copy_as_code_replays_and_records(recorded: Recorded, broker: NatsBrokerConnection) -> None:
    browser = await browse(recorded, broker)
    browser.replay_options.max_speed.value = True

    replay = (await run_cell(await copied(browser, "replay")))["replay"]
    assert replay.published == 5 and replay.subject_prefix == "replay"

    record_code = await copied(browser, "record")
    assert f'Recording.start("{recorded.name}", "{recorded.prefix}.>")' in record_code
    again = (await run_cell(record_code))["recording"]  # the same configuration: reused
    assert again.name == recorded.name
