"""The kernel-wide connection, the broker on demand and shutdown, from a plain asyncio program."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest

from fastiot import workbench
from fastiot.env import NATS_CONNECTION_SETTINGS
from fastiot.exceptions import BrokerUnavailableError
from fastiot.msg.thing import Thing
from fastiot.nats_server import NatsServer, accepts_connections, find_free_port
from tests.waits import wait_until_gone


@pytest.fixture(autouse=True)
async def clean_workbench():
    yield
    await workbench.shutdown()


def _localhost_4222_serves_nats() -> bool:
    return accepts_connections("localhost", 4222)


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
    # Services started later in the process find it (and log in to it) through the standard variables.
    assert os.environ["FASTIOT_NATS_HOST"] == "127.0.0.1"
    assert os.environ["FASTIOT_NATS_PORT"] == str(server.port)
    assert os.environ["FASTIOT_NATS_USER"] == server.user
    assert os.environ["FASTIOT_NATS_PASSWORD"] == server.password
    assert "using this user's local one" in caplog.text
    assert server.password not in caplog.text
    pid = server.pid
    await workbench.shutdown()
    assert workbench.started_server() is None
    # The last kernel left: the shared broker stops (after FASTIOT_SHARED_BROKER_IDLE, 0.5 s in tests).
    await asyncio.to_thread(wait_until_gone, pid, 10, f"the shared nats-server {pid} to stop")
    assert "FASTIOT_NATS_PORT" not in os.environ
    assert "FASTIOT_NATS_PASSWORD" not in os.environ


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


async def test_the_workbench_connection_allows_blocking_calls_on_the_loop_thread() -> None:
    connection = await workbench.connection()
    assert connection.allow_sync_calls_on_loop_thread is True


IMPORT_IN_A_CELL = textwrap.dedent(
    """
    import asyncio

    async def cell():
        import fastiot.workbench  # as a notebook's first cell does, on the running loop
        try:
            asyncio.get_running_loop().run_until_complete(asyncio.sleep(0))
        except RuntimeError as e:
            print("not re-entrant:", e)

    asyncio.run(cell())
    """
)


def test_importing_the_workbench_patches_nothing() -> None:
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_IN_A_CELL], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "not re-entrant: This event loop is already running" in result.stdout


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


# A plain script that runs asyncio.run() twice, as a user's program or a test suite does. The
# workbench must not use a NATS server a developer runs on localhost:4222, so the probe says "none".
TWO_RUNS = textwrap.dedent(
    """
    import asyncio
    from fastiot import workbench
    from fastiot.msg.thing import Thing

    workbench.accepts_connections = lambda *args, **kwargs: False

    async def round_trip(n):
        broker = await workbench.connection()
        got = asyncio.Queue()

        async def on_thing(thing):
            await got.put(thing)

        await broker.subscribe(Thing.get_subject("two_runs.value"), on_thing)
        await broker.flush()
        await broker.publish(Thing.get_subject("two_runs.value"), Thing(machine="m", name="value", value=n))
        assert (await asyncio.wait_for(got.get(), 10)).value == n
        return workbench.started_server().pid

    first = asyncio.run(round_trip(1))
    second = asyncio.run(round_trip(2))
    print("broker", first, second, flush=True)
    """
)


def test_broker_on_demand_outlives_asyncio_run_but_not_the_process() -> None:
    env = {k: v for k, v in os.environ.items() if k not in NATS_CONNECTION_SETTINGS}
    result = subprocess.run(
        [sys.executable, "-c", TWO_RUNS], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    first, second = (int(pid) for pid in result.stdout.split("broker", 1)[1].split())
    assert first == second, "the second asyncio.run() must find the broker of the first one"
    wait_until_gone(first, 10, f"nats-server {first} to stop with the program that started it")


async def test_the_broker_started_on_demand_keeps_a_rolling_history(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 21: "which machine ran hottest over the last two minutes?" needs no recording started before."""
    from datetime import timedelta

    from fastiot.core.serialization import pack
    from fastiot.history.rolling import HISTORY_STREAM
    from tests.waits import wait_until

    monkeypatch.delenv("FASTIOT_NATS_SERVERS")
    if _localhost_4222_serves_nats():
        pytest.skip("a NATS server on localhost:4222 is used as it is: the workbench starts no broker")
    connection = await workbench.connection()
    for machine, value in (("press_1", 71.0), ("oven_1", 230.0), ("press_1", 73.5)):
        await connection.publish_raw(f"v1.thing.{machine}.temperature", pack({"value": value}))
    jsm = connection.client.jsm()

    async def learned() -> bool:  # the keeper (a process of its own, starting still) learns "plant"
        await connection.publish_raw("plant.hall", b"new first token")
        return "plant.>" in ((await jsm.stream_info(HISTORY_STREAM)).config.subjects or [])

    await wait_until(learned, 30.0, "the keeper to add plant.> to the history", interval=0.1)
    await connection.publish_raw("plant.hall", b"kept")
    await connection.flush()
    history = await workbench.history()

    async def stored() -> bool:  # the stream stores what it is sent a moment later
        frame = await history.to_dataframe(start=timedelta(minutes=2))
        return list(frame["value"])[-1:] == ["kept"]

    await wait_until(stored, 10.0, "the history to store the last message", interval=0.05)
    frame = await history.to_dataframe(start=timedelta(minutes=2))
    things = frame[frame["subject"].str.startswith("v1.thing.")]
    assert len(things) == 3
    assert things.groupby("subject")["value"].max().idxmax() == "v1.thing.oven_1.temperature"
    assert list(frame.loc[frame["subject"] == "plant.hall", "value"])[-1] == "kept"
    await workbench.shutdown()


async def test_no_history_when_turned_off_or_on_a_broker_the_workbench_did_not_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fastiot.exceptions import RecordingNotFoundError

    with pytest.raises(RecordingNotFoundError, match=r"keeps no rolling history.*README: History by default"):
        await workbench.history()  # the session's server: started by the tests, not the workbench
    await workbench.shutdown()
    monkeypatch.delenv("FASTIOT_NATS_SERVERS")
    monkeypatch.setenv("FASTIOT_HISTORY", "off")
    if _localhost_4222_serves_nats():
        pytest.skip("a NATS server on localhost:4222 is used as it is: the workbench starts no broker")
    with pytest.raises(RecordingNotFoundError, match="keeps no rolling history"):
        await workbench.history()
    assert workbench.started_server() is not None
