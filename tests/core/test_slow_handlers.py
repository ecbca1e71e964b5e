"""Slow handlers: a @subscribe handler slower than the message rate.

It must block neither the other handlers of its service nor the event loop (the kernel), its backlog is
bounded by the subscription's pending limits, and what is dropped beyond them is counted exactly and
reported as slow-consumer events, logged once per burst.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator

import psutil
import pytest

from fastiot.core import FastIoTPublish, FastIoTService, connection_events, subscribe
from fastiot.core import broker_connection as broker_module
from fastiot.core.broker_connection import NatsBrokerConnection, NatsBrokerSubscription
from fastiot.nats_server import NatsServer
from tests.core.fault_helpers import WAIT, Counter, percentile, record_figure
from tests.waits import wait_until as eventually


class SlowWork(FastIoTPublish):
    seq: int


class FastWork(FastIoTPublish):
    seq: int


SLOW_DELAY = 0.01  # the slow handler takes 10 ms: at most 100 messages/s
BACKLOG_LIMIT = 50


class Plant(FastIoTService):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.slow_handled = Counter()
        self.fast_seen: list[int] = []
        self.fast_handled = Counter()

    @subscribe(subject=SlowWork.get_subject())
    async def slow(self, work: SlowWork) -> None:
        await asyncio.sleep(SLOW_DELAY)
        self.slow_handled.add()

    @subscribe(subject=FastWork.get_subject())
    async def fast(self, work: FastWork) -> None:
        self.fast_seen.append(work.seq)
        self.fast_handled.add()


@pytest.fixture
def server() -> Iterator[NatsServer]:
    with NatsServer() as own:
        yield own


class PublisherThread(threading.Thread):
    """Publishes on its own connection and event loop, as another process would."""

    def __init__(self, url: str, count: int, per_batch: int = 4) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.count = count
        self.per_batch = per_batch
        self.error: BaseException | None = None
        self.seconds = 0.0

    def run(self) -> None:
        try:
            asyncio.run(self._publish())
        except BaseException as e:  # reported by the test
            self.error = e

    async def _publish(self) -> None:
        connection = await NatsBrokerConnection.connect(servers=self.url)
        start = time.monotonic()
        for seq in range(self.count):
            await connection.publish(SlowWork.get_subject(), SlowWork(seq=seq))
            await connection.publish(FastWork.get_subject(), FastWork(seq=seq))
            if seq % self.per_batch == 0:
                await asyncio.sleep(0.001)  # about 4000 messages per second in all
        await connection.flush()
        self.seconds = time.monotonic() - start
        await connection.close()


async def test_a_slow_handler_blocks_neither_other_handlers_nor_the_loop(
    server: NatsServer, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    connection = await NatsBrokerConnection.connect(servers=server.url)
    connection.pending_msgs_limit = BACKLOG_LIMIT  # for the subscriptions made from now on
    plant = Plant(broker_connection=connection)
    count = 4000
    lateness: list[float] = []
    backlog: list[int] = []
    process = psutil.Process()
    rss_before = process.memory_info().rss
    async with plant:
        slow = plant.subscriptions["slow"]
        assert isinstance(slow, NatsBrokerSubscription)
        assert slow.pending_msgs_limit == BACKLOG_LIMIT
        await connection.flush()
        publisher = PublisherThread(server.url, count)
        done = asyncio.Event()

        async def ticker() -> None:
            # What a notebook kernel needs: the loop gets back to a trivial task at once.
            while not done.is_set():
                start = time.monotonic()
                await asyncio.sleep(0.01)
                lateness.append(time.monotonic() - start - 0.01)
                backlog.append(slow.pending_msgs)

        ticking = asyncio.create_task(ticker())
        publisher.start()
        await asyncio.to_thread(publisher.join, WAIT * 3)
        assert not publisher.is_alive() and publisher.error is None, publisher.error
        # The fast handler got every message, while the slow one was still far behind. (Bounded like the
        # publisher: on a loaded machine 4000 messages can take longer than WAIT; that is no loss.)
        await plant.fast_handled.wait_for(count, WAIT * 3)
        slow_behind = count - plant.slow_handled.count
        done.set()
        await ticking
        rss_after = process.memory_info().rss
        # Drops are exact: every message is handled, waiting, or counted as dropped.
        await plant.slow_handled.wait_until(
            lambda: slow.pending_msgs == 0 and slow.received + slow.slow_consumer_events == count
        )
    assert plant.fast_seen == list(range(count))
    assert max(backlog) <= BACKLOG_LIMIT
    assert slow.slow_consumer_events > 0 and connection.slow_consumer_events == slow.slow_consumer_events
    assert plant.subscriptions["fast"].slow_consumer_events == 0  # type: ignore[attr-defined]
    assert slow_behind > BACKLOG_LIMIT
    warnings = [r for r in caplog.records if "slow consumer on subject v1.slow_work" in r.getMessage()]
    assert len(warnings) == 1, "one line per burst"
    assert "pending_msgs_limit" in warnings[0].getMessage() and warnings[0].levelno == logging.WARNING
    # The loop's lateness is a figure here, not a check: speed targets are met in bench/firehose.py,
    # never as timed assertions in tests. That the ticker got turns during the flood is checked.
    assert len(backlog) == len(lateness) > 0, "the ticker never got a turn on the loop"
    p99 = percentile(lateness, 99)
    await connection.close()
    record_figure(request, "messages published (slow + fast)", 2 * count)
    record_figure(request, "publish rate msgs/s", round(2 * count / publisher.seconds))
    record_figure(request, "fast handler received", f"{len(plant.fast_seen)} of {count}")
    record_figure(request, "slow handler handled", slow.received)
    record_figure(request, "slow handler dropped (slow-consumer events)", slow.slow_consumer_events)
    record_figure(request, "max backlog / limit", f"{max(backlog)} / {BACKLOG_LIMIT}")
    record_figure(
        request,
        "loop lateness p50 / p99 / max ms",
        f"{percentile(lateness, 50) * 1000:.1f} / {p99 * 1000:.1f} / {max(lateness) * 1000:.1f}",
    )
    record_figure(request, "RSS growth during the run (MiB)", round((rss_after - rss_before) / 2**20, 1))


@pytest.mark.parametrize(
    ("limits", "payload"),
    [({"pending_msgs_limit": 10}, 10), ({"pending_bytes_limit": 10_000}, 1000)],
    ids=["by-messages", "by-bytes"],
)
async def test_backlog_is_bounded_and_dropped_counts_are_exact(
    server: NatsServer, limits: dict[str, int], payload: int
) -> None:
    """A handler stuck on a gate: the client keeps at most the limit, drops the rest, and says how many."""
    connection = await NatsBrokerConnection.connect(servers=server.url)
    gate = asyncio.Event()
    handled = Counter()

    async def stuck(msg: dict[str, object]) -> None:
        await gate.wait()
        handled.add()

    subject = broker_module.Subject(name="v1.stuck", msg_cls=dict)
    subscription = await connection.subscribe(subject, stuck, **limits)
    assert isinstance(subscription, NatsBrokerSubscription)
    await connection.flush()
    publisher = await NatsBrokerConnection.connect(servers=server.url)
    sent = 500
    for seq in range(sent):
        await publisher.publish(subject, {"seq": seq, "pad": "x" * payload})
    await publisher.flush()
    # Wait until every message reached the client: handled, waiting, or dropped.
    await eventually(
        lambda: subscription.received + subscription.pending_msgs + subscription.slow_consumer_events == sent,
        what="every message handled, waiting or dropped",
    )
    if "pending_msgs_limit" in limits:
        assert subscription.pending_msgs <= limits["pending_msgs_limit"]
    else:
        assert subscription.pending_bytes <= limits["pending_bytes_limit"]
    waiting, in_handler = subscription.pending_msgs, subscription.received
    dropped = subscription.slow_consumer_events
    assert dropped > 0 and dropped == connection.slow_consumer_events
    gate.set()
    await handled.wait_for(sent - dropped)
    assert handled.count == sent - dropped == subscription.received
    assert in_handler <= 1
    assert handled.count == waiting + in_handler  # only the backlog and the one in the handler survived
    await publisher.close()
    await connection.close()


async def test_each_burst_of_drops_is_logged_once(
    server: NatsServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(connection_events, "DEFAULT_SLOW_CONSUMER_BURST_GAP", 0.2)  # where it is read
    connection = await NatsBrokerConnection.connect(servers=server.url)
    gate = asyncio.Event()

    async def stuck(msg: dict[str, object]) -> None:
        await gate.wait()

    subject = broker_module.Subject(name="v1.bursty", msg_cls=dict)
    subscription = await connection.subscribe(subject, stuck, pending_msgs_limit=5)
    assert isinstance(subscription, NatsBrokerSubscription)
    await connection.flush()
    for burst in range(2):
        target = subscription.slow_consumer_events + 190
        for seq in range(200):
            await connection.publish(subject, {"burst": burst, "seq": seq})
        await eventually(lambda t=target: subscription.slow_consumer_events >= t, what="the burst's drops")
        if burst == 0:
            await asyncio.sleep(0.3)  # a quiet gap longer than the burst gap
    lines = [r.getMessage() for r in caplog.records if "slow consumer on subject v1.bursty" in r.getMessage()]
    assert len(lines) == 2, lines
    assert "(1 on this subscription so far)" in lines[0]
    gate.set()
    await connection.close()
