"""Recording.to_dataframe: the capture's columns and decoding plus ``sequence``; ranges, subjects, limits."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from fastiot.capture import ColumnarBuffer, MessageCapture
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.serialization import pack
from fastiot.exceptions import InvalidRangeError, InvalidRecordingError, RecordingDeletedError
from fastiot.history import Recording
from fastiot.history._reader import StreamReader
from fastiot.history.ranges import Range
from fastiot.msg.thing import Thing
from tests.history.conftest import WAIT, publish, recorded, things


async def test_same_columns_and_values_as_a_capture_of_the_same_messages_plus_sequence(
    connection: NatsBrokerConnection, name: str
) -> None:
    rec = await Recording.start(name, ["v1.thing.>", "v1.mixed.>"], connection=connection)
    capture = await MessageCapture(["v1.thing.>", "v1.mixed.>"], connection).start()
    thing = Thing(machine="press_1", name="temperature", value=71.5, unit="degC")
    items: list[tuple[str, object]] = [("v1.thing.press_1.temperature", thing.model_dump()) for _ in range(3)]
    items += [("v1.mixed.a", {"nested": {"x": 1}, "flag": True}), ("v1.mixed.b", 42), ("v1.mixed.c", [1, 2])]
    sequences = await publish(connection, items, headers={1: {"trace-id": "abc"}})
    await connection.publish_raw("v1.mixed.bad", b"\xc1 not msgpack")  # recorded too, but not decodable
    await connection.publish_raw("v1.mixed.json", b'{"j": "son"}')
    await capture.wait_for(len(items) + 2, timeout=WAIT)
    await capture.stop()

    recorded = await rec.to_dataframe()
    captured = capture.to_dataframe()
    assert list(recorded.columns) == ["received_at", "subject", "sequence", *captured.columns[2:]]
    assert recorded["sequence"].tolist()[: len(items)] == sequences
    assert recorded["sequence"].dtype == "int64"
    assert recorded["received_at"].dtype == captured["received_at"].dtype
    payload = [c for c in captured.columns if c != "received_at"]
    pd.testing.assert_frame_equal(recorded[payload], captured[payload])
    assert recorded["headers"].iloc[1] == {"trace-id": "abc"} and recorded["headers"].iloc[0] is None
    bad = recorded[recorded["subject"] == "v1.mixed.bad"].iloc[0]
    assert bad["raw"] == b"\xc1 not msgpack" and "not msgpack" in bad["error"]


def test_a_released_buffer_gives_the_same_frame_and_is_empty_after() -> None:
    """What to_dataframe() loads through: each column let go once converted, nothing else different."""
    keep, release = (ColumnarBuffer(100, sequence=True) for _ in range(2))
    for buffer in (keep, release):
        for first in (0, 25):  # two batches, as a recording's reader hands them over
            payloads = [
                pack({"n": i, "name": f"s{i % 3}", "at": datetime(2026, 1, 1, tzinfo=timezone.utc)})
                if i != 7
                else b"\xc1"
                for i in range(first, first + 25)
            ]
            buffer.extend(
                [f"v1.x.{i % 3}" for i in range(first, first + 25)],
                np.arange(first, first + 25, dtype=np.int64),
                payloads,
                {3: {"h": "1"}} if first == 0 else None,
                np.arange(first, first + 25, dtype=np.int64),
            )
    expected = keep.to_dataframe()
    pd.testing.assert_frame_equal(release.to_dataframe(release=True), expected)
    assert len(release) == 0 and release.to_dataframe().columns.tolist() == [
        "received_at",
        "subject",
        "sequence",
    ]
    pd.testing.assert_frame_equal(keep.to_dataframe(), expected)  # without release, the buffer keeps its rows


async def test_received_at_is_when_the_stream_stored_each_message(
    connection: NatsBrokerConnection, name: str
) -> None:
    rec = await Recording.start(name, "v1.thing.>", connection=connection)
    before = datetime.now(timezone.utc)
    await publish(connection, things(20))
    after = datetime.now(timezone.utc)
    frame = await rec.to_dataframe()
    times = frame["received_at"]
    assert times.is_monotonic_increasing
    assert times.iloc[0] >= pd.Timestamp(before) - pd.Timedelta("1s")  # the server's clock is this machine's
    assert times.iloc[-1] <= pd.Timestamp(after) + pd.Timedelta("1s")


async def test_start_and_end_by_sequence_are_inclusive(connection: NatsBrokerConnection, name: str) -> None:
    rec = await recorded(connection, name, 50)
    frame = await rec.to_dataframe(start=10, end=20)
    assert frame["sequence"].tolist() == list(range(10, 21))
    assert frame["n"].tolist() == list(range(9, 20))
    assert (await rec.to_dataframe(start=50))["sequence"].tolist() == [50]
    assert (await rec.to_dataframe(end=1))["sequence"].tolist() == [1]


async def test_start_and_end_by_time_and_by_timedelta_back_from_now(
    connection: NatsBrokerConnection, name: str
) -> None:
    rec = await recorded(connection, name, 10)
    all_rows = await rec.to_dataframe()
    third, seventh = all_rows["received_at"].iloc[3], all_rows["received_at"].iloc[7]
    frame = await rec.to_dataframe(start=third, end=seventh)  # pandas Timestamps, exact to the ns
    assert frame["n"].tolist() == [3, 4, 5, 6, 7]  # both ends inclusive
    # A datetime has microseconds: an end includes its whole microsecond, a start begins at it.
    start, end = third.floor("us").to_pydatetime(), seventh.floor("us").to_pydatetime()
    assert (await rec.to_dataframe(start=start, end=end))["n"].tolist() == [3, 4, 5, 6, 7]
    naive = start.replace(tzinfo=None)  # naive datetimes are UTC
    assert (await rec.to_dataframe(start=naive))["n"].tolist() == list(range(3, 10))
    assert len(await rec.to_dataframe(start=timedelta(hours=1))) == 10
    assert len(await rec.to_dataframe(end=timedelta(hours=1))) == 0
    assert len(await rec.to_dataframe(start=timedelta(0))) == 0  # nothing from now on yet


async def test_subjects_and_max_rows(connection: NatsBrokerConnection, name: str) -> None:
    rec = await recorded(connection, name, 30, machines=("a", "b", "c"))
    only_a = await rec.to_dataframe(subjects="v1.thing.a.>")
    assert set(only_a["machine"]) == {"a"} and len(only_a) == 10
    a_and_c = await rec.to_dataframe(subjects=[Thing.get_subject("a.temperature"), "v1.thing.c.*"])
    assert set(a_and_c["machine"]) == {"a", "c"} and len(a_and_c) == 20
    first = await rec.to_dataframe(max_rows=7)
    assert first["sequence"].tolist() == list(range(1, 8))
    assert (await rec.to_dataframe(start=25, subjects="v1.thing.b.>", max_rows=1))["n"].tolist() == [25]
    assert len(await rec.to_dataframe(max_rows=0)) == 0


async def test_an_empty_range_gives_an_empty_frame_with_the_right_columns(
    connection: NatsBrokerConnection, name: str
) -> None:
    rec = await Recording.start(name, "v1.thing.>", connection=connection)
    empty_stream = await rec.to_dataframe()
    await publish(connection, things(5))
    for frame in (
        empty_stream,
        await rec.to_dataframe(start=100),
        await rec.to_dataframe(start=4, end=2),
        await rec.to_dataframe(subjects="v1.thing.nobody.>"),
        await rec.to_dataframe(start=datetime.now(timezone.utc) + timedelta(days=1)),
    ):
        assert frame.empty
        assert list(frame.columns) == ["received_at", "subject", "sequence"]
        assert str(frame["received_at"].dtype) == "datetime64[ns, UTC]"
        assert frame["sequence"].dtype == "int64"


async def test_a_recording_that_goes_on_is_read_up_to_its_newest_message_at_the_call(
    connection: NatsBrokerConnection, name: str
) -> None:
    rec = await recorded(connection, name, 100)
    publishing = asyncio.create_task(publish(connection, things(2000, start=100)))
    try:
        frame = await rec.to_dataframe()
    finally:
        await publishing
    assert len(frame) >= 100
    assert frame["sequence"].tolist() == list(range(1, len(frame) + 1))  # in order, no gap, no duplicate


async def test_a_large_range_arrives_complete_and_in_order(
    connection: NatsBrokerConnection, name: str
) -> None:
    rec = await recorded(connection, name, 30_000)
    frame = await rec.to_dataframe()
    assert frame["n"].tolist() == list(range(30_000))
    assert frame["sequence"].tolist() == list(range(1, 30_001))


async def test_a_recording_deleted_during_a_read_is_a_clear_error(
    connection: NatsBrokerConnection, name: str
) -> None:
    rec = await Recording.start(name, "v1.thing.>", connection=connection)
    # 10 MB: more than the server sends before it waits for flow control, so it cannot all be in already.
    await publish(
        connection, [(subject, {**payload, "pad": "x" * 2_000}) for subject, payload in things(5_000)]
    )
    # JetStream's advisory says so at once; when the server does not send it (it sometimes does not while
    # a consumer is pushing), the consumer's missing heartbeats do after stall_timeout.
    reader = StreamReader(
        connection, name, range_=Range(), batch_rows=100, max_buffered_rows=100, stall_timeout=2
    )
    deleted = False
    with pytest.raises(RecordingDeletedError, match=f"recording '{name}'.*deleted"):
        async with reader:
            async for _batch in reader:
                if not deleted:
                    await rec.delete()
                    deleted = True
    assert reader.rows < 5_000


async def test_a_read_that_ends_before_the_stream_leaves_no_consumer_behind(
    connection: NatsBrokerConnection, name: str
) -> None:
    # The range ends mid-stream: the consumer's removal starts in the background at once (so the server
    # stops pushing), and closing the reader waits for it.
    await recorded(connection, name, 500)
    async with StreamReader(connection, name, range_=Range(end_seq=50), batch_rows=20) as reader:
        rows = [batch async for batch in reader]
    assert sum(map(len, rows)) == 50
    assert await connection.client.jsm().consumers_info(name) == []


async def test_bad_ranges_and_limits_are_refused_before_reading(
    connection: NatsBrokerConnection, name: str
) -> None:
    rec = await Recording.start(name, "v1.thing.>", connection=connection)
    for start, end in ((0, None), (None, -3), ("yesterday", None), (True, None), (timedelta(hours=-1), None)):
        with pytest.raises(InvalidRangeError):
            await rec.to_dataframe(start=start, end=end)  # type: ignore[arg-type]
    with pytest.raises(InvalidRecordingError, match="max_rows"):
        await rec.to_dataframe(max_rows=-1)
    with pytest.raises(InvalidRecordingError, match="pattern"):
        await rec.to_dataframe(subjects="v1..thing")
