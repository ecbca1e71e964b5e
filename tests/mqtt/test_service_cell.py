"""A %%service cell in a real kernel reads an MQTT device's JSON and switches the device over MQTT."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fastiot.nats_server import NatsServer
from tests.kernel_util import Kernel, running_kernel
from tests.mqtt.conftest import PASSWORD, USER
from tests.mqtt.paho_client import Device


@pytest.fixture
def kernel(mqtt_server: NatsServer, tmp_path: Path) -> Iterator[Kernel]:
    env = {
        "FASTIOT_NATS_SERVERS": mqtt_server.url,
        "FASTIOT_NATS_USER": USER,
        "FASTIOT_NATS_PASSWORD": PASSWORD,
        "FASTIOT_MQTT_PORT": str(mqtt_server.mqtt_port),
    }
    with running_kernel(tmp_path, env) as kernel:
        yield kernel


SERVICE = """%%service
from fastiot.core import FastIoTService, subscribe
from fastiot.core.data_models import Subject
from fastiot.mqtt import publish_mqtt

class Guard(FastIoTService):
    @subscribe(subject=Subject(name="{root}.*.SENSOR", msg_cls=dict))
    async def on_sensor(self, subject_name: str, reading: dict) -> None:
        if reading["ENERGY"]["Power"] > 1000:
            await publish_mqtt(f"{root}/{{subject_name.split('.')[1]}}/POWER", "OFF", qos=1)
"""


@pytest.mark.timeout(120)
def test_a_service_cell_switches_off_a_plug_that_draws_too_much(
    kernel: Kernel, mqtt_server: NatsServer, root: str
) -> None:
    kernel.run_ok("%load_ext fastiot_widgets")
    assert "ServiceControl(Guard, running)" in kernel.run_ok(SERVICE.format(root=root)).text
    with Device(mqtt_server.mqtt_port or 0, user=USER, password=PASSWORD) as plug:
        plug.subscribe(f"{root}/plug_7/POWER", qos=1)
        plug.publish(f"{root}/plug_7/SENSOR", b'{"ENERGY": {"Power": 2300}}', qos=1)
        assert plug.next_message(timeout=30)[:3] == (f"{root}/plug_7/POWER", b"OFF", 1)
    kernel.run_ok("%service_stop Guard")
