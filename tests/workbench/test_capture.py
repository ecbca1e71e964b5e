"""MessageCapture against the session's real nats-server: decoding, the ring buffer, live views, export."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fastiot import workbench
from fastiot.capture import (
    MessageCapture,
    NotRunningError,
    ParquetUnavailableError,
    WaitTimeoutError,
    decode_payload,
    flatten_payload,
)
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.data_models import Subject
from fastiot.core.serialization import pack, serialize_to_bin
from fastiot.msg.thing import Thing
from fastiot.nats_server import NatsServer
from fastiot.subjects import SubjectIndex

THING_COLUMNS = ["received_at", "subject", "machine", "name", "value", "unit", "timestamp", "measurement_id"]
UTC_NS = pd.DatetimeTZDtype("ns", "UTC")


@pytest.fixture
async def publisher(nats_server: NatsServer) -> AsyncIterator[NatsBrokerConnection]:
    """A second connection, as another process would publish."""
    connection = await NatsBrokerConnection.connect(servers=nats_server.url)
    yield connection
    await connection.close()


def _things(n: int, machine_count: int = 3) -> list[Thing]:
    start = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    return [
        Thing(
            machine=f"press_{i % machine_count}",
            name=("temperature", "pressure", "vibration")[i % 3],
            value=20.0 + i * 0.5,
            unit="degC",
            timestamp=start + timedelta(milliseconds=i, microseconds=7),
        )
        for i in range(n)
    ]


async def _publish_things(connection: NatsBrokerConnection, things: list[Thing]) -> None:
    for thing in things:
        await connection.publish(Thing.get_subject(f"{thing.machine}.{thing.name}"), thing)


async def test_things_on_a_pattern_become_typed_columns(
    broker: NatsBrokerConnection, publisher: NatsBrokerConnection
) -> None:
    things = _things(20)
    async with MessageCapture("v1.thing.>", broker) as capture:
        before = pd.Timestamp.now(tz="UTC")
        await _publish_things(publisher, things)
        assert await capture.wait_for(20, timeout=5) == 20
        frame = capture.to_dataframe()
    assert frame.columns.tolist() == THING_COLUMNS
    assert frame["received_at"].dtype == UTC_NS
    assert frame["timestamp"].dtype == UTC_NS
    assert frame["value"].dtype == np.float64
    for name in ("subject", "machine", "name", "unit", "measurement_id"):
        assert pd.api.types.is_string_dtype(frame[name].dtype), name
    assert frame["machine"].tolist() == [t.machine for t in things]
    assert frame["value"].tolist() == [t.value for t in things]
    assert frame["subject"].tolist() == [f"v1.thing.{t.machine}.{t.name}" for t in things]
    assert frame["timestamp"].tolist() == [pd.Timestamp(t.timestamp) for t in things]
    assert frame["received_at"].min() >= before
    assert frame["received_at"].is_monotonic_increasing
    assert len(capture) == 20 and capture.received == 20 and capture.dropped == 0 and capture.errors == 0


async def test_a_subject_decodes_payloads_to_its_model(broker: NatsBrokerConnection) -> None:
    things = _things(6)
    async with MessageCapture(Thing.get_subject(">"), broker) as capture:
        await _publish_things(broker, things)
        await capture.wait_for(6, timeout=5)
        frame = capture.to_dataframe()
    assert frame.columns.tolist() == THING_COLUMNS
    assert frame["value"].tolist() == [t.value for t in things]
    assert frame["timestamp"].dtype == UTC_NS
    assert frame["measurement_id"].tolist() == [t.measurement_id for t in things]


async def test_undecodable_payloads_become_error_rows_and_the_capture_goes_on(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    random_bytes = b"\xc1" + random.Random(3).randbytes(40)  # 0xc1 is never valid msgpack
    truncated = pack({"machine": "press_1", "value": 1.5, "unit": "bar"})[:-4]
    sent = [
        ("random", random_bytes),
        ("truncated", truncated),
        ("text", b"hello world"),
        ("json", json.dumps({"machine": "oven_1", "value": 7}).encode()),
        ("scalar", pack(3.25)),
        ("good", pack({"machine": "press_2", "value": 2.5})),
    ]
    async with MessageCapture(f"{prefix}.>", broker) as capture:
        for token, payload in sent:
            await broker.publish_raw(f"{prefix}.{token}", payload)
        await capture.wait_for(len(sent), timeout=5)
        frame = capture.to_dataframe().set_index("subject")
        assert capture.errors == 2
        await broker.publish_raw(f"{prefix}.after", pack({"machine": "press_3", "value": 9.0}))
        await capture.wait_for(len(sent) + 1, timeout=5)
        assert capture.tail(1)["machine"].tolist() == ["press_3"]

    for token, payload in sent[:2]:
        row = frame.loc[f"{prefix}.{token}"]
        assert row["raw"] == payload
        assert "not msgpack" in row["error"] and "not JSON" in row["error"] and "not UTF-8" in row["error"]
        assert pd.isna(row["machine"]) and pd.isna(row["value"])
    assert frame.loc[f"{prefix}.text", "value"] == "hello world", "UTF-8 text, as `nats pub` sends, is text"
    assert frame.loc[f"{prefix}.json", "machine"] == "oven_1"
    assert frame.loc[f"{prefix}.json", "value"] == 7
    assert frame.loc[f"{prefix}.scalar", "value"] == 3.25
    assert frame.loc[f"{prefix}.good", "value"] == 2.5
    for token in ("text", "json", "scalar", "good"):
        assert pd.isna(frame.loc[f"{prefix}.{token}", "error"])
        assert frame.loc[f"{prefix}.{token}", "raw"] is None


async def test_payloads_that_do_not_fit_the_subject_model_are_error_rows(
    broker: NatsBrokerConnection,
) -> None:
    wrong_schema = pack({"machine": "press_1", "unit": "bar"})  # no name, no value
    wrong_type = pack({"machine": "press_1", "name": "t", "value": 1, "timestamp": "not a time"})
    truncated = serialize_to_bin(Thing, _things(1)[0])[:-3]
    good = _things(1)[0]
    async with MessageCapture(Thing.get_subject(">"), broker) as capture:
        await broker.publish_raw("v1.thing.press_1.schema", wrong_schema)
        await broker.publish_raw("v1.thing.press_1.type", wrong_type)
        await broker.publish_raw("v1.thing.press_1.truncated", truncated)
        await broker.publish(Thing.get_subject("press_0.temperature"), good)
        await capture.wait_for(4, timeout=5)
        frame = capture.to_dataframe()
    assert frame["subject"].tolist() == [
        "v1.thing.press_1.schema",
        "v1.thing.press_1.type",
        "v1.thing.press_1.truncated",
        "v1.thing.press_0.temperature",
    ]
    errors = frame["error"].tolist()
    assert "does not fit Thing" in errors[0] and "name" in errors[0] and "value" in errors[0]
    assert "does not fit Thing" in errors[1] and "timestamp" in errors[1]
    assert "not msgpack" in errors[2]
    assert pd.isna(errors[3])
    assert frame["raw"].tolist()[:3] == [wrong_schema, wrong_type, truncated]
    assert frame["value"].tolist()[3] == good.value
    assert frame["machine"].isna().tolist() == [True, True, True, False]


async def test_the_ring_buffer_keeps_the_newest_rows_and_counts_evictions_exactly(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    async with (
        MessageCapture(f"{prefix}.small", broker, max_rows=5) as small,
        MessageCapture(f"{prefix}.>", broker, max_rows=1000) as large,
    ):
        for i in range(12):
            await broker.publish_raw(f"{prefix}.small", pack({"i": i}))
        for i in range(2500):
            await broker.publish_raw(f"{prefix}.large", pack({"i": i, "half": i / 2}))
        await small.wait_for(12, timeout=5)
        await large.wait_for(2512, timeout=10)
        assert (len(small), small.received, small.dropped) == (5, 12, 7)
        assert small.to_dataframe()["i"].tolist() == list(range(7, 12))
        assert (len(large), large.received, large.dropped) == (1000, 2512, 1512)
        frame = large.to_dataframe()
    assert frame["i"].tolist() == list(range(1500, 2500))
    assert frame["half"].tolist() == [i / 2 for i in range(1500, 2500)]
    assert frame["i"].dtype == np.int64


async def test_starts_that_overlap_subscribe_once(broker: NatsBrokerConnection, prefix: str) -> None:
    """A widget starting its capture while a cell awaits ``start()`` too must not capture twice."""
    capture = MessageCapture(f"{prefix}.>", broker)
    index = SubjectIndex(f"{prefix}.>", broker)
    try:
        await asyncio.gather(capture.start(), capture.start(), index.start(), index.start())
        for i in range(10):
            await broker.publish_raw(f"{prefix}.a", pack({"i": i}))
        await capture.wait_for(10, timeout=5)
        await capture.sync(timeout=5)
        await index.sync(timeout=5)
        assert capture.to_dataframe()["i"].tolist() == list(range(10))
        assert index.stats(f"{prefix}.a").count == 10
    finally:
        await asyncio.gather(capture.stop(), capture.stop(), index.stop())
    await broker.publish_raw(f"{prefix}.a", pack({"i": 10}))
    await broker.flush()
    assert len(capture) == 10, "stopped: nothing more is captured"


async def test_pause_skips_messages_and_resume_keeps_them_again(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    async with MessageCapture(f"{prefix}.>", broker) as capture:
        await broker.publish_raw(f"{prefix}.a", pack({"i": 0}))
        await capture.wait_for(1, timeout=5)
        capture.pause()
        assert capture.is_paused
        for i in range(1, 4):
            await broker.publish_raw(f"{prefix}.a", pack({"i": i}))
        await capture.sync(timeout=5)
        assert (capture.skipped, len(capture)) == (3, 1)
        capture.resume()
        for i in range(4, 6):
            await broker.publish_raw(f"{prefix}.a", pack({"i": i}))
        await capture.wait_for(3, timeout=5)
        assert capture.to_dataframe()["i"].tolist() == [0, 4, 5]
        assert capture.lost == 0


async def test_clear_forgets_rows_and_tells_the_listeners(broker: NatsBrokerConnection, prefix: str) -> None:
    calls: list[int] = []
    async with MessageCapture(f"{prefix}.>", broker, max_rows=2) as capture:
        capture.on_message(calls.append)
        for i in range(3):
            await broker.publish_raw(f"{prefix}.a", pack({"i": i, "old": True}))
        await capture.wait_for(3, timeout=5)
        capture.clear()
        assert (len(capture), capture.received, capture.dropped, capture.columns) == (0, 0, 0, [])
        assert capture.to_dataframe().columns.tolist() == ["received_at", "subject"]
        for i in range(2):
            await broker.publish_raw(f"{prefix}.a", pack({"i": 10 + i}))
        await capture.wait_for(2, timeout=5)
        assert capture.to_dataframe()["i"].tolist() == [10, 11]
        assert "old" not in capture.columns
    assert calls[calls.index(0) + 1 :] and sum(calls[: calls.index(0)]) == 3
    assert sum(calls[calls.index(0) + 1 :]) == 2


async def test_on_message_is_coalesced_throttled_and_removable(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    counts: list[int] = []
    throttled: list[tuple[float, int]] = []
    second_call = asyncio.Event()

    def on_throttled(n: int) -> None:
        throttled.append((time.monotonic(), n))
        if len(throttled) == 2:
            second_call.set()

    async with MessageCapture(f"{prefix}.>", broker) as capture:
        capture.on_message(counts.append)
        capture.on_message(on_throttled, min_interval=0.3)
        for i in range(200):
            await broker.publish_raw(f"{prefix}.a", pack({"i": i}))
        await capture.wait_for(200, timeout=5)
        assert sum(counts) == 200
        assert len(counts) < 200, "calls are coalesced, not one per message"
        assert capture.tail(counts[-1])["i"].iloc[-1] == 199

        await broker.publish_raw(f"{prefix}.a", pack({"i": 200}))
        await asyncio.wait_for(second_call.wait(), 5)
        assert sum(n for _, n in throttled) == 201
        assert throttled[1][0] - throttled[0][0] >= 0.25

        capture.on_message(counts.append, remove=True)
        before = len(counts)
        await broker.publish_raw(f"{prefix}.a", pack({"i": 201}))
        await capture.wait_for(202, timeout=5)
        assert len(counts) == before
        capture.on_message(counts.append, remove=True)  # not registered any more: nothing happens

    async def not_plain(n: int) -> None:
        pass

    with pytest.raises(TypeError, match="plain function"):
        capture.on_message(not_plain)


async def test_a_listener_registered_twice_is_called_once(broker: NatsBrokerConnection, prefix: str) -> None:
    """As every on_*(callback, remove=False) of fastiot (CallbackList): duplicates are kept once."""
    counts: list[int] = []
    last = asyncio.Event()

    def on_last(n: int) -> None:  # registered after the duplicate: when it runs, the other ran
        last.set()

    async with MessageCapture(f"{prefix}.>", broker) as capture:
        capture.on_message(counts.append)
        capture.on_message(counts.append)
        capture.on_message(on_last)
        await broker.publish_raw(f"{prefix}.a", pack({"i": 0}))
        await asyncio.wait_for(last.wait(), 5)
        assert counts == [1]


async def test_a_failing_listener_does_not_stop_the_capture(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    def broken(n: int) -> None:
        raise RuntimeError("widget bug")

    async with MessageCapture(f"{prefix}.>", broker) as capture:
        capture.on_message(broken)
        for i in range(3):
            await broker.publish_raw(f"{prefix}.a", pack({"i": i}))
            await capture.wait_for(i + 1, timeout=5)
        assert capture.to_dataframe()["i"].tolist() == [0, 1, 2]


async def test_wait_for_times_out_with_a_clear_message(broker: NatsBrokerConnection, prefix: str) -> None:
    capture = MessageCapture(f"{prefix}.>", broker)
    assert await capture.wait_for(0) == 0
    with pytest.raises(NotRunningError, match="start"):
        await capture.wait_for(1, timeout=1)
    async with capture:
        started = time.monotonic()
        with pytest.raises(WaitTimeoutError, match=rf"5 rows on {prefix}\.> \(got 0\).*0\.2 s") as info:
            await capture.wait_for(5, timeout=0.2)
        assert isinstance(info.value, TimeoutError)
        assert time.monotonic() - started < 2
        capture.pause()
        with pytest.raises(WaitTimeoutError, match="resume"):
            await capture.wait_for(1, timeout=0.1)
        waiting = asyncio.create_task(capture.wait_for(1, timeout=5))
        await asyncio.sleep(0)
    with pytest.raises(NotRunningError, match="stopped"):
        await waiting


async def test_nested_missing_and_mixed_fields_get_sensible_dtypes(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    at = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    payloads = [
        {"a": {"b": 1, "c": "x"}, "n": 1, "flag": True, "at": at, "mixed": 1, "kind": "a", "items": [1, 2]},
        {"a": {"b": 2, "c": "y"}, "flag": False, "at": at, "mixed": 2.5, "kind": 3, "items": [3], "big": 1},
        {"a": {"b": 3, "c": "z"}, "n": 3, "flag": True, "at": at, "mixed": 3, "kind": "c", "extra": 0.5},
        {
            "a": {"b": 4, "c": "z"},
            "n": 4,
            "flag": False,
            "at": at,
            "mixed": 4.5,
            "kind": "d",
            "big": 2**63 + 5,
        },
    ]
    async with MessageCapture(f"{prefix}.>", broker) as capture:
        for payload in payloads:
            await broker.publish_raw(f"{prefix}.a", pack(payload))
        await capture.wait_for(4, timeout=5)
        frame = capture.to_dataframe()
    assert frame.columns.tolist()[:2] == ["received_at", "subject"]
    assert set(frame.columns[2:]) == {
        "a.b",
        "a.c",
        "n",
        "flag",
        "at",
        "mixed",
        "kind",
        "items",
        "extra",
        "big",
    }
    assert frame["a.b"].dtype == np.int64 and frame["a.b"].tolist() == [1, 2, 3, 4]
    assert frame["a.c"].tolist() == ["x", "y", "z", "z"]
    assert frame["n"].dtype == "Int64" and frame["n"].isna().tolist() == [False, True, False, False]
    assert frame["flag"].dtype == bool and frame["flag"].tolist() == [True, False, True, False]
    assert frame["at"].dtype == UTC_NS and (frame["at"] == pd.Timestamp(at)).all()
    assert frame["mixed"].dtype == np.float64 and frame["mixed"].tolist() == [1.0, 2.5, 3.0, 4.5]
    assert frame["kind"].dtype == object and frame["kind"].tolist() == ["a", 3, "c", "d"]
    assert frame["items"].tolist()[:2] == [[1, 2], [3]] and frame["items"].isna().tolist()[2:] == [True, True]
    assert frame["extra"].isna().tolist() == [True, True, False, True]
    assert frame["big"].dtype == object and frame["big"].tolist()[1::2] == [1, 2**63 + 5]


async def test_fields_beyond_max_columns_are_counted_not_stored(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    async with MessageCapture(f"{prefix}.>", broker, max_columns=2) as capture:
        await broker.publish_raw(f"{prefix}.a", pack({"a": 1, "b": 2, "c": 3, "d": 4}))
        await broker.publish_raw(f"{prefix}.a", pack({"a": 5, "e": 6}))
        await capture.wait_for(2, timeout=5)
        assert capture.columns == ["a", "b"]
        assert capture.fields_not_stored == 3
        assert capture.to_dataframe()["a"].tolist() == [1, 5]


async def test_many_rows_of_mixed_shapes_land_in_the_right_cells(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    """Thousands of interleaved shapes exercise the batched writes, the wrap-around and the slow paths."""
    rng = random.Random(7)
    expected: list[dict[str, object]] = []
    async with MessageCapture(f"{prefix}.>", broker, max_rows=3000) as capture:
        for i in range(5000):
            shape = rng.random()
            if shape < 0.45:
                row: dict[str, object] = {"kind": "thing", "value": float(i), "machine": f"m{i % 4}"}
            elif shape < 0.9:
                row = {"kind": "count", "n": i, "ok": i % 2 == 0}
            elif shape < 0.95:
                row = {"kind": "nested", "pos": {"x": i, "y": -i}}
            else:
                row = {}
            if row:
                await broker.publish_raw(f"{prefix}.{row['kind']}", pack(row))
            else:
                await broker.publish_raw(f"{prefix}.bad", b"\xc1" + str(i).encode())
            expected.append({"flat": flatten_payload(row) if row else None, "i": i})
        await capture.wait_for(5000, timeout=20)
        frame = capture.to_dataframe()
    assert capture.dropped == 2000
    for (_, got), want in zip(frame.iterrows(), expected[2000:], strict=True):
        if want["flat"] is None:
            assert got["raw"] == b"\xc1" + str(want["i"]).encode()
            assert all(pd.isna(got[c]) for c in ("kind", "value", "machine", "n", "ok", "pos.x", "pos.y"))
            continue
        flat = want["flat"]
        assert isinstance(flat, dict)
        for column in ("kind", "value", "machine", "n", "ok", "pos.x", "pos.y"):
            if column in flat:
                assert got[column] == flat[column], (want["i"], column)
            else:
                assert pd.isna(got[column]), (want["i"], column)
        assert pd.isna(got["error"])


async def test_csv_export_round_trips(broker: NatsBrokerConnection, tmp_path: Path) -> None:
    things = _things(30)
    async with MessageCapture("v1.thing.>", broker) as capture:
        await _publish_things(broker, things)
        await broker.publish_raw("v1.thing.broken", b"\xc1garbage")
        await capture.wait_for(31, timeout=5)
        frame = capture.to_dataframe()
        path = capture.to_csv(tmp_path / "things.csv")
    back = pd.read_csv(path)
    assert back.columns.tolist() == [*THING_COLUMNS, "raw", "error"]
    for name in ("received_at", "timestamp"):
        parsed = pd.to_datetime(back[name], utc=True, format="ISO8601").dt.as_unit("ns")
        pd.testing.assert_series_equal(parsed, frame[name], check_names=False)
    assert back["value"].tolist()[:30] == frame["value"].tolist()[:30]
    assert back["machine"].tolist()[:30] == frame["machine"].tolist()[:30]
    assert bytes.fromhex(back["raw"].iloc[30]) == b"\xc1garbage"
    assert "not msgpack" in back["error"].iloc[30]


async def test_parquet_export_round_trips(broker: NatsBrokerConnection, tmp_path: Path, prefix: str) -> None:
    things = _things(30)
    async with MessageCapture(["v1.thing.>", f"{prefix}.>"], broker) as capture:
        await _publish_things(broker, things)
        await broker.publish_raw(f"{prefix}.odd", pack({"value": "high", "n": 1}))
        await broker.publish_raw(f"{prefix}.odd", b"\xc1garbage")
        await capture.wait_for(32, timeout=5)
        frame = capture.to_dataframe()
        path = capture.to_parquet(tmp_path / "things.parquet")
    back = pd.read_parquet(path)
    assert back.columns.tolist() == frame.columns.tolist()
    for name in ("received_at", "timestamp"):
        assert back[name].dtype == UTC_NS
        pd.testing.assert_series_equal(back[name], frame[name])
    assert back["n"].tolist()[30] == 1 and back["n"].isna().sum() == 31
    assert back["value"].tolist()[:30] == [str(t.value) for t in things]  # mixed float/str -> text
    assert back["value"].tolist()[30] == "high"
    assert back["raw"].tolist()[31] == b"\xc1garbage"
    assert back["machine"].tolist()[:30] == [t.machine for t in things]


async def test_parquet_without_pyarrow_names_the_extra(
    broker: NatsBrokerConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` fail
    capture = MessageCapture("v1.thing.>", broker)
    with pytest.raises(ParquetUnavailableError, match=r"pip install 'fastiot-workbench\[parquet\]'") as info:
        capture.to_parquet(tmp_path / "x.parquet")
    assert isinstance(info.value, ImportError)
    assert not (tmp_path / "x.parquet").exists()


async def test_stop_keeps_the_rows_and_start_continues(broker: NatsBrokerConnection, prefix: str) -> None:
    capture = MessageCapture(f"{prefix}.>", broker)
    assert not capture.is_running
    assert await capture.start() is capture
    assert await capture.start() is capture  # starting twice does nothing
    await broker.publish_raw(f"{prefix}.a", pack({"i": 1}))
    await capture.wait_for(1, timeout=5)
    await capture.stop()
    await capture.stop()
    assert not capture.is_running
    await broker.publish_raw(f"{prefix}.a", pack({"i": 2}))  # nobody listens
    await broker.flush()
    async with capture:
        await broker.publish_raw(f"{prefix}.a", pack({"i": 3}))
        await capture.wait_for(2, timeout=5)
    assert capture.to_dataframe()["i"].tolist() == [1, 3]
    assert "stopped" in repr(capture) and "2 of max 100000 rows" in repr(capture)


async def test_without_a_connection_the_workbench_one_is_used_and_owns_the_capture(prefix: str) -> None:
    try:
        capture = MessageCapture(f"{prefix}.>")
        assert capture.connection is None
        await capture.start()
        connection = await workbench.connection()
        assert capture.connection is connection
        assert capture in workbench.registered()
        await connection.publish_raw(f"{prefix}.a", pack({"i": 1}))
        await capture.wait_for(1, timeout=5)
        await workbench.shutdown()
        assert not capture.is_running
        assert capture not in workbench.registered()
        assert len(capture) == 1
    finally:
        await workbench.shutdown()


async def test_rate_subjects_and_tail(broker: NatsBrokerConnection, prefix: str) -> None:
    async with MessageCapture(f"{prefix}.>", broker, rate_window=5.0) as capture:
        assert capture.rate == 0.0 and capture.subjects == []
        for i in range(40):
            await broker.publish_raw(f"{prefix}.{'ab'[i % 2]}", pack({"i": i}))
        await capture.wait_for(40, timeout=5)
        assert capture.subjects == [f"{prefix}.a", f"{prefix}.b"]
        # 40 rows within the first second after start: the rate is taken over at least one second
        assert 0 < capture.rate <= 40
        assert capture.tail(3)["i"].tolist() == [37, 38, 39]
        assert capture.tail(0).empty and len(capture.tail(100)) == 40
        assert capture.columns == ["i"]


async def test_several_subjects_in_one_capture(broker: NatsBrokerConnection, prefix: str) -> None:
    things = _things(3)
    async with MessageCapture([Thing.get_subject("press_0.>"), f"{prefix}.raw"], broker) as capture:
        assert capture.patterns == ["v1.thing.press_0.>", f"{prefix}.raw"]
        await _publish_things(broker, things)  # only press_0 matches
        await broker.publish_raw(f"{prefix}.raw", json.dumps({"note": "json works"}).encode())
        await capture.wait_for(2, timeout=5)
        frame = capture.to_dataframe()
    assert sorted(frame["subject"].tolist()) == sorted([f"{prefix}.raw", "v1.thing.press_0.temperature"])
    assert frame.set_index("subject").loc[f"{prefix}.raw", "note"] == "json works"


def test_bad_arguments_are_refused_with_a_hint() -> None:
    with pytest.raises(ValueError, match=r"v1\.thing"):
        MessageCapture("v1 thing")
    with pytest.raises(ValueError, match="at least one"):
        MessageCapture([])
    with pytest.raises(TypeError, match="pattern string"):
        MessageCapture(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pattern string or a Subject"):
        MessageCapture(["v1.>", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="max_rows"):
        MessageCapture("v1.>", max_rows=0)
    with pytest.raises(ValueError, match="min_interval"):
        MessageCapture("v1.>").on_message(print, min_interval=-1)


async def test_messages_the_client_drops_are_counted_as_lost(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    async with MessageCapture(f"{prefix}.>", broker, pending_msgs_limit=5) as capture:
        for i in range(2000):
            await broker.publish_raw(f"{prefix}.a", pack({"i": i}))
        await capture.sync(timeout=10)
        assert capture.lost > 0
        assert capture.received + capture.lost == 2000
        assert capture.dropped == 0


def test_decode_payload_and_flatten_payload_helpers() -> None:
    assert decode_payload(pack({"a": 1})) == ({"a": 1}, None)
    assert decode_payload(b"[1, 2]") == ([1, 2], None)
    payload, error = decode_payload(b"\xc1")
    assert payload is None and error is not None and "not msgpack" in error
    thing = _things(1)[0]
    decoded, error = decode_payload(serialize_to_bin(Thing, thing), Thing)
    assert error is None and decoded == thing
    assert decode_payload(pack({"x": 1}), Thing)[1].startswith("does not fit Thing")  # type: ignore[union-attr]
    assert decode_payload(pack({"x": 1}), dict) == ({"x": 1}, None)
    assert decode_payload(b"{}", dict)[1].startswith("not msgpack")  # type: ignore[union-attr]
    assert flatten_payload({"a": {"b": {"c": 1}}, "d": 2}) == {"a.b.c": 1, "d": 2}
    assert flatten_payload(5) == {"value": 5}
    assert flatten_payload(thing)["machine"] == thing.machine
    assert Subject(name="v1.x", msg_cls=dict).name == "v1.x"


async def test_messages_arriving_while_starting_are_not_counted_as_lost(
    broker: NatsBrokerConnection, publisher: NatsBrokerConnection
) -> None:
    stop = asyncio.Event()

    async def publish_steadily() -> int:
        sent = 0
        while not stop.is_set():
            for _ in range(50):
                await publisher.publish_raw("v1.thing.steady.value", pack({"value": sent}))
                sent += 1
            await asyncio.sleep(0)
        return sent

    task = asyncio.create_task(publish_steadily())
    try:
        for _ in range(5):
            capture = MessageCapture("v1.thing.steady.>", broker)
            await capture.start()
            await capture.sync()
            assert capture.lost == 0, "nothing was dropped, so nothing may be reported lost"
            await capture.stop()
    finally:
        stop.set()
        await task


async def test_messages_read_elsewhere_are_added_decoded_counted_and_told_without_subscribing() -> None:
    capture = MessageCapture(">", max_rows=2)  # never started: no broker needed
    told: list[int] = []
    capture.on_message(told.append)
    capture.add_messages(
        ["v1.a", "v1.b", "v1.c"],
        [1, 2, 3],
        [pack({"value": 1.5}), b'{"value": 2}', b"text"],
        {2: {"Content-Type": "text/plain"}},
    )
    await asyncio.sleep(0)  # listeners are told on the loop's next turn, as for captured messages
    assert told == [3]
    assert capture.received == 3 and capture.dropped == 1, "bounded like captured rows"
    frame = capture.to_dataframe()
    assert frame["subject"].tolist() == ["v1.b", "v1.c"] and frame["value"].tolist() == [2, "text"]
    assert frame["headers"].tolist()[-1] == {"Content-Type": "text/plain"}
    assert not capture.is_running
    with pytest.raises(ValueError, match="as many subjects, times and payloads"):
        capture.add_messages(["v1.a"], [1, 2], [b"x"])
