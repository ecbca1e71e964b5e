"""Clustered JetStream: NatsServer(jetstream=True, cluster_name=...) works, and a replicas=3 recording keeps
every acknowledged message when a server dies during the recording."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nats.errors
import nats.js.errors
import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.serialization import pack
from fastiot.history import Recording
from fastiot.nats_server import NatsServer
from tests.core.fault_helpers import start_cluster
from tests.history.conftest import WAIT, wait_for_jetstream


@pytest.fixture
async def js_cluster() -> AsyncIterator[list[NatsServer]]:
    """Three clustered nats-servers with JetStream on loopback, ready to take streams."""
    servers = await asyncio.to_thread(start_cluster, 3, jetstream=True)
    try:
        conn = await NatsBrokerConnection.connect(servers=[s.url for s in servers])
        await wait_for_jetstream(conn, replicas=len(servers))
        await conn.close()
        yield servers
    finally:
        for server in servers:
            await asyncio.to_thread(server.stop)


@pytest.mark.timeout(240)
async def test_a_replicated_recording_keeps_every_acknowledged_message_when_a_server_dies(
    js_cluster: list[NatsServer],
) -> None:
    urls = [s.url for s in js_cluster]
    conn = await NatsBrokerConnection.connect(servers=urls, reconnect_time_wait=0.1)
    rec = await Recording.start("plant", "v1.thing.>", replicas=3, connection=conn)
    info = await rec.info()
    assert info.replicas == 3 and info.cluster_leader is not None
    leader = next(s for s in js_cluster if s.url.endswith(f":{info.cluster_leader.rsplit('-', 1)[-1]}"))
    survivors = [s for s in js_cluster if s is not leader]

    # The publisher talks to a survivor, so it is the stream that fails over, not the connection.
    publisher = await NatsBrokerConnection.connect(
        servers=[s.url for s in survivors], reconnect_time_wait=0.1
    )
    js = publisher.client.jetstream()
    acknowledged: list[int] = []
    refused = 0
    stop = asyncio.Event()
    progress = asyncio.Event()

    async def record_continuously() -> None:
        nonlocal refused
        n = 0
        while not stop.is_set():
            try:
                # The message id makes a retry of an unacknowledged message never count twice.
                await js.publish(
                    "v1.thing.press_1.temperature",
                    pack({"n": n}),
                    timeout=1.0,
                    headers={"Nats-Msg-Id": str(n)},
                )
                acknowledged.append(n)
                progress.set()
            except (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError):
                refused += 1  # not acknowledged: no promise was made about it
                await asyncio.sleep(0.05)
                continue
            n += 1

    async def acknowledged_at_least(count: int) -> None:
        while len(acknowledged) < count:
            progress.clear()
            await progress.wait()

    recording = asyncio.create_task(record_continuously())
    try:
        await asyncio.wait_for(acknowledged_at_least(300), WAIT)
        await asyncio.to_thread(leader.kill)  # the stream's leader dies while the recording goes on
        killed_at = len(acknowledged)
        await asyncio.wait_for(acknowledged_at_least(killed_at + 300), 120)
    finally:
        stop.set()
        await recording

    reader = await NatsBrokerConnection.connect(servers=[s.url for s in survivors])
    frame = await Recording("plant").to_dataframe(connection=reader)
    recorded = frame["n"].tolist()
    assert set(acknowledged) <= set(recorded), sorted(set(acknowledged) - set(recorded))[:20]
    assert len(recorded) == len(set(recorded))  # and nothing twice
    after = await Recording("plant").info(connection=reader)
    assert after.cluster_leader != info.cluster_leader  # a survivor took over
    await reader.close()
    await publisher.close()
    await conn.close()
