"""Services and MQTT devices: JSON telemetry on dict subjects, commands to devices, replays to MQTT."""

from __future__ import annotations

import asyncio
from typing import Any

from fastiot.core import FastIoTService, subscribe
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.data_models import Subject
from fastiot.history import Recording
from fastiot.mqtt import publish_mqtt
from fastiot.nats_server import NatsServer
from fastiot.runner import ServiceRunner
from tests.mqtt.conftest import PASSWORD, USER
from tests.mqtt.paho_client import Device
from tests.waits import wait_until


class PlugGuard(FastIoTService):
    """Switches a plug off when it draws too much: reads Tasmota's JSON, commands it over MQTT."""

    root = "plant"
    readings: list[dict[str, Any]] = []

    @subscribe(subject=Subject(name="*.*.SENSOR", msg_cls=dict))
    async def on_sensor(self, subject_name: str, reading: dict[str, Any]) -> None:
        self.readings.append(reading)
        if reading["ENERGY"]["Power"] > 1000:
            device = subject_name.split(".")[1]
            await publish_mqtt(f"cmnd/{device}/POWER", "OFF", connection=self.broker_connection)


async def test_a_service_reads_device_json_on_a_dict_subject_and_commands_the_device(
    mqtt_server: NatsServer, mqtt_broker: NatsBrokerConnection, root: str
) -> None:
    PlugGuard.readings = []
    runner = ServiceRunner(PlugGuard, connection=mqtt_broker)
    await runner.start()
    try:
        with Device(mqtt_server.mqtt_port or 0, user=USER, password=PASSWORD) as plug:
            plug.subscribe(f"cmnd/{root}_plug/#")
            plug.publish(f"tele/{root}_plug/SENSOR", b'{"ENERGY": {"Power": 12.5}}', qos=1)
            plug.publish(f"tele/{root}_plug/SENSOR", b'{"ENERGY": {"Power": 2300}}', qos=1)
            command = await asyncio.to_thread(plug.next_message)
        assert command[:2] == (f"cmnd/{root}_plug/POWER", b"OFF")
        await wait_until(lambda: len(PlugGuard.readings) == 2, what="both readings handled")
        assert PlugGuard.readings == [{"ENERGY": {"Power": 12.5}}, {"ENERGY": {"Power": 2300}}]
        assert runner.handler_counts()["on_sensor"] == {"received": 2, "errors": 0}
    finally:
        await runner.stop()


async def test_a_recording_of_mqtt_traffic_replays_to_mqtt_subscribers(
    mqtt_server: NatsServer, mqtt_broker: NatsBrokerConnection, root: str
) -> None:
    recording = await Recording.start(f"mqtt_{root}", f"{root}.>", connection=mqtt_broker)
    try:
        with Device(mqtt_server.mqtt_port or 0, user=USER, password=PASSWORD) as device:
            for n in range(3):
                device.publish(f"{root}/line_1/speed", str(n).encode(), qos=1)
        await wait_until(lambda: _count(recording, 3), what="three MQTT messages recorded")
        await recording.stop()
        frame = await recording.to_dataframe()  # read back under their MQTT topics, with their QoS
        assert (
            list(frame["mqtt_topic"]) == [f"{root}/line_1/speed"] * 3 and list(frame["mqtt_qos"]) == [1] * 3
        )
        with Device(mqtt_server.mqtt_port or 0, user=USER, password=PASSWORD) as dashboard:
            dashboard.subscribe(f"{root}/#", qos=1)
            replay = await recording.replay(speed=None)
            await replay.wait(timeout=20)
            got = [await asyncio.to_thread(dashboard.next_message) for _ in range(3)]
        assert [(t, p) for t, p, *_ in got] == [(f"{root}/line_1/speed", str(n).encode()) for n in range(3)]
    finally:
        await recording.delete()


async def _count(recording: Recording, n: int) -> bool:
    return (await recording.info()).messages >= n
