"""SubjectBrowser, headless, against the session's real nats-server: state read from the tree's rows, the
detail pane's content and traitlets; clicks as the ES modules send them (traitlets and messages)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from fastiot import workbench
from fastiot.core.broker_connection import BrokerConnectionDummy, NatsBrokerConnection
from fastiot.core.data_models import FastIoTPublish
from fastiot.core.serialization import pack
from fastiot.exceptions import JetStreamUnavailableError
from fastiot.nats_server import NatsServer
from fastiot.subjects import SubjectIndex
from fastiot.subjects.tree import MAX_NEW_PER_SYNC, TreeRow
from fastiot_widgets import LivePlot, MessageTable, SubjectBrowser
from fastiot_widgets.subject_detail import hexdump
from tests.waits import wait_for_trait, wait_until

from .firehose import run_firehose

FAST = 0.02
PLANT = {"press_1.temperature": 4, "press_1.pressure": 2, "oven_1.temperature": 3}


async def _publish_plant(broker: NatsBrokerConnection, prefix: str) -> None:
    for suffix, count in PLANT.items():
        for i in range(count):
            await broker.publish_raw(
                f"{prefix}.{suffix}",
                pack({"machine": suffix.split(".")[0], "value": 20.0 + i, "unit": "degC"}),
            )
    await broker.flush()


async def _browser(broker: NatsBrokerConnection, prefix: str, **kwargs: Any) -> SubjectBrowser:
    browser = SubjectBrowser(f"{prefix}.>", connection=broker, refresh_interval=FAST, **kwargs)
    await browser.start()
    await _publish_plant(broker, prefix)
    await browser.index.wait_for(sum(PLANT.values()), timeout=5)
    # The tree shows every message (its counts come with the index's news, a moment after them).
    await wait_for_trait(
        browser, "renders", lambda _n: sum(r.count for r in browser.rows() if r.subject) == 9
    )
    return browser


def _rows(browser: SubjectBrowser) -> dict[str, TreeRow]:
    return {row.path: row for row in browser.rows()}


def frontend_sends(widget: Any, content: dict[str, Any]) -> None:
    """What the ES module's ``model.send(content)`` makes the kernel receive."""
    widget._handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})


class Sent:
    """The row messages the tree sends to the browser (what goes over the comm)."""

    def __init__(self, browser: SubjectBrowser) -> None:
        self.messages: list[dict[str, Any]] = []
        browser.tree_view.send = self.messages.append  # type: ignore[method-assign]

    def rows(self) -> dict[int, list[Any]]:
        return {i: row for message in self.messages for i, row in message["rows"]}


async def test_follows_live_traffic_as_a_tree_with_counts_rates_and_last_values(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    browser = await _browser(broker, prefix)
    assert isinstance(browser.index, SubjectIndex) and browser.running
    assert browser.connection_status.state == "connected"
    rows = _rows(browser)
    paths = list(rows)
    press, oven = f"{prefix}.press_1", f"{prefix}.oven_1"
    assert paths.index(oven) < paths.index(press), "tokens are sorted"
    assert (rows[press].count, rows[press].subjects, rows[press].folder) == (6, 2, True)
    temperature = rows[f"{press}.temperature"]
    assert (temperature.count, temperature.depth, temperature.folder) == (4, 4, False)
    assert '"value": 23.0' in temperature.value and temperature.value.startswith("{")
    assert temperature.rate.endswith(("/s", "/min")) and temperature.rate != "0/s"
    assert temperature.last_seen_ns > 0 and rows[press].last_seen_ns >= temperature.last_seen_ns
    assert browser.subject_count == 3
    assert "3 subjects" in browser.summary_view.value and "9 messages" in browser.summary_view.value
    assert dict(zip(browser.to_dataframe()["subject"], browser.to_dataframe()["count"], strict=True)) == {
        f"{prefix}.{k}": v for k, v in PLANT.items()
    }

    # More traffic shows up without anybody asking.
    await broker.publish_raw(f"{prefix}.oven_1.door", pack({"open": True}))
    await wait_for_trait(browser, "subject_count", lambda n: n == 4)
    assert _rows(browser)[f"{oven}.door"].value == '{"open": true}'
    await browser.aclose()
    assert not browser.index.is_running


async def test_only_rows_in_view_are_sent_and_then_only_what_changed(
    nats_server: NatsServer, broker: NatsBrokerConnection, prefix: str
) -> None:
    browser = SubjectBrowser(f"{prefix}.>", connection=broker, refresh_interval=FAST)
    await browser.start()
    sent = Sent(browser)
    frontend_sends(
        browser.tree_view, {"type": "viewport", "start": 0, "stop": 40}
    )  # what the scroller asks for
    count = await run_firehose(nats_server.url, prefix, count=10_000, subjects=10_000)
    await browser.index.sync(timeout=30)
    await wait_for_trait(browser, "subject_count", lambda n: n == count)
    flat = browser.rows()
    # test > browser > <id> > s0000 .. s9999 > value: 3 + 2 rows per subject
    assert len(flat) == 3 + 2 * 10_000 and browser.tree_view.total_rows == len(flat)
    assert all(len(m["rows"]) <= 40 for m in sent.messages), "never more rows than in view"
    assert max(sent.rows()) < 40
    last = sent.messages[-1]
    assert last["total"] == len(flat)

    # A row goes again only if something in it changed (here: rates as time passes).
    before = sent.rows()
    sent.messages.clear()
    browser.refresh()
    assert all(before[i] != row for i, row in sent.rows().items())
    assert all(not m["flash"] for m in sent.messages)
    # One subject in view changed: its row goes, flashing.
    sent.messages.clear()
    shown = [row for row in browser.rows(0, 40) if row.subject][-1].path
    await broker.publish_raw(shown, pack({"value": 99}))
    await wait_for_trait(
        browser.tree_view, "bytes_sent", lambda _n: any(shown in m["flash"] for m in sent.messages)
    )
    # The subject's row and its folders' (their totals grew) flash and go; other rows only as
    # their rates age.
    ancestors = {shown.rsplit(".", k)[0] for k in range(5)}
    assert {path for m in sent.messages for path in m["flash"]} == ancestors
    now = browser.rows(0, 40)
    for i, row in sent.rows().items():
        if row[0] == shown:
            assert row[4] == 2
        elif row[0] not in ancestors:
            assert row[:5] + row[6:] == now[i].wire()[:5] + now[i].wire()[6:] == before[i][:5] + before[i][6:]

    # Scrolling to the end sends the last rows, down to the last subject.
    sent.messages.clear()
    frontend_sends(browser.tree_view, {"type": "viewport", "start": len(flat) - 30, "stop": len(flat)})
    await wait_for_trait(browser.tree_view, "bytes_sent", lambda _n: len(sent.rows()) == 30)
    tail = sent.rows()
    assert max(tail) == len(flat) - 1 and tail[len(flat) - 1][0] == flat[-1].path
    assert flat[-1].path == f"{prefix}.s9999.value"
    print(f"\ntree bytes sent for 10,000 subjects: {browser.tree_view.bytes_sent:,}")
    await browser.aclose()


async def test_sort_by_count_rate_and_last_seen(broker: NatsBrokerConnection, prefix: str) -> None:
    browser = await _browser(broker, prefix)
    press, oven = f"{prefix}.press_1", f"{prefix}.oven_1"

    def order() -> list[str]:
        return [p for p in _rows(browser) if p in (press, oven)]

    assert order() == [oven, press]
    frontend_sends(browser.tree_view, {"type": "sort", "key": "count"})  # a click on the column head
    assert browser.sort_by == "count" and browser.sort_box.value == "count"
    assert order() == [press, oven]
    assert [p for p in _rows(browser) if p.startswith(f"{press}.")] == [
        f"{press}.temperature",
        f"{press}.pressure",
    ]
    browser.sort_by = "last_seen"
    await broker.publish_raw(f"{oven}.temperature", pack({"value": 1}))
    await browser.index.wait_for(10, timeout=5)
    browser.resort_interval = 0
    await wait_for_trait(browser, "message_count", lambda n: n == 10)
    assert order() == [oven, press]
    await browser.aclose()


async def test_a_slow_subject_reads_per_minute_not_zero(broker: NatsBrokerConnection, prefix: str) -> None:
    browser = SubjectBrowser(f"{prefix}.>", connection=broker, refresh_interval=FAST, rate_window=0.5)
    await browser.start()
    slow = f"{prefix}.slow"
    await broker.publish_raw(slow, pack({"value": 1}))
    await browser.index.wait_for(1, timeout=5)

    # One message and then silence for longer than the rate window: alive, but slower than 1/s.
    def per_minute(_renders: int) -> bool:
        row = _rows(browser).get(slow)
        return row is not None and row.rate.endswith("/min")

    await wait_for_trait(browser, "renders", per_minute)
    assert _rows(browser)[slow].rate != "0/min"
    await browser.aclose()


async def test_pause_freezes_the_view_and_keeps_counting(broker: NatsBrokerConnection, prefix: str) -> None:
    browser = await _browser(broker, prefix)
    subject = f"{prefix}.press_1.temperature"
    browser.pause_button.click()
    assert browser.paused and browser.tree_view.paused
    for i in range(5):
        await broker.publish_raw(subject, pack({"value": 50.0 + i}))
    await broker.flush()
    await browser.index.sync()
    await wait_for_trait(browser.summary_view, "value", lambda v: "5 messages since" in v)
    assert browser.message_count == 9 and _rows(browser)[subject].count == 4, "the view stands still"

    browser.resume_button.click()
    await wait_for_trait(browser, "message_count", lambda n: n == 14)
    assert _rows(browser)[subject].count == 9, "nothing was missed while paused"
    await browser.aclose()


async def test_one_message_and_one_subject_are_counted_in_the_singular(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    browser = SubjectBrowser(f"{prefix}.>", connection=broker, refresh_interval=FAST)
    await browser.start()
    await broker.publish_raw(f"{prefix}.only", pack({"value": 1}))
    await wait_for_trait(browser, "message_count", lambda n: n == 1)
    assert repr(browser) == f"SubjectBrowser({prefix}.>, 1 subject)"
    browser.pause_button.click()
    await broker.publish_raw(f"{prefix}.only", pack({"value": 2}))
    await browser.index.wait_for(2, timeout=5)
    await wait_for_trait(
        browser.summary_view, "value", lambda v: "0 messages since" not in v and "since" in v
    )
    assert "1 message since" in browser.summary_view.value
    assert "1 messages" not in browser.summary_view.value
    await browser.aclose()


async def test_detail_shows_headers_decoded_messages_and_what_changed(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    browser = SubjectBrowser(f"{prefix}.>", connection=broker, refresh_interval=FAST)
    await browser.start()
    subject = f"{prefix}.press_1.state"
    await broker.publish_raw(
        subject, pack({"value": 1.5, "mode": "auto", "gone": 1}), headers={"origin": "a"}
    )
    await broker.publish_raw(
        subject, pack({"value": 2.5, "mode": "auto", "new": True}), headers={"origin": "b"}
    )
    await broker.publish_raw(f"{prefix}.note", b"hello from nats pub")
    await browser.index.wait_for(3, timeout=5)
    frontend_sends(browser.tree_view, {"type": "select", "path": subject})  # a click on the row
    assert browser.selected == subject
    detail = await wait_for_trait(browser.detail_view, "detail", lambda d: d.get("path") == subject)
    assert detail["summary"]["count"] == 2 and detail["model"] is None
    assert [m["text"].count('"value"') for m in detail["messages"]] == [1, 1]
    assert '"value": 2.5' in detail["messages"][0]["text"], "newest first"
    changes = {c["path"]: (c["old"], c["new"], c["change"]) for c in detail["diff"]["changes"]}
    assert changes == {
        "value": ("1.5", "2.5", "changed"),
        "gone": ("1", "", "removed"),
        "new": ("", "true", "added"),
    }
    fields = {f["path"]: f for f in detail["fields"]}
    assert fields["value"]["numeric"] and fields["value"]["changed"]
    assert not fields["mode"]["numeric"] and not fields["mode"]["changed"]

    browser.select(f"{prefix}.note")
    detail = await wait_for_trait(browser.detail_view, "detail", lambda d: d.get("path") == f"{prefix}.note")
    assert detail["messages"][0]["kind"] == "text" and detail["messages"][0]["text"] == "hello from nats pub"
    assert detail["messages"][0]["error"] is None and detail["diff"] is None

    browser.select(f"{prefix}.press_1")  # a folder: its totals
    detail = await wait_for_trait(browser.detail_view, "detail", lambda d: d.get("kind") == "folder")
    assert detail["summary"]["subjects"] == 1 and detail["summary"]["count"] == 2
    await browser.aclose()


def _nested(levels: int, *, inner: object, as_dict: bool) -> object:
    value = inner
    for _ in range(levels):
        value = {"a": value} if as_dict else [value]
    return value


async def test_a_payload_nested_1000_deep_shows_its_detail_diff_and_fields(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    browser = SubjectBrowser(f"{prefix}.>", connection=broker, refresh_interval=FAST)
    await browser.start()
    subject = f"{prefix}.deep"
    for value in (1, 2):
        payload = {
            "value": value,
            "deep_list": _nested(1000, inner=value, as_dict=False),
            "deep_dict": _nested(1000, inner=value, as_dict=True),
        }
        await broker.publish_raw(subject, pack(payload))
    await browser.index.wait_for(2, timeout=5)
    browser.select(subject)
    detail = await wait_for_trait(
        browser.detail_view, "detail", lambda d: d.get("path") == subject and len(d.get("messages", [])) == 2
    )
    assert browser.error == "" and browser.detail_view.detail is detail
    assert json.loads(json.dumps(detail)) == detail, "what the pane sends the browser serializes"
    assert [m["error"] for m in detail["messages"]] == [None, None]
    assert all('"deep_list": [[[[' in m["text"] for m in detail["messages"])
    changes = {c["path"]: (c["old"], c["new"]) for c in detail["diff"]["changes"]}
    assert changes["value"] == ("1", "2")
    # The deep parts differ only at the bottom; below the depth limit they are compared as text.
    assert any(path.startswith("deep_list") for path in changes)
    assert any(path.startswith("deep_dict.a.a") for path in changes)
    fields = {f["path"]: f for f in detail["fields"]}
    assert fields["value"]["numeric"] and fields["value"]["changed"]
    assert any(path.startswith("deep_dict.a.a") for path in fields)
    await browser.aclose()


class BrowserProbe(FastIoTPublish):
    """A typed subject: its messages decode to this model, and the pane shows its JSON schema."""

    value: float
    unit: str = "degC"


async def test_a_typed_subject_shows_its_model_and_schema(broker: NatsBrokerConnection) -> None:
    subject = BrowserProbe.get_subject(uuid.uuid4().hex[:12])
    browser = SubjectBrowser(f"{subject.name}.>", connection=broker, refresh_interval=FAST)
    await browser.start()
    leaf = f"{subject.name}.x"
    await broker.publish_raw(leaf, pack({"value": 1.5, "unit": "degC"}))
    await broker.publish_raw(leaf, pack({"value": 2.5, "unit": "degC"}))
    await browser.index.wait_for(2, timeout=5)
    browser.select(leaf)
    detail = await wait_for_trait(browser.detail_view, "detail", lambda d: d.get("path") == leaf)
    assert detail["model"]["name"] == "BrowserProbe"
    assert json.loads(detail["model"]["schema"])["properties"]["value"]["type"] == "number"
    assert detail["messages"][0]["kind"] == "model" and detail["messages"][0]["decoder"] == "BrowserProbe"
    assert detail["diff"]["changes"] == [{"path": "value", "old": "1.5", "new": "2.5", "change": "changed"}]
    await browser.aclose()


async def test_the_pattern_field_changes_the_subscription(broker: NatsBrokerConnection, prefix: str) -> None:
    browser = await _browser(broker, prefix)
    browser.pattern_box.value = f"{prefix}.oven_1.>"  # typed and Enter
    await browser._tasks.wait()
    assert browser.index.pattern == f"{prefix}.oven_1.>" and browser.pattern == browser.index.pattern
    await wait_for_trait(browser, "subject_count", lambda n: n == 1)
    assert [r.path for r in browser.rows() if r.subject] == [f"{prefix}.oven_1.temperature"]
    await broker.publish_raw(f"{prefix}.press_1.temperature", pack({"value": 1}))  # no longer subscribed
    await broker.publish_raw(f"{prefix}.oven_1.door", pack({"open": True}))
    await wait_for_trait(browser, "subject_count", lambda n: n == 2)
    assert f"{prefix}.press_1.temperature" not in browser.index
    assert browser.index.pattern == f"{prefix}.oven_1.>" and browser.pattern == browser.index.pattern
    await browser.aclose()


async def test_pick_any_two_messages_to_diff_and_see_raw_bytes(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    browser = SubjectBrowser(f"{prefix}.>", connection=broker, refresh_interval=FAST)
    await browser.start()
    subject = f"{prefix}.s"
    for v in (1, 2, 3):
        await broker.publish_raw(subject, pack({"value": v}))
    await browser.index.wait_for(3, timeout=5)
    browser.select(subject)
    await wait_for_trait(browser.detail_view, "detail", lambda d: len(d.get("messages", [])) == 3)
    assert browser.detail["diff"]["changes"] == [
        {"path": "value", "old": "2", "new": "3", "change": "changed"}
    ]
    frontend_sends(browser.detail_view, {"type": "diff", "pair": [2, 0]})  # A and B picked in the pane
    detail = await wait_for_trait(browser.detail_view, "detail", lambda d: d["diff"]["a"] == 2)
    assert detail["diff"]["changes"][0]["old"] == "1"
    assert browser.diff_messages(2, 1)["changes"][0]["new"] == "2"  # type: ignore[index]
    browser.raw_button.value = True
    detail = await wait_for_trait(browser.detail_view, "detail", lambda d: d["messages"][0]["hex"] != "")
    assert pack({"value": 3}).hex(" ") in detail["messages"][0]["hex"]
    await browser.aclose()


async def test_a_numeric_field_opens_a_live_plot(broker: NatsBrokerConnection, prefix: str) -> None:
    browser = await _browser(broker, prefix)
    temperature, pressure = f"{prefix}.press_1.temperature", f"{prefix}.press_1.pressure"
    browser.select(temperature)
    await wait_for_trait(browser.detail_view, "detail", lambda d: d.get("path") == temperature)
    frontend_sends(browser.detail_view, {"type": "plot", "field": "value"})  # a click on "plot"
    plot = browser.plot
    assert isinstance(plot, LivePlot) and plot in browser.plot_area.children
    assert plot.series.selections == [(temperature, "value")]
    await plot.start()
    await broker.publish_raw(temperature, pack({"value": 30.5}))
    await wait_for_trait(plot, "points_shown", lambda n: n == 1)

    # Another subject's field joins the same chart.
    browser.select(pressure)
    browser.open_plot(field="value")
    await browser._tasks.wait()
    assert browser.plot is plot and plot.series.selections == [(temperature, "value"), (pressure, "value")]
    browser.close_plot()
    await plot._tasks.wait()
    assert browser.plot is None and not plot.series.is_running
    await browser.aclose()


async def test_folding_and_unfolding(broker: NatsBrokerConnection, prefix: str) -> None:
    browser = await _browser(broker, prefix)
    press = f"{prefix}.press_1"
    frontend_sends(browser.tree_view, {"type": "toggle", "path": press})  # a click on the caret
    assert browser.collapsed == [press]
    rows = _rows(browser)
    assert f"{press}.temperature" not in rows and not rows[press].open and rows[press].count == 6
    browser.select(f"{press}.temperature")  # selecting a hidden subject unfolds its ancestors
    assert browser.collapsed == [] and f"{press}.temperature" in _rows(browser)
    browser.fold_all_button.click()
    assert [r.path for r in browser.rows()] == [prefix.split(".")[0]]
    browser.unfold_all_button.click()
    assert len(browser.rows()) == 8  # test > browser > <id> > oven_1 > temperature, press_1 > 2
    await browser.aclose()


async def test_the_filter_takes_text_or_a_nats_pattern(broker: NatsBrokerConnection, prefix: str) -> None:
    browser = await _browser(broker, prefix)
    browser.filter_box.value = "OVEN"
    await wait_for_trait(browser, "subject_count", lambda n: n == 1)
    rows = _rows(browser)
    assert f"{prefix}.oven_1.temperature" in rows and f"{prefix}.press_1" not in rows
    assert "1 of 3 subjects" in browser.summary_view.value
    browser.filter = f"{prefix}.*.temperature"
    await wait_for_trait(browser, "subject_count", lambda n: n == 2)
    browser.filter = "no-such-thing"
    await wait_for_trait(browser, "subject_count", lambda n: n == 0)
    assert browser.tree_view.empty_text == "nothing matches the filter" and browser.rows() == []
    await browser.aclose()


async def test_open_table_shows_a_message_table_of_the_selection(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    browser = await _browser(broker, prefix)
    subject = f"{prefix}.oven_1.temperature"
    browser.select(subject)
    await wait_for_trait(browser.open_table_button, "disabled", lambda d: not d)
    browser.open_table_button.click()
    table = browser.table
    assert isinstance(table, MessageTable) and table in browser.table_area.children
    assert table.capture.patterns == [subject] and table.capture.max_rows == browser.table_max_rows
    browser.select(f"{prefix}.press_1")
    folder_table = browser.open_table()
    assert folder_table.capture.patterns == [f"{prefix}.press_1.>"] and browser.table is folder_table
    browser.close_table()
    assert browser.table is None and browser.table_area.children == ()
    browser.select("")
    with pytest.raises(ValueError, match="select a subject"):
        browser.open_table()
    await browser.aclose()


async def test_copy_as_code_captures_the_selection(broker: NatsBrokerConnection, prefix: str) -> None:
    browser = await _browser(broker, prefix)
    browser.copy_code.frontend_timeout = 0.05
    assert await browser.copy_code.copy() == "shown"
    assert f'browser = SubjectBrowser("{prefix}.>")' in browser.copy_code.code
    browser.select(f"{prefix}.press_1")
    await browser.copy_code.copy()
    assert f'MessageCapture("{prefix}.press_1.>")' in browser.copy_code.code
    browser.open_table_button.click()  # the table open is what the copy button gives now
    await browser.copy_code.copy()
    assert browser.copy_code.code.splitlines()[-2] == (
        f'table = MessageTable("{prefix}.press_1.>", max_rows={browser.table_max_rows})'
    )
    browser.close_table()
    await browser.copy_code.copy()
    assert f'MessageCapture("{prefix}.press_1.>")' in browser.copy_code.code
    await browser.aclose()


async def test_record_starts_and_stops_a_recording_of_the_pattern_on_the_browsers_broker(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The browser watches its own JetStream broker; FASTIOT_NATS_* names another one, which must not be used.
    with NatsServer(jetstream=True) as own_server:
        broker = await NatsBrokerConnection.connect(servers=own_server.url)
        try:
            browser = await _browser(broker, prefix)
            browser.record_button.click()
            await browser._tasks.wait()
            recording = browser.recording
            assert recording is not None and recording.name.startswith(prefix.replace(".", "_"))
            assert browser.record_button.description == "Stop recording"
            assert recording.name in browser.status_view.value
            await _publish_plant(broker, prefix)

            async def all_recorded() -> bool:
                return (await recording.info()).messages == sum(PLANT.values())

            await wait_until(all_recorded, timeout=10, what="the plant's messages in the recording")
            info = await recording.info()
            assert info.recording and info.subjects == [f"{prefix}.>"]
            browser.record_button.click()
            await browser._tasks.wait()
            assert browser.recording is None and browser.record_button.description == "Record"
            assert not (await recording.info()).recording, "Stop seals the recording, keeping what it has"
            browser.copy_record_code.frontend_timeout = 0.05
            await browser.copy_record_code.copy()
            assert f'Recording.start("{prefix.replace(".", "_")}' in browser.copy_record_code.code
            assert browser.copy_record_code.code.endswith(f', "{prefix}.>")')
            await recording.delete()
            await browser.aclose()
        finally:
            await broker.close()


async def test_record_on_everything_records_every_first_token_seen_next_to_key_value_buckets() -> None:
    """Issue 21 item 4: Record on '>' (the tutorial's default) always failed with JetStream error 10052."""
    with NatsServer(jetstream=True) as own_server:
        broker = await NatsBrokerConnection.connect(servers=own_server.url)
        try:
            js = broker.client.jetstream()
            bucket = await js.create_key_value(bucket="settings")
            browser = SubjectBrowser(">", connection=broker, refresh_interval=FAST)
            await browser.start()
            await broker.publish_raw("v1.thing.press_1.temperature", pack({"value": 1.0}))
            await broker.publish_raw("plant.hall", b"1")
            await bucket.put("limit", b"7")
            await browser.index.sync()
            browser.record_button.click()
            await browser._tasks.wait()
            assert browser.error_view.value == ""
            recording = browser.recording
            assert recording is not None and recording.subjects == ["plant", "plant.>", "v1", "v1.>"]
            assert "plant.&gt;" in browser.status_view.value
            await js.create_key_value(bucket="made_while_recording")  # JetStream still takes buckets
            await bucket.put("limit", b"8")
            await broker.publish_raw("plant.hall", b"2")

            async def recorded() -> bool:
                return (await recording.info()).subject_counts == {"plant.hall": 1}

            await wait_until(recorded, timeout=10, what="plant.hall in the recording, and no $KV subject")
            await browser.aclose()
        finally:
            await broker.close()


async def test_recording_on_a_connection_that_is_not_nats_says_what_to_give_instead() -> None:
    browser = SubjectBrowser(">", BrokerConnectionDummy(), refresh_interval=FAST)
    try:
        with pytest.raises(JetStreamUnavailableError, match=r"BrokerConnectionDummy.*NatsBrokerConnection"):
            await browser.record("not_recorded")
        assert browser.recording is None
    finally:
        await browser.aclose()


async def test_views_a_given_index_and_uses_the_workbench_connection(prefix: str) -> None:
    index = SubjectIndex(f"{prefix}.>")
    with pytest.raises(TypeError, match="SubjectIndex"):
        SubjectBrowser(index, history=3)
    browser = SubjectBrowser(index, refresh_interval=FAST)
    await browser.start()
    broker = await workbench.connection()
    assert index.is_running and index.connection is broker
    await broker.publish_raw(f"{prefix}.x", pack({"v": 1}))
    await wait_for_trait(browser, "subject_count", lambda n: n == 1)
    await browser.aclose()
    assert index.is_running, "an index the browser did not make keeps running"
    await index.stop()


async def test_close_stops_the_index_and_the_renders(broker: NatsBrokerConnection, prefix: str) -> None:
    browser = await _browser(broker, prefix)
    browser.select(f"{prefix}.press_1.temperature")
    table = browser.open_table()
    await table.start()
    browser.close()
    await browser._tasks.wait()
    await table._tasks.wait()
    assert not browser.index.is_running and not table.capture.is_running
    assert not browser.is_render_scheduled
    renders = browser.renders
    await _publish_plant(broker, prefix)
    assert browser.renders == renders


async def test_a_failed_start_is_shown_not_raised_into_the_cell(nats_server: NatsServer, prefix: str) -> None:
    closed = await NatsBrokerConnection.connect(servers=nats_server.url)
    await closed.close()
    browser = SubjectBrowser(f"{prefix}.>", connection=closed)
    await wait_for_trait(browser, "error", lambda e: e.startswith("start failed"))
    assert browser.connection_status.state == "disconnected" and not browser.running
    browser.close()


def test_hexdump_says_how_many_bytes_it_left_out() -> None:
    assert hexdump(bytes(range(40)), limit=32).splitlines()[-1] == "... 8 more bytes"


async def test_closed_views_and_their_models_are_freed(broker: NatsBrokerConnection, prefix: str) -> None:
    # Closing a view closes every widget in it; before, its buttons (whose callbacks hold the view) stayed
    # in ipywidgets' registry and each anywidget stayed tied to anywidget's file watcher, so a closed
    # browser kept its 10,000 subjects' statistics for the life of the kernel.
    import gc
    import weakref

    browser = await _browser(broker, prefix)
    table = browser.open_table(f"{prefix}.>")
    await table.start()
    plot = LivePlot(f"{prefix}.press_1.temperature", "value", connection=broker)
    await plot.start()
    alive = [weakref.ref(x) for x in (browser, browser.index, table, table.capture, plot, plot.series)]
    await browser.aclose()
    await plot.aclose()
    del browser, table, plot
    gc.collect()
    assert [ref() for ref in alive] == [None] * len(alive)


async def test_thousands_of_new_subjects_join_the_tree_a_slice_per_render(
    nats_server: NatsServer, broker: NatsBrokerConnection, prefix: str
) -> None:
    # A first look at a busy broker must not hold the kernel for one long render: the tree takes new
    # subjects in slices, a render each, soon after one another.
    browser = SubjectBrowser(f"{prefix}.>", connection=broker, refresh_interval=FAST)
    await browser.start()
    browser.pause()  # the index counts on; the tree waits
    total = 2 * MAX_NEW_PER_SYNC + 500
    await run_firehose(nats_server.url, prefix, count=total, subjects=total)
    await browser.index.sync(timeout=30)
    assert len(browser.index) == total and browser.subject_count == 0
    seen: list[int] = []
    browser.observe(lambda change: seen.append(change.new), names="subject_count")
    browser.resume()
    await wait_for_trait(browser, "subject_count", lambda n: n == total)
    assert seen == [MAX_NEW_PER_SYNC, 2 * MAX_NEW_PER_SYNC, total]
    await browser.aclose()


async def test_system_subjects_are_hidden_on_everything_until_asked_for_and_counted_anyway(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    """Issue 20 item 4: `$KV.`, `$JS.`, `_INBOX.`... drown the tree on `>`; the index counts them exactly."""
    bucket = f"b{uuid.uuid4().hex[:8]}"
    browser = SubjectBrowser(">", connection=broker, refresh_interval=FAST)
    await browser.start()
    for subject, times in ((f"{prefix}.a", 2), (f"$KV.{bucket}.k", 3), (f"$MQTT.{bucket}", 1)):
        for _ in range(times):
            await broker.publish_raw(subject, b"1")
    await browser.index.sync()
    assert browser.index.counter(f"$KV.{bucket}.k").count == 3
    assert browser.index.counter(f"$MQTT.{bucket}").count == 1
    await wait_for_trait(browser, "renders", lambda _n: f"{prefix}.a" in _rows(browser))
    assert not [path for path in _rows(browser) if path.startswith(("$KV", "$MQTT"))]
    assert "system subjects hidden" in browser.summary_view.value
    assert f"$KV.{bucket}.k" not in set(browser.to_dataframe()["subject"])

    browser.system_button.value = True  # the toggle
    await wait_for_trait(browser, "renders", lambda _n: f"$KV.{bucket}.k" in _rows(browser))
    assert _rows(browser)[f"$KV.{bucket}.k"].count == 3
    assert f"$MQTT.{bucket}" in _rows(browser)
    assert "hidden" not in browser.summary_view.value
    assert f"$KV.{bucket}.k" in set(browser.to_dataframe()["subject"])
    await browser.aclose()


async def test_the_deliveries_toggle_counts_a_recording_being_read(prefix: str) -> None:
    """Issue 21 item 1: reading a recording is not live traffic, unless the toggle asks for it."""
    from fastiot.history import Recording

    with NatsServer(jetstream=True) as own_server:
        broker = await NatsBrokerConnection.connect(servers=own_server.url)
        reader = await NatsBrokerConnection.connect(servers=own_server.url)
        try:
            recording = await Recording.start("plant", f"{prefix}.>", connection=broker)
            js = broker.client.jetstream()
            for i in range(3):
                await js.publish(f"{prefix}.temperature", pack({"value": float(i)}))
            browser = SubjectBrowser(">", connection=broker, refresh_interval=FAST)
            await browser.start()
            await (await Recording.open("plant", connection=reader)).to_dataframe()
            await browser.index.sync()
            assert f"{prefix}.temperature" not in browser.index, "read back, not published now"

            browser.deliveries_button.value = True
            await browser._tasks.wait()
            assert browser.index.include_deliveries and browser.error_view.value == ""
            await (await Recording.open("plant", connection=reader)).to_dataframe()
            await browser.index.sync()
            assert browser.index.counter(f"{prefix}.temperature").count == 3

            browser.deliveries_button.value = False
            await browser._tasks.wait()
            await (await Recording.open("plant", connection=reader)).to_dataframe()
            await browser.index.sync()
            assert browser.index.counter(f"{prefix}.temperature").count == 3
            await recording.delete()
            await browser.aclose()
        finally:
            await reader.close()
            await broker.close()
