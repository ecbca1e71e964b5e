"""A running MessageCapture across broker faults: a killed and restarted server, and a cluster failover.

Nobody restarts the capture: its subscriptions are replayed by the connection when it is back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from fastiot import workbench
from fastiot.capture import MessageCapture
from fastiot.core import FastIoTPublish
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.nats_server import NatsServer
from tests.core.fault_helpers import StateLog, publish_until, record_figure, start_cluster, wait_for_routes


class Sample(FastIoTPublish):
    seq: int


@pytest.fixture(autouse=True)
async def clean_workbench() -> AsyncIterator[None]:
    yield
    await workbench.shutdown()


@pytest.fixture
def server() -> Iterator[NatsServer]:
    with NatsServer() as own:
        yield own


async def publish(connection: NatsBrokerConnection, seqs: range) -> None:
    for seq in seqs:
        await connection.publish(Sample.get_subject(), Sample(seq=seq))
    await connection.flush()


async def test_a_capture_resumes_after_the_broker_is_killed_and_restarted(
    server: NatsServer, request: pytest.FixtureRequest
) -> None:
    connection = await NatsBrokerConnection.connect(servers=server.url, reconnect_time_wait=0.1)
    publisher = await NatsBrokerConnection.connect(servers=server.url, reconnect_time_wait=0.1)
    logs = [StateLog(connection), StateLog(publisher)]
    capture = await MessageCapture(Sample.get_subject(), connection, max_rows=1000).start()
    try:
        outages = 2
        for outage in range(outages + 1):
            await publish(publisher, range(outage * 100, outage * 100 + 100))
            await capture.wait_for(outage * 100 + 100, timeout=10)
            if outage == outages:
                break
            await asyncio.to_thread(server.kill)
            for log in logs:
                await log.wait_for("reconnecting")
            await asyncio.to_thread(server.start)
            for log in logs:
                await log.wait_for("connected")  # after the replayed SUB was confirmed by the server
        frame = capture.to_dataframe()
        assert frame["seq"].tolist() == list(range((outages + 1) * 100))
        assert capture.errors == 0 and capture.lost == 0 and capture.dropped == 0
        assert capture.is_running and connection.reconnects == outages
    finally:
        await capture.stop()
        await publisher.close()
        await connection.close()
    record_figure(request, "rows captured across restarts", len(frame))
    record_figure(request, "outages survived", outages)


async def test_a_workbench_capture_keeps_capturing_across_a_cluster_failover(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """FASTIOT_NATS_SERVERS lists three clustered servers; the server the workbench's connection is
    attached to is killed while a publisher on another server streams; the capture goes on."""
    cluster = start_cluster()
    try:
        monkeypatch.setenv("FASTIOT_NATS_SERVERS", ",".join(s.url for s in cluster))
        await wait_for_routes(cluster)
        connection = await workbench.connection()
        log = StateLog(connection)
        capture = await MessageCapture(Sample.get_subject(), max_rows=100_000).start()  # the workbench's
        victim = next(s for s in cluster if s.url == connection.connected_url)
        survivor = next(s for s in cluster if s is not victim)
        publisher = await NatsBrokerConnection.connect(servers=survivor.url)
        await publish_until(
            lambda: publisher.publish(Sample.get_subject(), Sample(seq=-1)), lambda: capture.received > 0
        )
        probes = capture.received
        sent = 0
        stop = asyncio.Event()

        async def stream() -> None:
            nonlocal sent
            while not stop.is_set():
                await publisher.publish(Sample.get_subject(), Sample(seq=sent))
                sent += 1
                await asyncio.sleep(0.001)

        streaming = asyncio.create_task(stream())
        try:
            await capture.wait_for(probes + 200, timeout=10)
            await asyncio.to_thread(victim.kill)
            await log.wait_for("reconnecting")
            await log.wait_for("connected")
            failed_over_at = sent
            await capture.wait_for(capture.received + 300, timeout=10)
        finally:
            stop.set()
            await streaming
        await publisher.flush()
        # Everything from shortly after the failover on arrives (the replayed interest crosses a route).
        last = sent - 1
        seen: set[int] = set()

        async def caught_up() -> None:
            while last not in seen:
                await capture.sync(timeout=5)
                seen.update(seq for seq in capture.to_dataframe()["seq"].tolist() if seq >= 0)

        await asyncio.wait_for(caught_up(), 10)
        assert connection.connected_url != victim.url
        assert set(range(failed_over_at + 100, sent)) <= seen
        lost = sent - len(seen)
        assert capture.errors == 0 and capture.lost == 0
        assert lost < 200, f"{lost} messages lost in the failover"
        await capture.stop()
        await publisher.close()
    finally:
        await workbench.shutdown()
        for server in cluster:
            server.stop()
    record_figure(request, "messages sent during the failover test", sent)
    record_figure(request, "rows captured", len(seen))
    record_figure(request, "lost in the failover", lost)


async def test_a_user_who_may_not_watch_retained_mqtt_publishes_still_captures(
    admin: NatsBrokerConnection, viewer: NatsBrokerConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where the workbench serves MQTT the views watch $MQTT.rmsgs.> for retain flags; the viewer may not.
    monkeypatch.setenv("FASTIOT_MQTT_PORT", "1883")
    subject = "v1.thing.press_1.retain_watch"
    capture = await MessageCapture(subject, viewer).start()
    await admin.publish_raw(subject, b'{"value": 1}')
    await capture.wait_for(1, timeout=10)
    await capture.stop()
    assert capture.to_dataframe()["value"].tolist() == [1]
