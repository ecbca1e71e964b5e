"""A cluster of three nats-servers on loopback (routes): failover when the server a connection uses dies."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.nats_server import NatsServer
from tests.core.fault_helpers import (
    Counter,
    Reading,
    StateLog,
    publish_until,
    record_figure,
    start_cluster,
    subscribe_then_kill,
    wait_for_routes,
)

RECONNECT_WAIT = 0.1


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[NatsServer]]:
    """Three clustered servers; FASTIOT_NATS_SERVERS lists them all."""
    servers = start_cluster()
    monkeypatch.setenv("FASTIOT_NATS_SERVERS", ",".join(s.url for s in servers))
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


async def test_cluster_forms_and_routes_messages_between_servers(cluster: list[NatsServer]) -> None:
    await wait_for_routes(cluster)
    first = await NatsBrokerConnection.connect(servers=cluster[0].url)
    last = await NatsBrokerConnection.connect(servers=cluster[2].url)
    got = Counter()

    async def on_reading(reading: Reading) -> None:
        got.add()

    await last.subscribe(Reading.get_subject(), on_reading)
    await last.flush()

    # Interest travels over the route asynchronously; publish until the first message arrives.
    await publish_until(lambda: first.publish(Reading.get_subject(), Reading(seq=0)), lambda: got.count > 0)
    await first.close()
    await last.close()


async def test_failover_to_another_server_keeps_subscriptions(
    cluster: list[NatsServer], request: pytest.FixtureRequest
) -> None:
    """Kill the server the subscriber is attached to: it fails over to another one of
    FASTIOT_NATS_SERVERS, its subscription is replayed there, and the stream goes on."""
    await wait_for_routes(cluster)
    subscriber = await NatsBrokerConnection.connect(
        reconnect_time_wait=RECONNECT_WAIT
    )  # from the environment
    attached = subscriber.connected_url
    victim = next(s for s in cluster if s.url == attached)
    survivors = [s for s in cluster if s is not victim]
    # The publisher sits on a server that survives, so the stream itself never stops.
    publisher = await NatsBrokerConnection.connect(
        servers=survivors[0].url, reconnect_time_wait=RECONNECT_WAIT
    )
    log = StateLog(subscriber)
    seen: list[int] = []
    got = Counter()

    async def on_reading(reading: Reading) -> None:
        if reading.seq >= 0:
            seen.append(reading.seq)
        got.add()

    subscription = await subscriber.subscribe(Reading.get_subject(), on_reading)
    await publish_until(
        lambda: publisher.publish(Reading.get_subject(), Reading(seq=-1)), lambda: got.count > 0
    )
    sent: list[int] = []
    stop = asyncio.Event()

    async def stream() -> None:
        seq = 0
        while not stop.is_set():
            await publisher.publish(Reading.get_subject(), Reading(seq=seq))
            sent.append(seq)
            seq += 1
            await asyncio.sleep(0.001)

    streaming = asyncio.create_task(stream())
    try:
        await got.wait_for(200)
        killed_at = len(sent)
        await asyncio.to_thread(victim.kill)
        await log.wait_for("reconnecting")
        await log.wait_for("connected")
        failed_over_at = len(sent)
        assert subscriber.connected_url in {s.url for s in survivors}
        await got.wait_for(got.count + 300)  # the subscription goes on on the new server
    finally:
        stop.set()
        await streaming
    await publisher.flush()

    # Allow the replayed interest a moment to cross the route; from then on nothing is lost.
    await got.wait_until(lambda: set(range(failed_over_at + 100, len(sent))) <= set(seen))
    assert log.states == ["reconnecting", "connected"]
    assert subscriber.reconnects == 1
    assert subscription.errors == 0  # type: ignore[attr-defined]
    assert len(seen) == len(set(seen))
    lost = sorted(set(sent) - set(seen))
    assert all(killed_at - 50 <= seq < failed_over_at + 100 for seq in lost), lost
    await subscriber.close()
    await publisher.close()
    record_figure(request, "messages sent", len(sent))
    record_figure(request, "messages received", len(seen))
    record_figure(request, "messages lost during the failover", len(lost))
    record_figure(request, "failover seconds", round(subscriber.last_outage_seconds or 0.0, 3))


async def test_failover_of_both_ends_when_they_share_the_dying_server(cluster: list[NatsServer]) -> None:
    """Publisher and subscriber on one connection, on the server that dies: both directions resume."""
    await wait_for_routes(cluster)
    connection = await NatsBrokerConnection.connect(
        servers=[s.url for s in cluster], reconnect_time_wait=RECONNECT_WAIT
    )
    victim = next(s for s in cluster if s.url == connection.connected_url)
    log, got, counter = await subscribe_then_kill(connection, victim)
    for seq in range(100):  # buffered while failing over, replayed after the SUB on the new server
        await connection.publish(Reading.get_subject(), Reading(seq=seq))
    await log.wait_for("connected")
    await counter.wait_for(100)
    assert got == list(range(100))
    assert connection.connected_url != victim.url
    await connection.close()
