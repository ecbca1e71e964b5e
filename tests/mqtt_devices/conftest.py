"""Fixtures of the MQTT tests: a broker with nats-server's MQTT listener, and paho-mqtt clients of it."""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.nats_server import NatsServer

MQTT_USER, MQTT_PASSWORD = "plant", "secret"


@pytest.fixture(scope="module")
def mqtt_server() -> Iterator[NatsServer]:
    """A nats-server with JetStream and an MQTT listener on free loopback ports, with a login."""
    with NatsServer(mqtt_port=0, user=MQTT_USER, password=MQTT_PASSWORD) as server:
        yield server


@pytest.fixture
async def mqtt_broker(mqtt_server: NatsServer) -> AsyncIterator[NatsBrokerConnection]:
    """A NATS connection to :func:`mqtt_server`."""
    connection = await NatsBrokerConnection.connect(
        servers=f"nats://{MQTT_USER}:{MQTT_PASSWORD}@127.0.0.1:{mqtt_server.port}"
    )
    yield connection
    await connection.close()


@pytest.fixture
def mqtt_client(mqtt_server: NatsServer) -> Iterator[Callable[..., mqtt.Client]]:
    """Connected paho-mqtt clients of :func:`mqtt_server` (``mqtt_client(will=(topic, payload))``)."""
    clients: list[mqtt.Client] = []

    def connect(*, will: tuple[str, bytes] | None = None, port: int | None = None) -> mqtt.Client:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
        client.username_pw_set(MQTT_USER, MQTT_PASSWORD)
        if will is not None:
            client.will_set(will[0], will[1], qos=1)
        connected = threading.Event()
        client.on_connect = lambda *args: connected.set()
        client.connect("127.0.0.1", port or mqtt_server.mqtt_port or 0)
        client.loop_start()
        assert connected.wait(10), "the MQTT listener did not accept the client"
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.loop_stop()
        client.disconnect()


def received(client: mqtt.Client, topic: str) -> list[tuple[str, bytes, bool]]:
    """Subscribe ``client`` to ``topic``; the list fills with (topic, payload, retained) as they come."""
    found: list[tuple[str, bytes, bool]] = []
    subscribed = threading.Event()

    def on_message(_client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        found.append((message.topic, bytes(message.payload), bool(message.retain)))

    client.on_message = on_message
    client.on_subscribe = lambda *args: subscribed.set()
    client.subscribe(topic, qos=1)
    assert subscribed.wait(10), f"no SUBACK for {topic}"
    return found
