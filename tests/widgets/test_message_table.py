"""MessageTable, headless, against the session's real nats-server: buttons clicked with .click(),
state read from traitlets and the capture."""

from __future__ import annotations

import gc
import html
import sys
import tracemalloc
from pathlib import Path

import pandas as pd
import pytest

from fastiot import workbench
from fastiot.capture import MessageCapture, ParquetUnavailableError
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.serialization import pack
from fastiot.exports import exports_dir
from fastiot.msg.thing import Thing
from fastiot.nats_server import NatsServer
from fastiot_widgets import LivePlot, MessageTable
from tests.waits import wait_for_trait

from .firehose import run_firehose
from .grid_view import GridViews

# Re-render quickly in tests; the throttle itself is tested with the default-like 0.25 s below.
FAST = 0.02


async def _publish(broker: NatsBrokerConnection, prefix: str, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        thing = Thing(machine="press_1", name="temperature", value=20.0 + i, unit="degC")
        await broker.publish_raw(f"{prefix}.press_1.temperature", pack(thing))
    await broker.flush()


def _exists(path: Path) -> bool:
    return path.exists()


def _files(folder: Path) -> list[Path]:
    return list(folder.iterdir())


async def test_follows_live_traffic_newest_first(broker: NatsBrokerConnection, prefix: str) -> None:
    table = MessageTable(f"{prefix}.>", connection=broker, refresh_interval=FAST)
    assert isinstance(table.capture, MessageCapture)
    await table.start()
    assert table.running and table.capture.is_running
    assert table.connection_status.state == "connected"

    await _publish(broker, prefix, 1)
    await wait_for_trait(table, "received", lambda n: n == 1)
    assert table.summary.startswith("1 row · 1 received · 0 dropped"), table.summary

    await _publish(broker, prefix, 11, start=1)
    await wait_for_trait(table, "received", lambda n: n == 12)
    assert (table.rows, table.dropped, table.errors) == (12, 0, 0)
    assert table.rate > 0
    assert table.summary.startswith("12 rows · 12 received · 0 dropped")
    # Newest first: values 31 down to 20.
    assert table.grid.rows(0, 5)["value"].tolist() == ["31", "30", "29", "28", "27"]
    assert (table.grid.row_count, table.grid.total_rows) == (12, 12)
    assert {"received_at", "subject", "machine", "value", "unit"} <= set(table.grid.columns)
    assert table.grid.column_kinds["value"] == "number"
    assert table.column_chooser.options == tuple(table.grid.columns)

    frame = table.to_dataframe()
    assert len(frame) == 12 and frame["value"].tolist() == [20.0 + i for i in range(12)]
    await table.aclose()
    assert not table.capture.is_running


async def test_columns_can_be_chosen(broker: NatsBrokerConnection, prefix: str) -> None:
    table = MessageTable(f"{prefix}.>", connection=broker, refresh_interval=FAST)
    await table.start()
    await _publish(broker, prefix, 3)
    await wait_for_trait(table, "received", lambda n: n == 3)

    table.column_chooser.value = ("value", "subject")  # as a Ctrl-click in the browser sets it
    assert table.columns == ["value", "subject"]
    assert table.grid.columns == table.shown_columns == ["value", "subject"]
    assert table.grid.rows(0, 1).values.tolist() == [["22", f"{prefix}.press_1.temperature"]]

    table.columns = ["unit"]  # from code: the chooser follows
    assert table.column_chooser.value == ("unit",)
    assert table.grid.columns == ["unit"]

    table.columns = []  # nothing chosen: every column
    assert "machine" in table.grid.columns
    await table.aclose()


async def test_pause_resume_and_clear_buttons(broker: NatsBrokerConnection, prefix: str) -> None:
    table = MessageTable(f"{prefix}.>", connection=broker, refresh_interval=FAST)
    await table.start()
    await _publish(broker, prefix, 4)
    await wait_for_trait(table, "received", lambda n: n == 4)

    # Pause freezes the view; the capture keeps capturing, so the counts are right at Resume.
    view = GridViews(table.grid).view(rows=20)  # what a browser shows
    await wait_for_trait(table, "renders", lambda _n: len(view.shown()) == 4)
    table.pause_button.click()
    assert table.paused and not table.capture.is_paused
    assert (table.pause_button.disabled, table.resume_button.disabled) == (True, False)
    shown = view.shown()
    await _publish(broker, prefix, 5, start=4)
    await table.capture.sync()
    assert table.capture.received == 9 and table.capture.skipped == 0
    await wait_for_trait(table, "summary", lambda v: "paused: 5 messages since, still captured" in v)
    table.refresh()  # as the throttle would, however often: while paused the view stands still
    assert (table.received, table.rows, table.grid.row_count) == (4, 4, 4)
    assert view.shown() == shown

    table.resume_button.click()
    assert not table.paused
    await wait_for_trait(table, "received", lambda n: n == 9)
    assert table.rows == 9 and "paused" not in table.summary
    values = [dict(zip(table.grid.columns, row, strict=True))["value"] for row in view.shown()]
    assert values == [f"{20.0 + i:.6g}" for i in range(8, -1, -1)], "nothing was missed while paused"
    await _publish(broker, prefix, 2, start=9)
    await wait_for_trait(table, "received", lambda n: n == 11)

    table.clear_button.click()
    await wait_for_trait(table, "received", lambda n: n == 0)
    assert table.rows == 0 and table.grid.row_count == 0
    assert table.grid.placeholder == "no messages yet"
    await table.aclose()


async def test_export_buttons_write_csv_and_parquet_and_show_the_path(
    broker: NatsBrokerConnection, prefix: str, tmp_path: Path
) -> None:
    table = MessageTable(f"{prefix}.>", connection=broker, refresh_interval=FAST, export_dir=tmp_path / "out")
    await table.start()
    await _publish(broker, prefix, 7)
    await wait_for_trait(table, "received", lambda n: n == 7)

    table.csv_button.click()
    csv_path = Path(table.last_export)
    assert csv_path.parent == (tmp_path / "out").resolve() and csv_path.suffix == ".csv"
    assert csv_path.name.startswith(f"{prefix}.all-")
    assert table.export_message == f"saved 7 rows to {csv_path}"
    back = pd.read_csv(csv_path)
    assert back["value"].tolist() == [20.0 + i for i in range(7)]

    table.parquet_button.click()
    parquet_path = Path(table.last_export)
    assert parquet_path.suffix == ".parquet" and _exists(parquet_path)
    assert pd.read_parquet(parquet_path)["value"].tolist() == [20.0 + i for i in range(7)]

    # Clicking twice within a second does not overwrite the first file.
    table.csv_button.click()
    assert Path(table.last_export) != csv_path and _exists(csv_path)

    explicit = table.export_csv(tmp_path / "mine.csv")
    assert explicit == (tmp_path / "mine.csv").resolve() and _exists(explicit)
    await table.aclose()


async def test_the_export_buttons_write_into_the_exports_folder_beside_the_notebook(
    broker: NatsBrokerConnection, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not into the notebook's folder itself (the repository's notebooks/, where git lists it as
    untracked), but into exports/ there, which notebook 03 uses too and git ignores."""
    monkeypatch.chdir(tmp_path)  # a notebook's kernel runs in the notebook's folder
    table = MessageTable(f"{prefix}.>", connection=broker, refresh_interval=FAST)
    assert "exports/" in table.csv_button.tooltip and "exports/" in table.parquet_button.tooltip
    await table.start()
    await _publish(broker, prefix, 2)
    await wait_for_trait(table, "received", lambda n: n == 2)
    table.csv_button.click()
    table.parquet_button.click()
    assert [p.name for p in _files(tmp_path)] == ["exports"]
    written = _files(tmp_path / "exports")
    assert sorted(p.suffix for p in written) == [".csv", ".parquet"]
    assert exports_dir() == (tmp_path / "exports").resolve() == Path(table.last_export).parent
    assert html.escape(table.last_export) in table.export_view.value, "the path is shown"
    await table.aclose()


async def test_parquet_without_pyarrow_says_what_to_install(
    broker: NatsBrokerConnection, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = MessageTable(f"{prefix}.>", connection=broker, refresh_interval=FAST, export_dir=tmp_path)
    await table.start()
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` fail

    table.parquet_button.click()  # shows the problem, raises nothing into the cell
    assert "pip install 'fastiot-workbench[parquet]'" in table.export_message
    assert table.last_export == "" and _files(tmp_path) == []
    with pytest.raises(ParquetUnavailableError):
        table.export_parquet()
    await table.aclose()


async def test_a_burst_renders_a_few_times_per_second_and_memory_stays_bounded_by_max_rows(
    nats_server: NatsServer, broker: NatsBrokerConnection, prefix: str
) -> None:
    max_rows = 2_000
    table = MessageTable(f"{prefix}.>", connection=broker, max_rows=max_rows, refresh_interval=0.25)
    await table.start()
    sent = 0
    memory: list[int] = []
    tracemalloc.start()
    try:
        for _ in range(4):
            renders_before = table.renders
            loop_started = table.capture.received
            sent += await run_firehose(nats_server.url, prefix, count=10_000, rate=20_000)
            await table.capture.sync(timeout=30)
            assert table.capture.received - loop_started == 10_000
            # 10,000 messages in about half a second: a handful of renders, not thousands.
            assert table.renders - renders_before <= 8
            table.refresh()
            gc.collect()
            memory.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    capture = table.capture
    assert capture.lost == 0
    assert (capture.received, len(capture), table.rows) == (sent, max_rows, max_rows)
    assert capture.dropped == table.dropped == sent - max_rows  # exact
    assert len(table.to_dataframe()) == max_rows
    # After the first 10,000 messages filled the buffer, 30,000 more hardly add memory.
    growth = memory[-1] - memory[0]
    print(f"\ntraced memory after each 10k: {[f'{m / 1e6:.2f} MB' for m in memory]}; growth {growth} B")
    assert growth < 256_000, memory
    await table.aclose()


async def test_views_a_given_capture_without_owning_it(broker: NatsBrokerConnection, prefix: str) -> None:
    capture = await MessageCapture(f"{prefix}.>", broker, max_rows=10).start()
    with pytest.raises(TypeError, match="MessageCapture"):
        MessageTable(capture, max_rows=5)
    table = MessageTable(capture, refresh_interval=FAST)
    assert table.capture is capture
    await table.start()
    await _publish(broker, prefix, 3)
    await wait_for_trait(table, "rows", lambda n: n == 3)
    await table.aclose()
    assert capture.is_running, "a capture the table did not make keeps running"
    await capture.stop()


async def test_close_stops_the_capture_and_the_renders(broker: NatsBrokerConnection, prefix: str) -> None:
    table = MessageTable(f"{prefix}.>", connection=broker, refresh_interval=FAST)
    await table.start()
    table.close()
    await table._tasks.wait()
    assert not table.capture.is_running and not table.is_render_scheduled
    renders = table.renders
    await _publish(broker, prefix, 3)
    await broker.flush()
    assert table.renders == renders


async def test_without_a_connection_it_uses_the_workbench_one(prefix: str) -> None:
    table = MessageTable(f"{prefix}.>", refresh_interval=FAST)  # starts by itself on the running loop
    await table.start()
    broker = await workbench.connection()
    assert table.capture.connection is broker
    assert table.connection_status.state == "connected"
    await _publish(broker, prefix, 2)
    await wait_for_trait(table, "received", lambda n: n == 2)
    await table.aclose()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="max_rows"):
        MessageTable("a.>", max_rows=0)
    with pytest.raises(ValueError, match="NATS subject pattern"):
        MessageTable("a..b")


async def test_undecodable_payloads_are_counted_and_shown_as_raw_bytes(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    table = MessageTable(f"{prefix}.>", connection=broker, refresh_interval=FAST)
    await table.start()
    await broker.publish_raw(f"{prefix}.junk", b"\xc1\xff not msgpack")
    await _publish(broker, prefix, 1)
    await wait_for_trait(table, "received", lambda n: n == 2)
    assert table.errors == 1 and "1 undecodable" in table.summary
    assert {"raw", "error"} <= set(table.grid.columns)
    junk = table.grid.rows(1, 2).iloc[0]
    assert junk["raw"].startswith("c1 ff 20 6e 6f 74") and junk["error"] != ""
    await broker.publish_raw(f"{prefix}.odd", pack({"subject": "a payload field named like a column"}))
    await wait_for_trait(table, "received", lambda n: n == 3)
    assert table.grid.columns == table.to_dataframe().columns.tolist(), "the grid names columns as the frame"
    assert table.grid.rows(0, 1)["payload.subject"].tolist() == ["a payload field named like a column"]
    await table.aclose()


async def test_50000_rows_stay_navigable_and_updates_are_deltas(
    nats_server: NatsServer, broker: NatsBrokerConnection, prefix: str
) -> None:
    table = MessageTable(f"{prefix}.>", connection=broker, max_rows=50_000, refresh_interval=FAST)
    await table.start()
    views = GridViews(table.grid)
    top, deep = views.view("top", rows=30), views.view("deep", rows=30)
    sent = await run_firehose(nats_server.url, prefix, count=50_000, subjects=100)
    await table.capture.sync(timeout=30)
    table.refresh()
    assert table.grid.row_count == table.rows == sent == 50_000

    # The oldest rows, at the very end of the newest-first order: one window, a few kB.
    before = views.bytes_sent()
    deep.scroll_to(49_990)
    assert len(deep.shown()) == 10 and all(deep.shown())
    assert deep.column("subject")[-1] == f"{prefix}.s000.value", "the first message sent is the last row"
    assert views.bytes_sent() - before < 8_000

    # New messages: the view at the top gets only the new rows; the scrolled one keeps its rows in place.
    shown_deep = deep.shown()
    top_messages, deep_messages = len(top.messages), len(deep.messages)
    await run_firehose(nats_server.url, prefix, count=5, subjects=100)
    await table.capture.sync(timeout=30)
    table.refresh()
    update = top.messages[top_messages]
    assert len(update["rows"]) == 5 and len(update["ids"]) == 30, "5 new rows, the 25 others it has"
    # Its rows moved 5 down (the 5 oldest were evicted): it follows them, showing the same messages.
    assert deep.messages[deep_messages]["shift"] == 5 and deep.shown() == shown_deep[:5]
    assert table.dropped == 5 and table.grid.row_count == 50_000

    # Sorting and filtering 50,000 rows in the kernel: the top of the new order goes to every view.
    table.grid.sort_column = "subject"
    assert top.column("subject")[0] == f"{prefix}.s000.value"
    table.grid.filters = {"subject": "s042"}
    assert table.grid.row_count == 500 and set(top.column("subject")) == {f"{prefix}.s042.value"}
    table.grid.filters = {"value": ">29.85"}
    values = table.to_dataframe()["value"]
    assert table.grid.row_count == int((values > 29.85).sum()) > 0
    assert all(float(v) > 29.85 for v in top.column("value"))
    await table.aclose()


async def test_clicking_a_row_shows_its_whole_message(broker: NatsBrokerConnection, prefix: str) -> None:
    table = MessageTable(f"{prefix}.>", connection=broker, refresh_interval=FAST)
    await table.start()
    await _publish(broker, prefix, 3)
    await wait_for_trait(table, "received", lambda n: n == 3)
    row_id = int(table.grid.rows(1, 2).index[0])
    table.grid.selected_id = row_id  # as a click in the browser sets it
    assert table.selected_row["value"] == 21.0 and table.selected_row["unit"] == "degC"
    table.clear_button.click()
    await wait_for_trait(table, "received", lambda n: n == 0)
    assert table.grid.selected_id == -1 and table.selected_row == {}
    await table.aclose()


async def test_a_deeply_nested_payload_renders_as_text(broker: NatsBrokerConnection, prefix: str) -> None:
    deep: object = 1
    for _ in range(1_000):
        deep = [deep]
    table = MessageTable(f"{prefix}.>", connection=broker, refresh_interval=FAST)
    await table.start()
    views = GridViews(table.grid)
    view = views.view()
    await broker.publish_raw(f"{prefix}.deep", pack({"deep": deep, "ok": 1}))
    await wait_for_trait(table, "received", lambda n: n == 1)
    table.refresh()
    assert table.error == ""
    cells = dict(zip(table.grid.columns, view.shown()[0], strict=True))
    assert cells["ok"] == "1" and cells["deep"].startswith("[[[[") and len(cells["deep"]) <= 200
    table.grid.selected_id = int(table.grid.rows(0, 1).index[0])
    assert "deep: [[[[" in table.details_view.value
    await table.aclose()


async def test_one_row_is_one_row(broker: NatsBrokerConnection, prefix: str) -> None:
    table = MessageTable(f"{prefix}.>", connection=broker, refresh_interval=FAST, max_rows=1)
    await table.start()
    await _publish(broker, prefix, 1)
    await wait_for_trait(table, "received", lambda n: n == 1)
    await wait_for_trait(table.counters_view, "value", lambda v: "1 row" in v)
    assert "1 rows" not in table.counters_view.value
    assert "the newest 1 row kept" in table.title.value
    assert repr(table) == f"MessageTable({prefix}.>, 1 row)"
    await table.aclose()


async def test_plot_charts_a_numeric_column_of_the_capture_and_follows_it(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    table = MessageTable(f"{prefix}.>", connection=broker, refresh_interval=FAST)
    await table.start()
    assert table.plot_action.button.disabled, "nothing to plot before a message came"
    with pytest.raises(ValueError, match="no numeric column"):
        table.open_plot()
    subject = f"{prefix}.press_1"
    for i in range(3):
        await broker.publish_raw(subject, pack({"value": 20.0 + i, "count": i, "ok": True, "unit": "degC"}))
    await wait_for_trait(table, "received", lambda n: n == 3)
    await wait_for_trait(table.plot_action.button, "disabled", lambda d: not d)
    assert list(table.plot_action.field_box.options) == ["value", "count"], "numbers only, no bool or text"

    table.plot_action.button.click()  # plots the column chosen: the first
    plot = table.plot
    assert isinstance(plot, LivePlot) and plot in table.plot_action.area.children
    assert plot.series.fields == ["value"] and plot.labels == [subject] and plot.points_shown == 3
    await broker.publish_raw(subject, pack({"value": 23.0, "count": 3, "ok": True, "unit": "degC"}))
    await wait_for_trait(plot, "points_shown", lambda n: n == 4)  # it follows the capture

    table.plot_action.field_box.value = "count"
    table.plot_action.button.click()  # a second column joins the chart
    assert table.plot is not plot and table.plot is not None
    assert sorted(table.plot.series.fields) == ["count", "value"] and table.plot.points_shown == 8
    table.close_plot()
    assert table.plot is None and table.plot_action.area.children == ()
    await table.aclose()


async def test_copy_as_code_gives_the_cell_that_opens_this_table(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    table = MessageTable([f"{prefix}.a", f"{prefix}.b"], connection=broker, max_rows=500)
    table.copy_code.frontend_timeout = 0.05
    assert await table.copy_code.copy() == "shown"  # no JupyterLab here: shown in the box
    assert (
        table.copy_code.code.splitlines()[-2]
        == f'table = MessageTable(["{prefix}.a", "{prefix}.b"], max_rows=500)'
    )
    assert table.copy_code.code_box.code == table.copy_code.code
    await table.aclose()

    typed = MessageTable(MessageCapture(Thing.get_subject("press_1"), broker))
    typed.copy_code.frontend_timeout = 0.05
    await typed.copy_code.copy()
    assert "from fastiot.msg.thing import Thing" in typed.copy_code.code
    assert 'MessageTable(Subject(name="v1.thing.press_1", msg_cls=Thing))' in typed.copy_code.code
    await typed.aclose()
