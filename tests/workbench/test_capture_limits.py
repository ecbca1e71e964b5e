"""MessageCapture bounds and odd payloads: bytes as well as rows, deep nesting, headers; ColumnarBuffer."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import msgpack
import numpy as np
import pandas as pd
import pytest

from fastiot.capture import DEFAULT_MAX_BYTES, ColumnarBuffer, MessageCapture
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.serialization import pack
from fastiot.payloads import DEFAULT_MAX_DEPTH, register_decoder, unregister_decoder

KB = 1024
MB = 1024 * 1024


def _nested(levels: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


async def test_a_deeply_nested_payload_does_not_break_exports_or_reprs(
    broker: NatsBrokerConnection, prefix: str, tmp_path: Path
) -> None:
    """issue 10, defect 9: one valid 1 KB msgpack payload nested 1000 levels deep."""
    deep = msgpack.packb({"deep": _nested(1000), "n": 1})
    assert len(deep) < 1100
    async with MessageCapture(f"{prefix}.>", broker) as capture:
        await broker.publish_raw(f"{prefix}.deep", deep)
        await broker.publish_raw(f"{prefix}.deep", msgpack.packb(_nested(1000)))
        await capture.wait_for(2, timeout=5)
        text = repr(capture.tail())
        csv = pd.read_csv(capture.to_csv(tmp_path / "deep.csv"))
        parquet = pd.read_parquet(capture.to_parquet(tmp_path / "deep.parquet"))
        frame = capture.to_dataframe()
    assert "2 rows" in text or "deep" in text
    assert capture.errors == 0, "the payload is valid: it is kept, not an error row"
    assert frame["n"].tolist()[0] == 1 and len(csv) == len(parquet) == 2
    kept = frame["deep"].iloc[0]
    for _ in range(DEFAULT_MAX_DEPTH):
        kept = kept[0]
    assert isinstance(kept, str) and kept.count("[") == 1000 - DEFAULT_MAX_DEPTH, "deeper levels are text"
    assert csv["deep"].iloc[0].count("[") == 1000
    assert str(parquet["value"].iloc[1]).count("[") == 1000


async def test_nested_mappings_deeper_than_the_limit_are_one_text_column(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    payload: object = {"leaf": 1}
    for _ in range(200):
        payload = {"a": payload}
    async with MessageCapture(f"{prefix}.>", broker) as capture:
        await broker.publish_raw(f"{prefix}.deep", pack(payload))
        await capture.wait_for(1, timeout=5)
        frame = capture.to_dataframe()
        assert capture.errors == 0
    (column,) = [c for c in frame.columns if c.startswith("a.")]
    assert column == ".".join(["a"] * DEFAULT_MAX_DEPTH)
    assert frame[column].iloc[0].startswith('{"a": {"a": ') and frame[column].iloc[0].endswith(
        '{"leaf": 1}' + "}" * 168
    )


async def test_rows_not_yet_written_count_against_max_rows(broker: NatsBrokerConnection, prefix: str) -> None:
    """issue 10, defect 10: with max_rows=10 and 100 KB payloads a capture held 49 MB (staged rows)."""
    payload = pack({"blob": bytes(100 * KB)})
    async with MessageCapture(f"{prefix}.>", broker, max_rows=10) as capture:
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(300):
                await broker.publish_raw(f"{prefix}.big.{i % 3}", payload)
            await capture.sync(timeout=30)
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert (capture.received, len(capture), capture.dropped) == (300, 10, 290)
        assert held < 8 * MB, f"the capture holds {held / MB:.1f} MB for 10 rows of 100 KB"
        assert capture.payload_bytes <= 10 * len(payload)


async def test_max_bytes_bounds_the_payload_bytes_and_dropped_stays_exact(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    async with MessageCapture(f"{prefix}.>", broker, max_bytes=1 * MB) as capture:
        assert capture.max_bytes == 1 * MB and MessageCapture(f"{prefix}.>").max_bytes == DEFAULT_MAX_BYTES
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(50):
                await broker.publish_raw(f"{prefix}.big", pack({"i": i, "blob": bytes(100 * KB)}))
                assert capture.payload_bytes <= 1 * MB
            await capture.sync(timeout=30)
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        kept = len(capture)
        assert 5 <= kept <= 10 and capture.payload_bytes <= 1 * MB
        assert capture.dropped == capture.received - kept == 50 - kept
        assert capture.to_dataframe()["i"].tolist() == list(range(50 - kept, 50)), "the newest rows are kept"
        for i in range(50, 60):  # small rows fit again, next to the big ones
            await broker.publish_raw(f"{prefix}.small", pack({"i": i}))
        await capture.wait_for(60, timeout=5)
        assert capture.tail(10)["i"].tolist() == list(range(50, 60))
        assert capture.dropped + len(capture) == 60
    assert held < 4 * MB, f"the capture holds {held / MB:.1f} MB with max_bytes=1 MB"


async def test_a_payload_larger_than_max_bytes_is_dropped_and_counted(
    broker: NatsBrokerConnection, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with MessageCapture(f"{prefix}.>", broker, max_bytes=10 * KB) as capture:
        await broker.publish_raw(f"{prefix}.a", pack({"i": 0}))
        await broker.publish_raw(f"{prefix}.a", pack({"i": 1, "blob": bytes(20 * KB)}))
        await broker.publish_raw(f"{prefix}.a", pack({"i": 2}))
        await capture.wait_for(3, timeout=5)
        assert capture.to_dataframe()["i"].tolist() == [0, 2], "the rows that fit are kept"
        assert (capture.received, capture.dropped, len(capture)) == (3, 1, 2)
    assert "larger than max_bytes" in caplog.text
    with pytest.raises(ValueError, match="max_bytes"):
        MessageCapture("v1.>", max_bytes=0)


def test_a_payload_larger_than_max_bytes_drops_alone_after_staged_rows() -> None:
    """20 small rows not yet written, then one row of 20 KB under max_bytes=10,000: only that one goes."""
    buffer = ColumnarBuffer(max_rows=1000, max_bytes=10_000)
    for i in range(20):
        buffer.append("v1.a", i, pack({"i": i}), {"row": str(i)} if i == 19 else None)
    buffer.append("v1.a", 20, pack({"i": 20, "blob": bytes(20 * KB)}), {"row": "big"})
    buffer.append("v1.a", 21, pack({"i": 21}), {"row": "21"})
    frame = buffer.to_dataframe()
    assert frame["i"].tolist() == [*range(20), 21]
    assert (len(buffer), buffer.dropped, buffer.rows_added) == (21, 1, 22)
    assert frame["headers"].tolist()[-2:] == [{"row": "19"}, {"row": "21"}], "headers stay on their rows"
    assert buffer.payload_bytes == sum(len(pack({"i": i})) for i in [*range(20), 21])


def test_a_payload_larger_than_max_bytes_leaves_the_written_rows_alone() -> None:
    buffer = ColumnarBuffer(max_rows=1000, max_bytes=10_000)
    for i in range(20):
        buffer.append("v1.a", i, pack({"i": i}))
    assert len(buffer) == 20  # written to the columns
    buffer.append("v1.a", 20, b"\xc1" * 20_000)  # not msgpack either: dropped, and counted as an error
    buffer.append("v1.a", 21, pack({"i": 21}))
    assert buffer.to_dataframe()["i"].tolist() == [*range(20), 21]
    assert (len(buffer), buffer.dropped, buffer.errors) == (21, 1, 1)


def test_the_newest_row_is_kept_when_it_alone_fits_max_bytes() -> None:
    buffer = ColumnarBuffer(max_rows=1000, max_bytes=10_000)
    buffer.append("v1.a", 0, pack({"i": 0, "blob": bytes(500)}))
    buffer.append("v1.a", 1, pack({"i": 1, "blob": bytes(9_900)}))  # fits max_bytes, not with row 0
    assert buffer.to_dataframe()["i"].tolist() == [1]
    assert (len(buffer), buffer.dropped) == (1, 1) and buffer.payload_bytes <= 10_000


async def test_nats_headers_are_a_column(broker: NatsBrokerConnection, prefix: str) -> None:
    async with MessageCapture(f"{prefix}.>", broker) as capture:
        await broker.publish_raw(f"{prefix}.a", pack({"i": 0}))
        await broker.publish_raw(f"{prefix}.a", pack({"i": 1}), headers={"trace-id": "abc", "source": "lab"})
        await capture.wait_for(2, timeout=5)
        frame = capture.to_dataframe()
        assert capture.tail(1)["headers"].tolist() == [{"trace-id": "abc", "source": "lab"}]
    assert frame.columns.tolist() == ["received_at", "subject", "i", "headers"]
    assert frame["headers"].tolist() == [None, {"trace-id": "abc", "source": "lab"}]


def test_a_columnar_buffer_alone_decodes_a_batch_of_rows_with_sequences() -> None:
    """The batch writer a recording's frame builder uses: decoded, bounded, headers on their rows."""
    buffer = ColumnarBuffer(max_rows=3, sequence=True)
    t0 = 1_700_000_000_000_000_000
    rows = [
        ("v1.a", t0, pack({"v": 1.5}), None),
        ("v1.a", t0 + 1, b'{"v": 2.5}', {"h": "1"}),
        ("v1.b", t0 + 2, b"plain text", None),
        ("v1.b", t0 + 3, b"\xc1\xc1", None),
    ]
    subjects, times, datas, headers = (list(column) for column in zip(*rows, strict=True))
    buffer.extend(
        subjects,
        np.array(times, dtype=np.int64),
        datas,
        {k: h for k, h in enumerate(headers) if h},
        np.arange(100, 104, dtype=np.int64),
    )
    frame = buffer.to_dataframe()
    assert frame.columns.tolist() == [
        "received_at",
        "subject",
        "sequence",
        "v",
        "value",
        "headers",
        "raw",
        "error",
    ]
    assert frame["sequence"].tolist() == [101, 102, 103] and buffer.dropped == 1 and len(buffer) == 3
    assert frame["v"].tolist()[:1] == [2.5] and frame["value"].tolist()[1] == "plain text"
    assert frame["headers"].tolist() == [{"h": "1"}, None, None]
    assert frame["raw"].tolist()[2] == b"\xc1\xc1" and "not msgpack" in frame["error"].tolist()[2]
    assert buffer.errors == 1 and buffer.payload_bytes == sum(len(r[2]) for r in rows[1:])
    assert frame["received_at"].tolist()[0] == pd.Timestamp(t0 + 1, tz="UTC")
    buffer.clear()
    assert len(buffer) == 0 and buffer.to_dataframe().columns.tolist() == [
        "received_at",
        "subject",
        "sequence",
    ]


async def test_a_buffer_frame_has_the_columns_of_a_capture(broker: NatsBrokerConnection, prefix: str) -> None:
    payloads = [pack({"machine": "m", "value": 1.0, "pos": {"x": 1}}), b'{"value": 2}', b"\xc1"]
    buffer = ColumnarBuffer(max_rows=100)
    async with MessageCapture(f"{prefix}.>", broker) as capture:
        for k, payload in enumerate(payloads):
            await broker.publish_raw(f"{prefix}.x", payload)
            buffer.append(f"{prefix}.x", k, payload)
        await capture.wait_for(3, timeout=5)
        captured = capture.to_dataframe()
    appended = buffer.to_dataframe()
    assert appended.columns.tolist() == captured.columns.tolist()
    assert appended.dtypes.astype(str).tolist() == captured.dtypes.astype(str).tolist()
    pd.testing.assert_frame_equal(appended.drop(columns="received_at"), captured.drop(columns="received_at"))


async def test_a_capture_decodes_with_registered_decoders_and_takes_text_as_text(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    register_decoder(
        "csv", lambda data: dict(enumerate(data.decode().split(","))), subjects=f"{prefix}.csv.>"
    )
    try:
        async with MessageCapture(f"{prefix}.>", broker) as capture:
            await broker.publish_raw(f"{prefix}.csv.a", b"1,2")
            await broker.publish_raw(f"{prefix}.text", b"7")  # what `nats pub subject 7` sends
            await broker.publish_raw(f"{prefix}.text", b"x")
            await capture.wait_for(3, timeout=5)
            frame = capture.to_dataframe()
    finally:
        unregister_decoder("csv")
    assert frame[["0", "1"]].values.tolist()[0] == ["1", "2"], "the registered decoder made the columns"
    assert frame["value"].tolist()[1:] == [7, "x"] and capture.errors == 0


def test_a_firehose_through_a_capture_sets_off_almost_no_garbage_collection() -> None:
    # The rows of a batch are decoded at once, a dict each, before they are written to the columns; with
    # more of them alive than the collector's young-generation threshold (700), every few hundred messages
    # set off a collection that promoted them, and every ~200,000 a full one (100+ ms in a kernel).
    class Msg:
        def __init__(self, subject: str, data: bytes) -> None:
            self.subject, self.data, self.headers = subject, data, None

    capture = MessageCapture("v1.>", max_rows=10_000)
    ((_pattern, on_msg),) = capture._subscription_plan()
    messages = [Msg(f"v1.thing.s{i % 100}", pack({"machine": "m", "value": float(i)})) for i in range(20_000)]
    gc.collect()
    before = [generation["collections"] for generation in gc.get_stats()]
    for msg in messages:
        on_msg(msg)
    after = [generation["collections"] for generation in gc.get_stats()]
    assert capture.received == 20_000 and len(capture) == 10_000
    young, _middle, full = (b - a for a, b in zip(before, after, strict=True))
    assert young <= 5 and full == 0, f"{young} young and {full} full collections for 20,000 messages"
