"""MessageTable, headless, against the session's real nats-server: buttons clicked with .click(),
state read from traitlets and the capture."""

from __future__ import annotations

import gc
import sys
import tracemalloc
from pathlib import Path

import pandas as pd
import pytest

from fastiot import workbench
from fastiot.capture import MessageCapture, ParquetUnavailableError
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.serialization import pack
from fastiot.msg.thing import Thing
from fastiot.nats_server import NatsServer
from fastiot_widgets import MessageTable
from tests.waits import wait_for_trait

from .firehose import run_firehose

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
    table = MessageTable(f"{prefix}.>", connection=broker, refresh_interval=FAST, shown_rows=5)
    assert isinstance(table.capture, MessageCapture)
    await table.start()
    assert table.running and table.capture.is_running
    assert table.connection_status.state == "connected"

    await _publish(broker, prefix, 12)
    await wait_for_trait(table, "received", lambda n: n == 12)
    assert (table.rows, table.dropped, table.errors) == (12, 0, 0)
    assert table.rate > 0
    # The five newest rows, newest first: values 31.0 down to 27.0.
    body = table.table_view.value
    shown = [f"<td style='text-align:right'>{20 + i:.6g}</td>" for i in range(11, 6, -1)]
    positions = [body.index(cell) for cell in shown]
    assert positions == sorted(positions)
    assert "<td style='text-align:right'>26</td>" not in body
    assert "12 rows" in table.counters_view.value and "0 dropped" in table.counters_view.value
    assert {"received_at", "subject", "machine", "value", "unit"} <= set(table.column_chooser.options)

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
    await wait_for_trait(table.table_view, "value", lambda v: "<th>machine</th>" not in v)
    assert "<th>value</th><th>subject</th>" in table.table_view.value
    assert table.shown_columns == ["value", "subject"]

    table.columns = ["unit"]  # from code: the chooser follows
    assert table.column_chooser.value == ("unit",)
    await wait_for_trait(table.table_view, "value", lambda v: "<thead><tr><th>unit</th></tr>" in v)

    table.columns = []  # nothing chosen: every column
    await wait_for_trait(table.table_view, "value", lambda v: "<th>machine</th>" in v)
    await table.aclose()


async def test_pause_resume_and_clear_buttons(broker: NatsBrokerConnection, prefix: str) -> None:
    table = MessageTable(f"{prefix}.>", connection=broker, refresh_interval=FAST)
    await table.start()
    await _publish(broker, prefix, 4)
    await wait_for_trait(table, "received", lambda n: n == 4)

    table.pause_button.click()
    assert table.paused and table.capture.is_paused
    assert (table.pause_button.disabled, table.resume_button.disabled) == (True, False)
    await _publish(broker, prefix, 5, start=4)
    await table.capture.sync()
    assert table.capture.skipped == 5 and table.capture.received == 4
    await wait_for_trait(table.counters_view, "value", lambda v: "paused" in v and "5 skipped" in v)

    table.resume_button.click()
    assert not table.paused and not table.capture.is_paused
    await _publish(broker, prefix, 2, start=9)
    await wait_for_trait(table, "received", lambda n: n == 6)

    table.clear_button.click()
    await wait_for_trait(table, "received", lambda n: n == 0)
    assert table.rows == 0 and "no messages yet" in table.table_view.value
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
    assert str(csv_path) in table.export_message and "saved 7 rows" in table.export_message
    assert str(csv_path) in table.export_view.value
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


async def test_parquet_without_pyarrow_says_what_to_install(
    broker: NatsBrokerConnection, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = MessageTable(f"{prefix}.>", connection=broker, refresh_interval=FAST, export_dir=tmp_path)
    await table.start()
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` fail

    table.parquet_button.click()  # shows the problem, raises nothing into the cell
    assert "pip install 'fastiot-workbench[parquet]'" in table.export_message
    assert "pip install" in table.export_view.value and "#c62828" in table.export_view.value
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
    assert table.errors == 1 and "1 undecodable" in table.counters_view.value
    assert {"raw", "error"} <= set(table.column_chooser.options)
    assert "c1 ff 20 6e 6f 74" in table.table_view.value and "not msgpack" in table.table_view.value
    await table.aclose()


async def test_one_row_is_one_row(broker: NatsBrokerConnection, prefix: str) -> None:
    table = MessageTable(f"{prefix}.>", connection=broker, refresh_interval=FAST, max_rows=1)
    await table.start()
    await _publish(broker, prefix, 1)
    await wait_for_trait(table, "received", lambda n: n == 1)
    await wait_for_trait(table.counters_view, "value", lambda v: "1 row" in v)
    assert "1 rows" not in table.counters_view.value
    assert "max 1 row kept" in table.title.value
    assert repr(table) == f"MessageTable({prefix}.>, 1 row)"
    await table.aclose()
