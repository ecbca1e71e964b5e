"""Fixtures of the MQTT tests: one nats-server with an MQTT listener and a login, for this package."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import ipywidgets
import pytest

from fastiot import workbench
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.nats_server import NatsServer

USER, PASSWORD = "plant", "s3cret-plant"


@pytest.fixture(scope="package")
def mqtt_server() -> Iterator[NatsServer]:
    """A real nats-server with its MQTT listener (and JetStream) on free loopback ports, with a login."""
    with NatsServer(mqtt_port=0, user=USER, password=PASSWORD) as server:
        yield server


@pytest.fixture(autouse=True)
def mqtt_env(mqtt_server: NatsServer, nats_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The workbench's settings point at the MQTT server: as fastiot-workbench --mqtt sets them."""
    monkeypatch.setenv("FASTIOT_NATS_SERVERS", mqtt_server.url)
    monkeypatch.setenv("FASTIOT_NATS_USER", USER)
    monkeypatch.setenv("FASTIOT_NATS_PASSWORD", PASSWORD)
    monkeypatch.setenv("FASTIOT_MQTT_PORT", str(mqtt_server.mqtt_port))


@pytest.fixture
async def mqtt_broker(mqtt_server: NatsServer) -> AsyncIterator[NatsBrokerConnection]:
    """A NATS connection to the MQTT server, closed after the test."""
    connection = await NatsBrokerConnection.connect(servers=mqtt_server.url, user=USER, password=PASSWORD)
    yield connection
    await connection.close()


@pytest.fixture
def root() -> str:
    """A first topic level of this test alone: tests share the server, never their topics."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture(autouse=True)
async def clean_workbench() -> AsyncIterator[None]:
    """Stop what a test left running on the workbench and close its widgets."""
    yield
    await workbench.shutdown()
    ipywidgets.Widget.close_all()
