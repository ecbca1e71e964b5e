"""publish_mqtt, retained() and clear_retained() against real MQTT clients (paho-mqtt) on the real server."""

from __future__ import annotations

import asyncio

import pytest

from fastiot.exceptions import (
    ConfigurationError,
    FormError,
    InvalidTopicError,
    MqttAuthenticationError,
    MqttUnavailableError,
)
from fastiot.mqtt import MqttEndpoint, clear_retained, mqtt_endpoint, publish_mqtt, retained
from fastiot.nats_server import NatsServer, find_free_port
from tests.mqtt.conftest import PASSWORD, USER
from tests.mqtt.paho_client import Device
from tests.waits import wait_until


async def test_publish_mqtt_reaches_mqtt_subscribers_at_qos_0_and_1_as_json_or_text(
    mqtt_server: NatsServer, root: str
) -> None:
    with Device(mqtt_server.mqtt_port, user=USER, password=PASSWORD) as device:
        device.subscribe(f"cmnd/{root}/#", qos=1)
        await publish_mqtt(f"cmnd/{root}/POWER", "ON")
        await publish_mqtt(f"cmnd/{root}/Backlog", {"Dimmer": 50}, qos=1)
        first = await asyncio.to_thread(device.next_message)
        second = await asyncio.to_thread(device.next_message)
    assert first[:4] == (f"cmnd/{root}/POWER", b"ON", 0, False)
    assert second[:4] == (f"cmnd/{root}/Backlog", b'{"Dimmer":50}', 1, False)


async def test_retained_set_read_and_cleared(mqtt_server: NatsServer, root: str) -> None:
    with Device(mqtt_server.mqtt_port, user=USER, password=PASSWORD) as device:
        device.publish(f"stat/{root}/plug_1/POWER", b"ON", qos=1, retain=True)
    await publish_mqtt(f"stat/{root}/plug_2/STATUS", {"Power": 0}, qos=0, retain=True)

    async def both_kept() -> bool:
        return len(await retained(f"stat/{root}/#")) == 2

    await wait_until(both_kept, what="two retained messages in $MQTT_rmsgs")
    kept = await retained(f"stat/{root}/#")
    assert [(m.topic, m.value, m.qos) for m in kept] == [
        (f"stat/{root}/plug_1/POWER", "ON", 1),
        (f"stat/{root}/plug_2/STATUS", {"Power": 0}, 0),
    ]
    assert kept[0].time.tzinfo is not None and kept[0].subject == f"stat.{root}.plug_1.POWER"
    assert [m.topic for m in await retained(f"stat/{root}/+/POWER")] == [f"stat/{root}/plug_1/POWER"]

    # A device that subscribes now gets the retained message first, flagged as retained.
    with Device(mqtt_server.mqtt_port, user=USER, password=PASSWORD) as late:
        late.subscribe(f"stat/{root}/plug_1/#")
        assert (await asyncio.to_thread(late.next_message))[:4] == (
            f"stat/{root}/plug_1/POWER",
            b"ON",
            0,
            True,
        )

    assert await clear_retained(f"stat/{root}/plug_1/POWER") == 1
    assert [m.topic for m in await retained(f"stat/{root}/#")] == [f"stat/{root}/plug_2/STATUS"]
    assert await clear_retained(f"stat/{root}/#") == 1
    assert await retained(f"stat/{root}/#") == []
    with Device(mqtt_server.mqtt_port, user=USER, password=PASSWORD) as late:
        late.subscribe(f"stat/{root}/#")
        late.publish(f"stat/{root}/marker", b"after")  # the first thing it gets: nothing retained before
        assert (await asyncio.to_thread(late.next_message))[:2] == (f"stat/{root}/marker", b"after")


async def test_bad_credentials_are_refused_and_the_refusal_says_so(
    mqtt_server: NatsServer, root: str
) -> None:
    intruder = Device(mqtt_server.mqtt_port, user=USER, password="wrong")
    try:
        assert intruder.connect() == 135  # "not authorized" (paho gives MQTT 3.1.1 codes as MQTT 5 reasons)
    finally:
        intruder.disconnect()
    wrong = MqttEndpoint("127.0.0.1", mqtt_server.mqtt_port or 0, USER, "wrong")
    with pytest.raises(MqttAuthenticationError, match="refused the login of user 'plant'"):
        await publish_mqtt(f"cmnd/{root}/POWER", "ON", qos=1, endpoint=wrong)
    # The server's log names the refusal too, for whoever runs it.
    assert "authentication error" in mqtt_server.log_tail(200).lower()


async def test_without_a_listener_the_error_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, root: str
) -> None:
    monkeypatch.delenv("FASTIOT_MQTT_PORT")
    with pytest.raises(MqttUnavailableError, match="fastiot-workbench --mqtt"):
        await publish_mqtt(f"cmnd/{root}/POWER", "ON", qos=1)
    nobody = MqttEndpoint("127.0.0.1", find_free_port(), USER, PASSWORD)
    with pytest.raises(MqttUnavailableError, match="no MQTT listener answers"):
        await publish_mqtt(f"cmnd/{root}/POWER", "ON", retain=True, endpoint=nobody)


async def test_bad_input_is_refused_before_anything_is_sent(root: str) -> None:
    with pytest.raises(InvalidTopicError):
        await publish_mqtt(f"cmnd/{root}/+", "ON")
    with pytest.raises(ConfigurationError, match="QoS 0 and 1"):
        await publish_mqtt(f"cmnd/{root}/POWER", "ON", qos=2)
    with pytest.raises(FormError, match="payload"):
        await publish_mqtt(f"cmnd/{root}/POWER", {1, 2})


def test_the_endpoint_has_the_brokers_login_and_never_shows_the_password(mqtt_server: NatsServer) -> None:
    endpoint = mqtt_endpoint()
    assert (endpoint.host, endpoint.port, endpoint.user, endpoint.password) == (
        "127.0.0.1",
        mqtt_server.mqtt_port,
        USER,
        PASSWORD,
    )
    assert PASSWORD not in repr(endpoint) and endpoint.url == mqtt_server.mqtt_url
