"""SubjectIndex against the session's real nats-server: counters, lazy decoding, the tree, listeners."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from fastiot import workbench
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.serialization import pack
from fastiot.exceptions import MessageNotKeptError
from fastiot.msg.thing import Thing
from fastiot.nats_server import NatsServer
from fastiot.payloads import MISSING
from fastiot.subjects import (
    SORT_KEYS,
    NotRunningError,
    SubjectIndex,
    SubjectStats,
    SubjectTreeNode,
    WaitTimeoutError,
)

UTC_NS = pd.DatetimeTZDtype("ns", "UTC")


async def test_counts_bytes_times_and_rate_per_subject(broker: NatsBrokerConnection, prefix: str) -> None:
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    payload_a, payload_b = pack({"v": 1.5}), pack({"v": 2, "note": "hello"})
    async with SubjectIndex(f"{prefix}.>", broker) as index:
        started = time.monotonic()
        for _ in range(5):
            await broker.publish_raw(f"{prefix}.a", payload_a)
        for _ in range(3):
            await broker.publish_raw(f"{prefix}.b", payload_b)
        assert await index.wait_for(8, timeout=5) == 8
        frame = index.to_dataframe()
        elapsed = time.monotonic() - started
        stats = index[f"{prefix}.a"]
    assert frame.columns.tolist() == ["subject", "count", "rate", "bytes", "first_seen", "last_seen"]
    assert frame["subject"].tolist() == [f"{prefix}.a", f"{prefix}.b"]
    assert frame["count"].tolist() == [5, 3] and frame["count"].dtype == np.int64
    assert frame["bytes"].tolist() == [5 * len(payload_a), 3 * len(payload_b)]
    assert frame["first_seen"].dtype == UTC_NS and frame["last_seen"].dtype == UTC_NS
    assert (frame["first_seen"] <= frame["last_seen"]).all()
    assert (frame["first_seen"] >= pd.Timestamp(before)).all()
    # The rate is taken over the time since the subject was first seen, at least one second.
    for rate, count in zip(frame["rate"], (5, 3), strict=True):
        assert count / max(1.0, elapsed) - 0.01 <= rate <= count + 0.01
    assert isinstance(stats, SubjectStats)
    assert (stats.count, stats.bytes) == (5, 5 * len(payload_a))
    assert stats.first_seen.tzinfo is not None and stats.first_seen <= stats.last_seen
    assert index.subjects == [f"{prefix}.a", f"{prefix}.b"] and len(index) == 2
    assert f"{prefix}.a" in index and f"{prefix}.zzz" not in index
    with pytest.raises(KeyError, match="no messages on"):
        index[f"{prefix}.zzz"]


async def test_counters_read_every_subject_without_decoding_in_first_seen_order(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    junk = b"\xff not a payload"
    async with SubjectIndex(f"{prefix}.>", broker) as index:
        for suffix, count in (("b", 2), ("a", 3), ("b", 1)):
            for _ in range(count):
                await broker.publish_raw(f"{prefix}.{suffix}", junk)
        await index.wait_for(6, timeout=5)
        counters = index.counters()
        one = index.counter(f"{prefix}.a")
        assert index.stats(f"{prefix}.a").last_error is not None  # it would not decode; nobody asked
    assert counters.subjects == [f"{prefix}.b", f"{prefix}.a"] and len(counters) == 2
    assert counters.count.tolist() == [3, 3] and counters.count.dtype == np.int64
    assert counters.bytes.tolist() == [3 * len(junk), 3 * len(junk)]
    assert (one.count, one.bytes, one.last_seen_ns) == (3, 3 * len(junk), counters.last_seen_ns[1])
    assert counters.last_seen_ns[0] > 0 and counters.last_seen_ns.dtype == np.int64
    with pytest.raises(KeyError, match="no messages on"):
        index.counter(f"{prefix}.zzz")


async def test_the_tree_groups_subjects_by_tokens_with_totals(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    sends = {"plant.press_1.temp": 4, "plant.press_1.pressure": 2, "plant.oven_1.temp": 3, "other": 1}
    async with SubjectIndex(f"{prefix}.>", broker) as index:
        started = time.monotonic()
        for suffix, count in sends.items():
            for _ in range(count):
                await broker.publish_raw(f"{prefix}.{suffix}", pack({"v": 1}))
        await index.wait_for(10, timeout=5)
        tree = index.tree()
        elapsed = time.monotonic() - started
    assert isinstance(tree, SubjectTreeNode)
    assert (tree.path, tree.count, tree.subjects) == ("", 10, 4)
    base = tree.find(prefix)
    assert base is not None and base.count == 10
    plant = tree.find(f"{prefix}.plant")
    assert plant is not None
    assert (plant.count, plant.subjects, plant.is_subject) == (9, 3, False)
    assert list(plant.children) == ["oven_1", "press_1"], "children are sorted by token"
    press = plant.children["press_1"]
    assert (press.path, press.count, press.subjects) == (f"{prefix}.plant.press_1", 6, 2)
    temp = press.children["temp"]
    assert temp.is_subject and temp.count == 4 and not temp.children
    assert temp.bytes == 4 * len(pack({"v": 1}))
    assert tree.find(f"{prefix}.nothing") is None
    depths = {node.path: depth for depth, node in tree.walk()}
    assert depths[f"{prefix}.plant.press_1.temp"] == len(prefix.split(".")) + 3
    as_dict = tree.to_dict()
    assert as_dict["count"] == 10 and as_dict["children"][0]["token"] == prefix.split(".")[0]
    assert 9 / max(1.0, elapsed) - 0.01 <= plant.rate <= 9.01


async def test_last_payload_and_numeric_history_are_decoded_on_request(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    subject = f"{prefix}.press_1.temperature"
    async with SubjectIndex(f"{prefix}.>", broker, history=50) as index:
        for i in range(60):
            payload = {"value": float(i), "count": i, "ok": True, "pos": {"x": -i}, "unit": "degC"}
            await broker.publish_raw(subject, pack(payload))
        await index.wait_for(60, subject=subject, timeout=5)
        history = index.history(subject)
        recent = index.recent(subject, 3)
        assert [p for _, p in recent] == [
            pack({"value": float(i), "count": i, "ok": True, "pos": {"x": -i}, "unit": "degC"})
            for i in (59, 58, 57)
        ]
        assert recent[0][0] >= recent[1][0] >= recent[2][0] and recent[0][0].tzinfo is not None
        assert len(index.recent(subject, 1000)) == 50 and index.recent(subject, 0) == []
        assert index.last_payload(subject) == {
            "value": 59.0,
            "count": 59,
            "ok": True,
            "pos": {"x": -59},
            "unit": "degC",
        }
        await broker.publish_raw(subject, pack({"value": 60.0, "count": 60}))
        await index.wait_for(61, subject=subject, timeout=5)
        stats = index.stats(subject)
        await broker.publish_raw(subject, b"\xc1 not a payload")
        await index.wait_for(62, subject=subject, timeout=5)
        broken = index.stats(subject)
    assert set(history) == {"value", "count", "pos.x"}, "bools and text are not sparkline values"
    assert history["value"] == [float(i) for i in range(10, 60)]
    assert history["pos.x"] == [-i for i in range(10, 60)]
    assert stats.history["value"][-3:] == [58.0, 59.0, 60.0] and len(stats.history["value"]) == 50
    assert stats.last_payload == {"value": 60.0, "count": 60} and stats.last_error is None
    assert (
        broken.last_payload is None and broken.last_error is not None and "not msgpack" in broken.last_error
    )
    assert broken.history == stats.history
    assert broken.count == 62


async def test_a_subject_pattern_decodes_with_its_model(broker: NatsBrokerConnection) -> None:
    thing = Thing(machine="press_9", name="temperature", value=71.5, unit="degC")
    async with SubjectIndex(Thing.get_subject("press_9.>"), broker) as index:
        assert index.pattern == "v1.thing.press_9.>"
        await broker.publish(Thing.get_subject("press_9.temperature"), thing)
        await index.wait_for(1, timeout=5)
        assert index.last_payload("v1.thing.press_9.temperature") == thing
        assert index.history("v1.thing.press_9.temperature") == {"value": [71.5]}


async def test_subjects_beyond_the_limit_are_counted_not_tracked(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    async with SubjectIndex(f"{prefix}.>", broker, max_subjects=2) as index:
        for token in ("a", "b", "c", "d", "c"):
            await broker.publish_raw(f"{prefix}.{token}", pack({"v": 1}))
        await broker.publish_raw(f"{prefix}.a", pack({"v": 2}))
        await index.sync(timeout=5)
        assert index.subjects == [f"{prefix}.a", f"{prefix}.b"]
        assert (index.untracked_subjects, index.untracked_messages, index.received) == (2, 3, 3)
        assert index[f"{prefix}.a"].count == 2


async def test_kept_payloads_stay_within_max_bytes_and_what_goes_early_is_counted(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    payload = pack({"v": 1, "pad": "x" * 90})  # 100 bytes
    async with SubjectIndex(f"{prefix}.>", broker, history=1000, max_bytes=5_000) as index:
        for _ in range(50):
            for k in range(10):
                await broker.publish_raw(f"{prefix}.s{k}", payload)
        await index.sync(timeout=5)
        kept = {s: len(index.messages(s, 1000)) for s in index.subjects}
        # Every message is counted; fewer are kept per subject, and the payload bytes fit.
        assert index.received == 500 and all(index.counter(s).count == 50 for s in index.subjects)
        assert index.payload_bytes == sum(kept.values()) * len(payload) <= index.max_bytes == 5_000
        assert sum(kept.values()) + index.dropped_payloads == 500
        assert min(kept.values()) >= 1 and index.diff(f"{prefix}.s0") == []

    # A single payload bigger than the whole budget is counted, not kept.
    async with SubjectIndex(f"{prefix}.>", broker, max_bytes=50) as index:
        await broker.publish_raw(f"{prefix}.big", payload)
        await index.wait_for(1, timeout=5)
        assert index.payload_bytes == 0 and index.dropped_payloads == 1
        assert index.counter(f"{prefix}.big").count == 1
        assert "max_bytes" in (index.last(f"{prefix}.big").error or "")


async def test_inbox_subjects_are_ignored_unless_asked_for(broker: NatsBrokerConnection) -> None:
    inbox = f"_INBOX.{uuid.uuid4().hex}"
    async with (
        SubjectIndex(">", broker) as everything,
        SubjectIndex("_INBOX.>", broker, include_inbox=True) as inboxes,
    ):
        await broker.publish_raw(inbox, pack({"reply": True}))
        await inboxes.wait_for(1, subject=inbox, timeout=5)
        await everything.sync(timeout=5)
        assert inbox not in everything and everything.ignored_messages >= 1
        assert inboxes[inbox].count == 1


async def test_on_change_reports_the_changed_subjects(broker: NatsBrokerConnection, prefix: str) -> None:
    changes: list[set[str]] = []
    async with SubjectIndex(f"{prefix}.>", broker) as index:
        index.on_change(changes.append)
        for token in ("a", "b", "a"):
            await broker.publish_raw(f"{prefix}.{token}", pack({"v": 1}))
        await index.wait_for(3, timeout=5)
        assert set().union(*changes) == {f"{prefix}.a", f"{prefix}.b"}
        index.clear()
        assert changes[-1] == set()
        assert (len(index), index.received) == (0, 0)
        await broker.publish_raw(f"{prefix}.c", pack({"v": 1}))
        await index.wait_for(1, timeout=5)
        assert changes[-1] == {f"{prefix}.c"}
        index.on_change(changes.append, remove=True)
        calls = len(changes)
        await broker.publish_raw(f"{prefix}.d", pack({"v": 1}))
        await index.wait_for(2, timeout=5)
        assert len(changes) == calls

    async def not_plain(subjects: set[str]) -> None:
        pass

    with pytest.raises(TypeError, match="plain function"):
        index.on_change(not_plain)


async def test_pause_holds_the_listeners_but_keeps_counting(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    index = SubjectIndex(f"{prefix}.>", broker)
    changes: list[set[str]] = []
    index.on_change(changes.append)
    with pytest.raises(NotRunningError, match="start"):
        await index.wait_for(1, timeout=1)
    async with index:
        with pytest.raises(WaitTimeoutError, match=rf"2 messages on '{prefix}\.a' \(got 0\)") as info:
            await index.wait_for(2, subject=f"{prefix}.a", timeout=0.2)
        assert isinstance(info.value, TimeoutError)
        index.pause()
        assert index.is_paused
        for token in ("a", "b", "a"):
            await broker.publish_raw(f"{prefix}.{token}", pack({"v": 1}))
        await index.wait_for(2, subject=f"{prefix}.a", timeout=5)  # waits work while paused
        await index.sync(timeout=5)
        assert (index.skipped, len(index), index.received) == (0, 2, 3), "paused, the index still counts"
        assert index[f"{prefix}.a"].count == 2
        assert changes == [], "paused, the views are not told"
        index.resume()
        await broker.publish_raw(f"{prefix}.c", pack({"v": 1}))
        await index.wait_for(4, timeout=5)
        await index.sync(timeout=5)
        assert set().union(*changes) == {f"{prefix}.a", f"{prefix}.b", f"{prefix}.c"}
        waiting = asyncio.create_task(index.wait_for(10, timeout=5))
        await asyncio.sleep(0)
    with pytest.raises(NotRunningError, match="stopped"):
        await waiting
    assert "stopped" in repr(index) and "3 subjects" in repr(index)


async def test_without_a_connection_the_workbench_one_is_used_and_owns_the_index(prefix: str) -> None:
    try:
        index = SubjectIndex(f"{prefix}.>")
        await index.start()
        assert index in workbench.registered()
        connection = await workbench.connection()
        await connection.publish_raw(f"{prefix}.a", pack({"v": 1}))
        await index.wait_for(1, timeout=5)
        await workbench.shutdown()
        assert not index.is_running and index not in workbench.registered()
        assert index[f"{prefix}.a"].count == 1
    finally:
        await workbench.shutdown()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="pattern"):
        SubjectIndex("a b")
    with pytest.raises(ValueError, match="history"):
        SubjectIndex(history=0)
    with pytest.raises(ValueError, match="max_subjects"):
        SubjectIndex(max_subjects=0)
    with pytest.raises(ValueError, match="rate_window"):
        SubjectIndex(rate_window=0)
    assert SubjectIndex().to_dataframe().empty
    assert SubjectIndex().tree().subjects == 0


async def test_payloads_decode_by_subject_with_headers_and_text(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    thing = Thing(machine="press_7", name="temperature", value=70.5, unit="degC")
    async with SubjectIndex(">", broker) as index:
        await broker.publish(Thing.get_subject("press_7.temperature"), thing)
        await broker.publish_raw(f"{prefix}.text", b"hello from nats pub", headers={"source": "cli"})
        await index.wait_for(1, subject=f"{prefix}.text", timeout=5)
        await index.wait_for(1, subject="v1.thing.press_7.temperature", timeout=5)
        typed = index.last("v1.thing.press_7.temperature")
        text = index.stats(f"{prefix}.text")
    assert typed.kind == "model" and typed.value == thing, "a model's subject decodes to the model"
    assert text.last is not None and (text.last.kind, text.last.value) == ("text", "hello from nats pub")
    assert text.last_payload == "hello from nats pub" and text.last_error is None
    assert text.last_headers == {"source": "cli"}


async def test_messages_keep_their_headers_and_diff_names_the_changed_fields(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    subject = f"{prefix}.press_1"
    async with SubjectIndex(f"{prefix}.>", broker, history=3) as index:
        await broker.publish_raw(subject, pack({"value": 1.0, "unit": "bar", "cfg": {"mode": "a"}}))
        await index.wait_for(1, timeout=5)
        with pytest.raises(MessageNotKeptError, match="1 message"):
            index.diff(subject)
        await broker.publish_raw(
            subject, pack({"value": 2.0, "unit": "bar", "cfg": {"mode": "b"}}), headers={"n": "2"}
        )
        await broker.publish_raw(subject, pack({"value": 3.0, "cfg": {"mode": "b"}, "new": True}))
        await index.wait_for(3, timeout=5)
        messages = index.messages(subject)
        assert [m.headers for m in messages] == [None, {"n": "2"}, None]
        assert [m.decoded.value["value"] for m in messages] == [3.0, 2.0, 1.0]
        assert messages[0].received_at >= messages[1].received_at
        assert index.diff(subject) == [("value", 2.0, 3.0), ("unit", "bar", MISSING), ("new", MISSING, True)]
        assert index.diff(subject, older=2, newer=1) == [("value", 1.0, 2.0), ("cfg.mode", "a", "b")]
        await broker.publish_raw(subject, pack({"value": 4.0}))
        await index.wait_for(4, timeout=5)
        assert [m.headers for m in index.messages(subject)] == [None, None, {"n": "2"}]
        assert index.stats(subject).last_headers is None


async def test_sorting_by_name_count_rate_bytes_and_last_seen(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    sends = [("b", 3, 10), ("a", 1, 100), ("c", 2, 1)]
    async with SubjectIndex(f"{prefix}.>", broker) as index:
        for token, count, size in sends:
            for _ in range(count):
                await broker.publish_raw(f"{prefix}.{token}", bytes(size))
        await index.wait_for(6, timeout=5)
        names = {key: [s.rsplit(".", 1)[1] for s in index.sorted_subjects(key)] for key in SORT_KEYS}
        newest_first = [s.rsplit(".", 1)[1] for s in index.sorted_subjects("last_seen", descending=True)]
        busiest = index.tree(sort="count", descending=True).find(prefix)
        with pytest.raises(ValueError, match="name, count, rate, bytes, last_seen"):
            index.sorted_subjects("size")
    assert names["name"] == ["a", "b", "c"]
    assert names["count"] == ["a", "c", "b"]
    assert names["bytes"] == ["c", "b", "a"]
    assert names["rate"] == ["a", "c", "b"]
    assert newest_first == ["c", "a", "b"]
    assert busiest is not None and list(busiest.children) == ["b", "c", "a"]
    assert busiest.last_seen is not None and busiest.last_seen_ns == max(
        node.last_seen_ns for node in busiest.children.values()
    )


async def test_set_pattern_changes_the_subscription_without_gaps_or_double_counts(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    changes: list[set[str]] = []
    async with SubjectIndex(f"{prefix}.a.>", broker) as index:
        index.on_change(changes.append)
        await broker.publish_raw(f"{prefix}.a.x", pack({"v": 1}))
        await broker.publish_raw(f"{prefix}.b.x", pack({"v": 1}))
        await index.wait_for(1, timeout=5)
        await index.set_pattern(f"{prefix}.>")  # wider: a.x goes on, b.x is new
        assert index.pattern == f"{prefix}.>"
        for token in ("a", "b", "a"):
            await broker.publish_raw(f"{prefix}.{token}.x", pack({"v": 2}))
        await index.sync(timeout=5)
        assert (index[f"{prefix}.a.x"].count, index[f"{prefix}.b.x"].count) == (3, 1)
        assert index.received == 4 and index.lost == 0
        changes.clear()
        await index.set_pattern(f"{prefix}.b.>")  # narrower: a.x is dropped
        await index.sync(timeout=5)
        assert index.subjects == [f"{prefix}.b.x"] and index.received == 1
        assert f"{prefix}.a.x" in set().union(*changes), "listeners hear of the subjects dropped"
        await broker.publish_raw(f"{prefix}.a.x", pack({"v": 3}))
        await broker.publish_raw(f"{prefix}.b.x", pack({"v": 3}))
        await index.wait_for(2, subject=f"{prefix}.b.x", timeout=5)
        await index.sync(timeout=5)
        assert f"{prefix}.a.x" not in index and index.lost == 0
    with pytest.raises(ValueError, match="pattern"):
        await index.set_pattern("a b")
    await index.set_pattern(f"{prefix}.c.>")  # stopped: only remembered, used by the next start
    assert index.pattern == f"{prefix}.c.>" and len(index) == 0


async def test_set_pattern_under_a_steady_stream_counts_every_message_once(
    broker: NatsBrokerConnection, nats_server: NatsServer, prefix: str
) -> None:
    publisher = await NatsBrokerConnection.connect(servers=nats_server.url)
    stop = asyncio.Event()
    sent = 0

    async def stream() -> None:
        nonlocal sent
        while not stop.is_set():
            for _ in range(20):
                await publisher.publish_raw(f"{prefix}.a.x", pack({"n": sent}))
                sent += 1
            await asyncio.sleep(0)

    async with SubjectIndex(f"{prefix}.a.>", broker) as index:
        task = asyncio.create_task(stream())
        try:
            await index.wait_for(200, timeout=5)
            for pattern in (f"{prefix}.>", f"{prefix}.*.x", f"{prefix}.a.>"):
                await index.set_pattern(pattern)
                await index.wait_for(index.received + 100, timeout=5)
        finally:
            stop.set()
            await task
        await publisher.flush()
        await index.sync(timeout=5)
        assert index.lost == 0
        assert index[f"{prefix}.a.x"].count == sent, "no message missed or counted twice across the switches"
    await publisher.close()


async def test_ten_thousand_subjects_are_all_tracked(broker: NatsBrokerConnection, prefix: str) -> None:
    async with SubjectIndex(f"{prefix}.>", broker) as index:
        for i in range(10_000):
            await broker.publish_raw(f"{prefix}.site_{i % 10}.device_{i}", b"1")
        await index.wait_for(10_000, timeout=30)
        tree = index.tree()
        by_rate = index.sorted_subjects("rate", descending=True)
    assert len(index) == 10_000 and index.untracked_messages == 0
    node = tree.find(prefix)
    assert node is not None and node.subjects == 10_000 and len(node.children) == 10
    assert len(by_rate) == 10_000
