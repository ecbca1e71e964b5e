"""The demo's MQTT devices: real paho-mqtt clients with Tasmota's and Shelly's topics, obeying commands."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable

import paho.mqtt.client as mqtt
import pytest

from fastiot.capture import MessageCapture
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import BrokerAuthenticationError, MqttUrlError
from fastiot.mqtt.devices import MqttDemoDevices, ensure_mqtt_devices
from fastiot.nats_server import NatsServer
from tests.mqtt_devices.conftest import MQTT_PASSWORD, MQTT_USER, received
from tests.waits import wait_until


@pytest.fixture
async def devices(mqtt_server: NatsServer) -> AsyncIterator[MqttDemoDevices]:
    """The demo devices, publishing every 0.05 s."""
    url = f"mqtt://{MQTT_USER}:{MQTT_PASSWORD}@127.0.0.1:{mqtt_server.mqtt_port}"
    async with MqttDemoDevices(url, interval=0.05, seed=1) as running:
        yield running


async def test_the_plugs_publish_json_telemetry_with_tasmota_and_shelly_topics(
    mqtt_broker: NatsBrokerConnection, devices: MqttDemoDevices
) -> None:
    capture = await MessageCapture(
        ["tele.tasmota_plug1.SENSOR", "shellies.shellyplug-s-1.>"], mqtt_broker
    ).start()
    await wait_until(
        lambda: (
            {"tele.tasmota_plug1.SENSOR", "shellies.shellyplug-s-1.relay.0.power"}
            <= set(capture.to_dataframe()["subject"])
        ),
        10,
        "telemetry of both plugs",
    )
    await capture.stop()
    frame = capture.to_dataframe()
    sensor = frame[frame["subject"] == "tele.tasmota_plug1.SENSOR"].iloc[-1]
    assert 40 <= sensor["ENERGY.Power"] <= 60 and sensor["ENERGY.Voltage"] > 200
    assert devices.names == ["tasmota_plug1", "tasmota_plug2", "shellyplug-s-1", "edge1"]


async def test_a_plug_obeys_cmnd_power_and_answers_on_stat(
    mqtt_client: Callable[..., mqtt.Client], mqtt_broker: NatsBrokerConnection, devices: MqttDemoDevices
) -> None:
    client = mqtt_client()
    answers = received(client, "stat/+/POWER")
    client.publish("cmnd/tasmota_plug1/POWER", b"TOGGLE", qos=1).wait_for_publish(10)
    await wait_until(lambda: ("stat/tasmota_plug1/POWER", b"OFF", False) in answers, 10, "the plug's OFF")
    # A command from the workbench side: a NATS publish reaches the MQTT device.
    await mqtt_broker.publish_raw("cmnd.shellyplug-s-1.POWER", b"off")
    await wait_until(lambda: ("stat/shellyplug-s-1/POWER", b"OFF", False) in answers, 10, "the Shelly's OFF")
    client.publish("cmnd/tasmota_plug1/POWER", b"ON", qos=1).wait_for_publish(10)
    await wait_until(lambda: answers[-1] == ("stat/tasmota_plug1/POWER", b"ON", False), 10, "the plug's ON")
    assert devices.devices[0].power is True and devices.devices[2].power is False


async def test_the_retained_lwt_says_online_and_a_dropped_plug_goes_offline_by_its_will(
    mqtt_client: Callable[..., mqtt.Client], devices: MqttDemoDevices
) -> None:
    late = received(mqtt_client(), "tele/+/LWT")  # subscribes after the plugs came online: retained
    await wait_until(lambda: ("tele/tasmota_plug2/LWT", b"Online", True) in late, 10, "the retained Online")
    plug = devices.devices[1]
    plug.disconnect(clean=False)
    await wait_until(lambda: ("tele/tasmota_plug2/LWT", b"Offline", False) in late, 10, "the will")
    again = received(mqtt_client(), "tele/tasmota_plug2/LWT")
    await wait_until(lambda: again == [("tele/tasmota_plug2/LWT", b"Offline", True)], 10, "the retained will")


async def test_bad_logins_and_missing_listeners_are_refused_with_what_to_do(mqtt_server: NatsServer) -> None:
    with pytest.raises(BrokerAuthenticationError, match="FASTIOT_NATS_USER"):
        await MqttDemoDevices(f"mqtt://{MQTT_USER}:wrong@127.0.0.1:{mqtt_server.mqtt_port}").start()
    with pytest.raises(MqttUrlError, match="mqtt://HOST:PORT"):
        MqttDemoDevices("127.0.0.1")


async def test_devices_that_run_already_are_not_started_twice(
    mqtt_server: NatsServer, devices: MqttDemoDevices
) -> None:
    # The same client IDs twice would take each other's sessions over, again and again.
    url = f"mqtt://127.0.0.1:{mqtt_server.mqtt_port}"
    assert await ensure_mqtt_devices(url, username=MQTT_USER, password=MQTT_PASSWORD) is None


@pytest.mark.parametrize("how", ["--mqtt", "FASTIOT_MQTT_PORT"])
async def test_the_demo_script_runs_the_devices_with_mqtt_and_says_goodbye_on_sigterm(
    how: str,
    mqtt_server: NatsServer,
    mqtt_client: Callable[..., mqtt.Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FASTIOT_NATS_SERVERS", f"nats://127.0.0.1:{mqtt_server.port}")
    monkeypatch.setenv("FASTIOT_NATS_USER", MQTT_USER)  # the devices' MQTT login too
    monkeypatch.setenv("FASTIOT_NATS_PASSWORD", MQTT_PASSWORD)
    lwt = received(mqtt_client(), "tele/tasmota_plug1/LWT")
    url = f"mqtt://127.0.0.1:{mqtt_server.mqtt_port}"
    command = [sys.executable, "-m", "fastiot.demo"]
    if how == "--mqtt":
        command += ["--mqtt", url]
    else:  # the broker's MQTT port, as the workbench gives it to its children
        monkeypatch.setenv("FASTIOT_MQTT_PORT", str(mqtt_server.mqtt_port))
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        lines = [await asyncio.wait_for(proc.stdout.readline(), 20) for _ in range(2)]  # type: ignore[union-attr]
        assert (
            lines[1]
            .decode()
            .startswith(f"MQTT devices tasmota_plug1, tasmota_plug2, shellyplug-s-1, edge1 on {url}")
        )
        await wait_until(lambda: ("tele/tasmota_plug1/LWT", b"Online", False) in lwt, 10, "the plug online")
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    await wait_until(lambda: lwt[-1][:2] == ("tele/tasmota_plug1/LWT", b"Offline"), 10, "the plug's goodbye")
