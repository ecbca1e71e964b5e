"""Real MQTT devices (paho-mqtt) on the broker: QoS, redelivery, last will, sessions, many topics."""

from __future__ import annotations

import asyncio
import queue
from typing import Any

import pytest

from fastiot.capture import MessageCapture
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.mqtt import publish_mqtt
from fastiot.nats_server import NatsServer, find_free_port
from tests.mqtt.conftest import PASSWORD, USER
from tests.mqtt.paho_client import Device
from tests.waits import wait_until


def _device(server: NatsServer, client_id: str | None = None, **options: Any) -> Device:
    return Device(server.mqtt_port or 0, client_id, user=USER, password=PASSWORD, **options)


async def _next(device: Device) -> tuple[str, bytes, int, bool, bool]:
    return await asyncio.to_thread(device.next_message)


async def test_qos_0_and_1_reach_a_subscriber_at_the_lower_of_both_qos(
    mqtt_server: NatsServer, root: str
) -> None:
    with _device(mqtt_server) as subscriber, _device(mqtt_server) as publisher:
        subscriber.subscribe(f"{root}/q1/#", qos=1)
        subscriber.subscribe(f"{root}/q0/#", qos=0)
        publisher.publish(f"{root}/q1/a", b"one", qos=1)
        publisher.publish(f"{root}/q1/b", b"zero", qos=0)
        publisher.publish(f"{root}/q0/c", b"one-down", qos=1)
        got = sorted([(await _next(subscriber))[:3] for _ in range(3)])
    assert got == [
        (f"{root}/q0/c", b"one-down", 0),
        (f"{root}/q1/a", b"one", 1),
        (f"{root}/q1/b", b"zero", 0),
    ]


async def test_a_qos_1_message_a_device_dropped_before_acking_is_redelivered(root: str) -> None:
    port = find_free_port()
    # Redelivered after the listener's ack_wait (30 s by default): one second here.
    mqtt_block = {"listen": f"127.0.0.1:{port}", "ack_wait": "1s"}
    with NatsServer(
        mqtt_port=port, user=USER, password=PASSWORD, extra_config={"mqtt": mqtt_block}
    ) as server:
        await _dropped_and_redelivered(server, root)


async def _dropped_and_redelivered(mqtt_server: NatsServer, root: str) -> None:
    client_id = f"{root}-flaky"
    flaky = _device(mqtt_server, client_id, clean_session=False, manual_ack=True)
    assert flaky.connect() == 0
    flaky.subscribe(f"{root}/cmd/#", qos=1)
    with _device(mqtt_server) as controller:
        controller.publish(f"{root}/cmd/valve", b"OPEN", qos=1)
    first = await _next(flaky)
    assert first[:4] == (f"{root}/cmd/valve", b"OPEN", 1, False)
    flaky.drop()  # loses power before it acknowledged (manual_ack: no PUBACK was sent)

    again = _device(mqtt_server, client_id, clean_session=False, manual_ack=True)
    try:
        assert again.connect() == 0 and again.session_present
        redelivered = await _next(again)
        assert redelivered[:3] == (f"{root}/cmd/valve", b"OPEN", 1)
        assert redelivered[4], "a redelivery carries MQTT's DUP flag"
        again.client.ack(again.raw[-1].mid, 1)
    finally:
        again.disconnect()


async def test_the_last_will_is_published_when_a_device_drops_off(
    mqtt_server: NatsServer, mqtt_broker: NatsBrokerConnection, root: str
) -> None:
    wills: asyncio.Queue[Any] = asyncio.Queue()

    async def on_msg(msg: Any) -> None:
        await wills.put(msg)

    await mqtt_broker.subscribe_raw(f"{root}.plug_1.LWT", on_msg)
    await mqtt_broker.flush()
    plug = _device(mqtt_server, will=(f"{root}/plug_1/LWT", b"Offline", 1, True))
    assert plug.connect() == 0
    plug.publish(f"{root}/plug_1/LWT", b"Online", qos=1, retain=True)
    assert (await asyncio.wait_for(wills.get(), 10)).data == b"Online"
    plug.drop()
    will = await asyncio.wait_for(wills.get(), 10)
    assert (will.subject, will.data) == (f"{root}.plug_1.LWT", b"Offline")
    # Retained, like Tasmota's LWT: a dashboard opened later sees the plug offline.
    with _device(mqtt_server) as dashboard:
        dashboard.subscribe(f"{root}/+/LWT")
        assert (await _next(dashboard))[:4] == (f"{root}/plug_1/LWT", b"Offline", 0, True)


async def test_a_persistent_session_keeps_subscriptions_and_queues_qos_1_while_away(
    mqtt_server: NatsServer, root: str
) -> None:
    client_id = f"{root}-gateway"
    gateway = _device(mqtt_server, client_id, clean_session=False)
    assert gateway.connect() == 0 and not gateway.session_present
    gateway.subscribe(f"{root}/orders/#", qos=1)
    gateway.disconnect()
    for n in range(3):
        await publish_mqtt(f"{root}/orders/{n}", {"order": n}, qos=1)

    back = _device(mqtt_server, client_id, clean_session=False)
    try:
        assert back.connect() == 0 and back.session_present  # no subscribe: the session kept it
        got = [await _next(back) for _ in range(3)]
    finally:
        back.disconnect()
    assert sorted((t, p, q) for t, p, q, _r, _d in got) == [
        (f"{root}/orders/{n}", f'{{"order":{n}}}'.encode(), 1) for n in range(3)
    ]
    with pytest.raises(queue.Empty):
        back.next_message(timeout=0.2)  # each exactly once


@pytest.mark.timeout(120)
async def test_a_thousand_topics_from_fifty_devices_all_arrive_in_a_capture(
    mqtt_server: NatsServer, mqtt_broker: NatsBrokerConnection, root: str
) -> None:
    capture = await MessageCapture(f"{root}.>", mqtt_broker, max_rows=5_000).start()
    devices = [_device(mqtt_server, f"{root}-dev{n}") for n in range(50)]
    try:
        for device in devices:
            assert device.connect() == 0

        def publish_all(device: Device, n: int) -> None:
            for k in range(20):
                device.publish(f"{root}/dev{n}/sensor{k}", f"{n}.{k}".encode(), qos=1)

        await asyncio.gather(*(asyncio.to_thread(publish_all, d, n) for n, d in enumerate(devices)))
        await wait_until(lambda: capture.received >= 1000, 30, "1,000 MQTT messages in the capture")
    finally:
        for device in devices:
            device.disconnect()
        await capture.stop()
    frame = capture.to_dataframe()
    assert frame["subject"].nunique() == 1000 and len(frame) == 1000
    assert set(frame["subject"]) == {f"{root}.dev{n}.sensor{k}" for n in range(50) for k in range(20)}
