"""The kernel-wide connection, the broker on demand and shutdown, from a plain asyncio program."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from fastiot import workbench
from fastiot.exceptions import BrokerUnavailableError
from fastiot.msg.thing import Thing
from fastiot.nats_server import NatsServer, find_free_port


@pytest.fixture(autouse=True)
async def clean_workbench():
    yield
    await workbench.shutdown()


def _localhost_4222_serves_nats() -> bool:
    try:
        with socket.create_connection(("localhost", 4222), timeout=0.5) as sock:
            return sock.recv(4).startswith(b"INFO")
    except OSError:
        return False


async def test_connection_is_created_once_and_reused(nats_server: NatsServer) -> None:
    first = await workbench.connection()
    second = await workbench.connection()
    assert first is second
    assert first.is_connected
    assert first.connected_url == nats_server.url


async def test_concurrent_first_calls_share_one_connection() -> None:
    connections = await asyncio.gather(*(workbench.connection() for _ in range(5)))
    assert len({id(c) for c in connections}) == 1


async def test_closed_connection_is_recreated() -> None:
    first = await workbench.connection()
    await first.close()
    second = await workbench.connection()
    assert second is not first
    assert second.is_connected


async def test_configured_but_unreachable_server_raises_naming_its_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"nats://127.0.0.1:{find_free_port()}"
    monkeypatch.setenv("FASTIOT_NATS_SERVERS", url)
    with pytest.raises(BrokerUnavailableError, match=url.replace(".", r"\.")):
        await workbench.connection()
    assert workbench.started_server() is None, "a configured broker must never be replaced silently"


async def test_no_broker_configured_starts_one_and_shutdown_stops_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("FASTIOT_NATS_SERVERS")
    if _localhost_4222_serves_nats():
        connection = await workbench.connection()
        assert workbench.started_server() is None
        assert connection.connected_url.endswith(":4222")
        return
    connection = await workbench.connection()
    server = workbench.started_server()
    assert server is not None and server.is_running
    assert server.host == "127.0.0.1"
    assert connection.connected_url == server.url
    # Services started later in the process find it through the standard variables.
    assert os.environ["FASTIOT_NATS_HOST"] == "127.0.0.1"
    assert os.environ["FASTIOT_NATS_PORT"] == str(server.port)
    assert "started a local one" in caplog.text
    pid = server.pid
    await workbench.shutdown()
    assert workbench.started_server() is None
    assert not server.is_running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert "FASTIOT_NATS_PORT" not in os.environ


async def test_blocking_calls_complete_on_the_loop_thread(broker) -> None:
    # This is what a Jupyter cell does: a synchronous call on the thread that runs the loop.
    connection = await workbench.connection()
    received: asyncio.Queue[Thing] = asyncio.Queue()

    async def on_thing(thing: Thing) -> None:
        await received.put(thing)

    await broker.subscribe(Thing.get_subject("wb.sync"), on_thing)
    await broker.flush()
    connection.publish_sync(
        Thing.get_subject("wb.sync"), Thing(machine="wb", name="sync", value=7), timeout=5
    )
    thing = await asyncio.wait_for(received.get(), 5)
    assert thing.value == 7
    assert connection.run_threadsafe(asyncio.sleep(0, result="done"), timeout=5) == "done"


async def test_shutdown_stops_registered_objects() -> None:
    stopped: list[str] = []

    class Owned:
        async def stop(self) -> None:
            stopped.append("owned")

    class Broken:
        async def stop(self) -> None:
            raise RuntimeError("cannot stop")

    owned, broken = Owned(), Broken()
    workbench.register(owned)
    workbench.register(broken)
    workbench.register(owned)  # registering twice keeps one entry
    assert workbench.registered() == [owned, broken]
    await workbench.shutdown()
    assert stopped == ["owned"], "one object failing to stop must not keep the others running"
    assert workbench.registered() == []
