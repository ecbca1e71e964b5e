"""Observers on one connection share NATS subscriptions (fastiot.capture.shared), against the real server.

What the tests hold on to: every observer gets every message of its pattern exactly once, whatever
starts or stops meanwhile (hand-overs under a steady stream), and the client holds the fewest
subscriptions that cover the patterns watched.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from fastiot.capture import MessageCapture
from fastiot.capture.shared import pattern_covers, shared_subscriptions
from fastiot.core import _nats_compat
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.serialization import pack
from fastiot.nats_server import NatsServer
from fastiot.series import LiveSeries
from fastiot.subjects import SubjectIndex
from tests.waits import wait_until


def subscriptions(connection: NatsBrokerConnection) -> int:
    return _nats_compat.client_subscription_count(connection.client)


def seqs(capture: MessageCapture) -> list[int]:
    return [int(s) for s in capture.to_dataframe()["seq"]]


@contextlib.asynccontextmanager
async def steady_stream(nats_server: NatsServer, subjects: list[str]) -> AsyncIterator[list[int]]:
    """Publish {"seq": i} round-robin on ``subjects`` from a connection of its own until the block ends;
    yields a list that holds the number of messages sent on each subject once the stream has stopped."""
    publisher = await NatsBrokerConnection.connect(servers=nats_server.url)
    stop = asyncio.Event()
    sent = [0] * len(subjects)

    async def run() -> None:
        i = 0
        while not stop.is_set():
            for k, subject in enumerate(subjects):
                await publisher.publish_raw(subject, pack({"seq": i}))
                sent[k] += 1
            i += 1
            if i % 20 == 0:
                await asyncio.sleep(0.001)  # a steady stream, not one burst

    task = asyncio.create_task(run())
    counts: list[int] = []
    try:
        await wait_until(lambda: sent[0] >= 100, what="the stream to flow")
        yield counts
    finally:
        stop.set()
        await task
        await publisher.flush()
        await publisher.close()
        counts.extend(sent)


def test_which_patterns_cover_which() -> None:
    assert pattern_covers(">", "a") and pattern_covers(">", "a.*.>") and pattern_covers("a.>", "a.b.*")
    assert pattern_covers("a.*", "a.b") and pattern_covers("a.*.c", "a.*.c") and pattern_covers("a.b", "a.b")
    not_covered = [("a.>", "a"), ("a.*", "a.>"), ("a.b", "a.*"), ("a.*.c", "a.b.>"), ("a.b.>", "a.*.c")]
    assert not any(pattern_covers(broad, narrow) for broad, narrow in not_covered)


async def test_two_observers_on_one_pattern_share_one_subscription(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    before = subscriptions(broker)
    one = await MessageCapture(f"{prefix}.>", broker).start()
    two = await MessageCapture(f"{prefix}.>", broker).start()
    assert subscriptions(broker) == before + 1
    for i in range(50):
        await broker.publish_raw(f"{prefix}.x", pack({"seq": i}))
    await one.wait_for(50)
    await two.wait_for(50)
    # Stopping one leaves the other receiving, on the same subscription.
    await one.stop()
    assert subscriptions(broker) == before + 1
    for i in range(50, 80):
        await broker.publish_raw(f"{prefix}.x", pack({"seq": i}))
    await two.wait_for(80)
    await two.sync()
    assert seqs(one) == list(range(50)) and seqs(two) == list(range(80))
    await two.stop()
    assert subscriptions(broker) == before


async def test_a_narrower_observer_rides_on_a_broader_subscription(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    before = subscriptions(broker)
    index = await SubjectIndex(f"{prefix}.>", broker).start()
    capture = await MessageCapture(f"{prefix}.a.>", broker).start()
    series = await LiveSeries([f"{prefix}.a.x", f"{prefix}.b.y"], "seq", broker).start()
    assert subscriptions(broker) == before + 1
    assert shared_subscriptions(broker).patterns == [f"{prefix}.>"]
    for i in range(30):
        for subject in ("a.x", "a.y.z", "b.y", "c"):
            await broker.publish_raw(f"{prefix}.{subject}", pack({"seq": i}))
    await index.wait_for(120)
    await capture.sync()
    await series.sync()
    assert sorted(capture.subjects) == [f"{prefix}.a.x", f"{prefix}.a.y.z"] and capture.received == 60
    assert {key.subject: len(t) for key, (t, _v) in series.data().items()} == {
        f"{prefix}.a.x": 30,
        f"{prefix}.b.y": 30,
    }
    for model in (index, capture, series):
        await model.stop()
    assert subscriptions(broker) == before


async def test_a_broader_pattern_takes_over_narrower_subscriptions_without_a_gap(
    nats_server: NatsServer, broker: NatsBrokerConnection, prefix: str
) -> None:
    before = subscriptions(broker)
    capture = await MessageCapture(f"{prefix}.a.>", broker).start()
    async with steady_stream(nats_server, [f"{prefix}.a.x", f"{prefix}.b.x"]) as sent:
        await capture.wait_for(50)
        index = await SubjectIndex(f"{prefix}.>", broker).start()  # mid-stream
        assert shared_subscriptions(broker).patterns == [f"{prefix}.>"]
        assert subscriptions(broker) == before + 1
        await index.wait_for(100)
    await capture.sync()
    # Every message of the stream, each once (the hand-over may interleave a few, never lose or repeat).
    assert sorted(seqs(capture)) == list(range(sent[0]))
    await index.stop()
    await capture.stop()


async def test_when_the_broad_observer_stops_its_riders_get_their_own_subscription_without_a_gap(
    nats_server: NatsServer, broker: NatsBrokerConnection, prefix: str
) -> None:
    before = subscriptions(broker)
    index = await SubjectIndex(f"{prefix}.>", broker).start()
    capture = await MessageCapture(f"{prefix}.a.>", broker).start()
    async with steady_stream(nats_server, [f"{prefix}.a.x", f"{prefix}.b.x"]) as sent:
        await capture.wait_for(50)
        await index.stop()  # mid-stream
        assert shared_subscriptions(broker).patterns == [f"{prefix}.a.>"]
        assert subscriptions(broker) == before + 1
        received = capture.received
        await capture.wait_for(received + 50)
    await capture.sync()
    assert sorted(seqs(capture)) == list(range(sent[0]))
    await capture.stop()
    assert subscriptions(broker) == before


async def test_messages_dropped_by_a_slow_shared_subscription_count_for_the_observers_they_match(
    nats_server: NatsServer, broker: NatsBrokerConnection, prefix: str
) -> None:
    limits = {"pending_msgs_limit": 20, "pending_bytes_limit": 1 << 20}
    index = await SubjectIndex(f"{prefix}.>", broker, **limits).start()
    capture = await MessageCapture(f"{prefix}.a.>", broker, **limits).start()
    publisher = await NatsBrokerConnection.connect(servers=nats_server.url)
    for i in range(2000):  # far more than 20 arrive in one read: the client drops some
        await publisher.publish_raw(f"{prefix}.{'ab'[i % 2]}.x", pack({"seq": i, "pad": "x" * 200}))
    await publisher.flush()
    await publisher.close()
    await index.sync()
    await capture.sync()
    assert index.lost > 0, "the test needs drops to mean anything"
    assert index.received + index.lost == 2000
    assert capture.received + capture.lost == 1000  # only the drops of its own subjects
    await capture.stop()
    await index.stop()


async def test_set_pattern_within_one_shared_subscription_hands_over_exactly(
    nats_server: NatsServer, broker: NatsBrokerConnection, prefix: str
) -> None:
    capture = await MessageCapture(f"{prefix}.>", broker).start()  # keeps the broad subscription
    index = await SubjectIndex(f"{prefix}.a.>", broker).start()  # rides on it
    async with steady_stream(nats_server, [f"{prefix}.a.x", f"{prefix}.b.x"]) as sent:
        await index.wait_for(50)
        await index.set_pattern(f"{prefix}.>")
        assert shared_subscriptions(broker).patterns == [f"{prefix}.>"]
        counted = index.received
        await index.wait_for(counted + 50)
    await index.sync()
    counts = index.counters()
    assert dict(zip(counts.subjects, counts.count.tolist(), strict=True))[f"{prefix}.a.x"] == sent[0]
    await index.stop()
    await capture.stop()


@pytest.mark.parametrize("order", ["narrow first", "broad first"])
async def test_observers_started_together_each_get_every_message(
    broker: NatsBrokerConnection, prefix: str, order: str
) -> None:
    patterns = [f"{prefix}.a.>", f"{prefix}.>"]
    if order == "broad first":
        patterns.reverse()
    captures = [MessageCapture(p, broker) for p in patterns]
    await asyncio.gather(*(c.start() for c in captures))  # interleaved starts, as widgets do
    assert shared_subscriptions(broker).patterns == [f"{prefix}.>"]
    for i in range(40):
        await broker.publish_raw(f"{prefix}.{'ab'[i % 2]}.x", pack({"seq": i}))
    by_pattern = dict(zip(patterns, captures, strict=True))
    await by_pattern[f"{prefix}.>"].wait_for(40)
    await by_pattern[f"{prefix}.a.>"].sync()
    assert seqs(by_pattern[f"{prefix}.>"]) == list(range(40))
    assert seqs(by_pattern[f"{prefix}.a.>"]) == list(range(0, 40, 2))
    for capture in captures:
        await capture.stop()


class _Msg:
    def __init__(self, subject: str, data: bytes) -> None:
        self.subject, self.data, self.headers, self.reply = subject, data, None, ""


def test_a_hand_over_splits_the_queued_messages_at_the_cut() -> None:
    # Two subscriptions deliver a feed's messages during a hand-over; at the cut the old one has `queued`
    # messages from before it (delivered, then it leaves), the new one too (skipped, then it delivers).
    from fastiot.capture.shared import Feed, SharedSubscriptions, _Link, _Shared

    got: list[bytes] = []
    limits = (100, 1 << 20)
    old_shared, new_shared = _Shared("p.a.>", limits), _Shared("p.>", limits)
    hub = SharedSubscriptions(None)  # type: ignore[arg-type]  # only its feeds' links are used here
    feed = Feed(hub, "p.a.>", lambda msg: got.append(msg.data), limits)
    old = _Link(feed, old_shared)
    old.start_after(1)  # it was attached to a busy subscription: one message from before it is skipped
    old_shared.add(old)
    new = _Link(feed, new_shared)
    new_shared.add(new)

    def deliver(shared: _Shared, subject: str, data: bytes) -> None:
        with pytest.raises(StopIteration):  # the fan-out never waits: run it to its end in one step
            shared.fan_out(_Msg(subject, data)).send(None)  # type: ignore[arg-type]

    deliver(new_shared, "p.a.x", b"early twin")  # before the cut: the old subscription's
    done: list[_Link] = []
    old.end_after(3, lambda link: (old_shared.remove(link), done.append(link)))  # 3 queued before the cut
    new.start_after(2)  # its 2 queued before the cut are twins of the old one's
    for data in (b"from before the feed", b"1", b"2"):
        deliver(old_shared, "p.a.x", data)
    assert done == [old] and old_shared.links == [] and feed.subscriptions == []
    for subject, data in (("p.a.x", b"twin of 1"), ("p.b.x", b"not its pattern"), ("p.a.x", b"3")):
        deliver(new_shared, subject, data)
    assert got == [b"1", b"2", b"3"]
    deliver(new_shared, "p.b.y", b"4")
    deliver(new_shared, "p.a.y", b"5")
    assert got == [b"1", b"2", b"3", b"5"]
    # Drops count for the feeds whose pattern they match, after their cut.
    new_shared.on_dropped("p.b.x")
    new_shared.on_dropped("p.a.x")
    old_shared.on_dropped("p.a.x")
    assert feed.lost == 1


async def test_malformed_messages_are_reported_and_the_views_go_on(
    nats_server: NatsServer, broker: NatsBrokerConnection, prefix: str
) -> None:
    # Observers take their messages raw from nats-py's parser (no Msg, no queue per message); what
    # nats-py's own path reports as a bad message is reported the same way, and the next one arrives.
    async with SubjectIndex(">", broker) as index, MessageCapture(f"{prefix}.>", broker) as capture:
        reader, writer = await asyncio.open_connection(nats_server.host, nats_server.port)
        headers = b"NATS/1.0 503 \xff\xfe\r\n\r\n"
        bad_header = b"HPUB %s.bad %d %d\r\n%s%s\r\n" % (
            prefix.encode(),
            len(headers),
            len(headers) + 2,
            headers,
            b"hi",
        )
        try:
            await asyncio.wait_for(reader.readline(), 10)  # INFO
            writer.write(
                b'CONNECT {"verbose":false,"headers":true}\r\n'
                b"PUB \xff\xfe 5\r\nhello\r\n"  # a subject that is not UTF-8
                + bad_header  # a status line that is not UTF-8
                + b"HPUB %s.good 12 14\r\nNATS/1.0\r\n\r\nok\r\n" % prefix.encode()
                + b"PING\r\n"
            )
            await writer.drain()
            assert await asyncio.wait_for(reader.readline(), 10) == b"PONG\r\n"
        finally:
            writer.close()
        await capture.wait_for(1)
        await index.sync()
    assert broker.bad_messages == 2 and capture.received == 1
    assert index.subjects == [f"{prefix}.good"] and index.counter(f"{prefix}.good").count == 1
    assert capture.to_dataframe()["value"].tolist() == ["ok"]
