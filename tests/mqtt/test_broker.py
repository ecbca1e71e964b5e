"""The broker's MQTT listener: fastiot-workbench --mqtt, the on-demand broker, a cluster."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.env import NATS_CONNECTION_SETTINGS
from fastiot.nats_server import NatsServer, find_free_port
from tests.mqtt.paho_client import Device
from tests.waits import WAIT, wait_until
from tests.workbench.cli_process import CLI, WorkbenchCommand


def _child_env(command: WorkbenchCommand, name: str) -> str:
    for child in command.children():
        with contextlib.suppress(psutil.Error):
            environ = child.environ()
            if name in environ:
                return environ[name]
    raise AssertionError(f"no child has {name}; output: {command.output!r}")


async def _arrives_on_nats(port: int, login: dict[str, str], mqtt_port: int, topic: str) -> tuple[str, bytes]:
    connection = await NatsBrokerConnection.connect(servers=f"nats://127.0.0.1:{port}", **login)
    got: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    async def on_msg(msg: Any) -> None:
        await got.put((msg.subject, msg.data))

    try:
        await connection.subscribe_raw("tele.>", on_msg)
        await connection.flush()
        with Device(mqtt_port, user=login["user"], password=login["password"]) as device:
            device.publish(topic, b'{"Power": 7}', qos=1)
            return await asyncio.wait_for(got.get(), WAIT)
    finally:
        await connection.close()


async def _demo_devices_online(port: int, login: dict[str, str]) -> list[Any]:
    """The retained LWTs of the demo's MQTT devices, once its plugs announced themselves."""
    from fastiot.mqtt import retained
    from fastiot.mqtt.devices import DEMO_PLUG

    connection = await NatsBrokerConnection.connect(servers=f"nats://127.0.0.1:{port}", **login)
    found: list[Any] = []

    async def online() -> bool:
        found[:] = await retained("tele/+/LWT", connection=connection)
        status = {m.topic: m.value for m in found}
        return status.get(f"tele/{DEMO_PLUG}/LWT") == "Online" and "tele/tasmota_plug2/LWT" in status

    try:
        await wait_until(online, 30, "the demo's MQTT devices online", interval=0.2)
        return found
    finally:
        await connection.close()


@pytest.mark.timeout(90)
def test_the_cli_broker_serves_mqtt_with_its_login_shown_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NATS_CONNECTION_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    port, mqtt_port = find_free_port(), find_free_port()
    args = ["--no-lab", "--broker-port", str(port), "--mqtt", str(mqtt_port), "--demo-rate", "20"]
    with WorkbenchCommand(args) as command:
        command.wait_for("running without JupyterLab", 30)
        line = command.wait_for("MQTT listener", 5)
        assert f"mqtt://127.0.0.1:{mqtt_port}" in line and "password ***" in line
        login = command.broker_login()
        assert login["password"] not in command.output
        assert _child_env(command, "FASTIOT_MQTT_PORT") == str(mqtt_port)  # kernels know where MQTT is
        subject, data = asyncio.run(_arrives_on_nats(port, login, mqtt_port, "tele/plug_1/SENSOR"))
        assert (subject, data) == ("tele.plug_1.SENSOR", b'{"Power": 7}')
        # --mqtt is all it takes for the demo plant's MQTT devices: its child finds the port.
        online = asyncio.run(_demo_devices_online(port, login))
        assert {m.value for m in online if m.topic.startswith("tele/tasmota_plug")} == {"Online"}
        refused = Device(mqtt_port, user=login["user"], password="guess")
        try:
            assert refused.connect() != 0  # the listener has the broker's login, not an open door
        finally:
            refused.disconnect()
        assert command.stop(signal.SIGINT) == 0, command.output


def test_mqtt_for_a_broker_the_workbench_does_not_start_is_a_clear_error(nats_server: NatsServer) -> None:
    result = subprocess.run(
        [*CLI, "--nats", nats_server.url, "--mqtt", "--no-lab", "--no-demo"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "`mqtt { listen: ... }`" in result.stderr and "FASTIOT_MQTT_PORT" in result.stderr


# A kernel on the on-demand path asking for MQTT: publishes at QoS 1 through the listener, gets it on NATS.
KERNEL = textwrap.dedent(
    """
    import asyncio, os
    from fastiot import mqtt, workbench

    workbench.accepts_connections = lambda *args, **kwargs: False  # never a NATS on localhost:4222

    async def main():
        broker = await workbench.connection()
        print("port", os.environ["FASTIOT_MQTT_PORT"], workbench.started_server().mqtt_port, flush=True)
        got = asyncio.Queue()

        async def on_msg(msg):
            await got.put(msg)

        await broker.subscribe_raw("tele.>", on_msg)
        await broker.flush()
        await mqtt.publish_mqtt("tele/plug_9/STATE", {"POWER": "ON"}, qos=1)
        msg = await asyncio.wait_for(got.get(), 10)
        print("got", msg.subject, msg.data.decode(), msg.headers["Nmqtt-Pub"], flush=True)
        await workbench.shutdown()

    asyncio.run(main())
    """
)


@pytest.mark.timeout(90)
def test_the_on_demand_broker_gets_mqtt_when_fastiot_mqtt_port_asks() -> None:
    mqtt_port = find_free_port()
    env = {k: v for k, v in os.environ.items() if k not in NATS_CONNECTION_SETTINGS}
    env["FASTIOT_MQTT_PORT"] = str(mqtt_port)
    result = subprocess.run(
        [sys.executable, "-c", KERNEL], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"port {mqtt_port} {mqtt_port}",
        'got tele.plug_9.STATE {"POWER":"ON"} 1',
    ]


@pytest.fixture
def mqtt_cluster() -> Iterator[list[NatsServer]]:
    """Three clustered nats-servers, each with JetStream and its own MQTT listener."""
    cluster_ports = [find_free_port() for _ in range(3)]
    servers = [
        NatsServer(
            cluster_name="fastiot-mqtt",
            cluster_port=port,
            routes=[f"nats-route://127.0.0.1:{p}" for p in cluster_ports if p != port],
            mqtt_port=0,
        )
        for port in cluster_ports
    ]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


def _connected(device: Device) -> bool:
    # A new cluster elects its JetStream leaders first; until then the listener refuses MQTT sessions.
    try:
        if device.connect(timeout=2) == 0:
            return True
    except Exception:
        pass
    device.disconnect()
    return False


@pytest.mark.timeout(120)
async def test_a_clustered_broker_serves_mqtt_on_every_server(mqtt_cluster: list[NatsServer]) -> None:
    first, _, last = mqtt_cluster
    assert all(server.mqtt_port for server in mqtt_cluster)
    subscriber = Device(last.mqtt_port or 0)
    publisher = Device(first.mqtt_port or 0)
    await wait_until(
        lambda: asyncio.to_thread(_connected, subscriber), 60, "MQTT on the cluster", interval=0.5
    )
    await wait_until(
        lambda: asyncio.to_thread(_connected, publisher), 60, "MQTT on the cluster", interval=0.5
    )
    try:
        subscriber.subscribe("plant/#", qos=1)

        async def delivered() -> bool:
            # Interest travels over the routes asynchronously: publish until the first one arrives.
            publisher.publish("plant/line_1/speed", b"42", qos=1)
            return not subscriber.messages.empty()

        await wait_until(delivered, 30, "a message across the cluster", interval=0.2)
        assert (await asyncio.to_thread(subscriber.next_message))[:3] == ("plant/line_1/speed", b"42", 1)
    finally:
        publisher.disconnect()
        subscriber.disconnect()
