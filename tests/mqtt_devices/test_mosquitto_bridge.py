"""An existing Mosquitto, bridged into the workbench's MQTT port with the README's ``connection`` lines.

Debian's ``mosquitto`` (``apt-get install -y mosquitto``; ``.ci/run`` installs it) runs on a free loopback
port with the bridge; messages its clients publish arrive in a :class:`MessageCapture`, and a command
published in the workbench reaches a client of Mosquitto.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from fastiot.capture import MessageCapture
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.nats_server import NatsServer, find_free_port
from tests.mqtt_devices.conftest import MQTT_PASSWORD, MQTT_USER, received
from tests.waits import wait_until

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

# The README's bridge, with the ports and login filled in (keep the two alike).
BRIDGE = """\
connection workbench
address 127.0.0.1:{workbench_port}
remote_username {user}
remote_password {password}
remote_clientid mosquitto-bridge
bridge_protocol_version mqttv311
try_private false
notifications_local_only true
cleansession true
topic tele/# out 1
topic stat/# out 1
topic shellies/# out 1
topic spBv1.0/# out 1
topic cmnd/# in 1
"""


@pytest.fixture
def mosquitto(mqtt_server: NatsServer, tmp_path: Path) -> Iterator[int]:
    """Debian's Mosquitto on a free loopback port, bridged into ``mqtt_server``; yields its port."""
    if not Path(MOSQUITTO).exists():
        # A platform limit, as for the browser test: skipped with this reason, except under CI.
        reason = (
            f"Debian's mosquitto is not installed at {MOSQUITTO}: apt-get install -y mosquitto (.ci/run does)"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    port = find_free_port()
    config = tmp_path / "mosquitto.conf"
    bridge = BRIDGE.format(workbench_port=mqtt_server.mqtt_port, user=MQTT_USER, password=MQTT_PASSWORD)
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n{bridge}")
    log = (tmp_path / "mosquitto.log").open("wb")
    process = subprocess.Popen([MOSQUITTO, "-c", str(config), "-v"], stdout=log, stderr=subprocess.STDOUT)
    try:
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


def _connect(port: int) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"mosquitto-client-{port}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


async def test_mosquitto_clients_reach_the_workbench_and_its_commands_reach_them(
    mosquitto: int, mqtt_broker: NatsBrokerConnection, mqtt_client: Callable[..., mqtt.Client]
) -> None:
    await wait_until(_accepts(mosquitto), 10, "Mosquitto to listen")
    client = _connect(mosquitto)
    try:
        # Mosquitto says (retained, on its own broker) when its bridge is up.
        bridge_state = received(client, "$SYS/broker/connection/+/state")
        await wait_until(lambda: any(p == b"1" for _, p, _ in bridge_state), 10, "the bridge to connect")
        capture = await MessageCapture("tele.>", mqtt_broker).start()
        client.publish("tele/old_plug/SENSOR", b'{"ENERGY": {"Power": 7.5}}', qos=1).wait_for_publish(10)
        await capture.wait_for(1, timeout=10)
        await capture.stop()
        row = capture.to_dataframe().iloc[0]
        assert (row["subject"], row["ENERGY.Power"]) == ("tele.old_plug.SENSOR", 7.5)

        commands = received(client, "cmnd/#")
        await mqtt_broker.publish_raw("cmnd.old_plug.POWER", b"OFF")
        await wait_until(lambda: ("cmnd/old_plug/POWER", b"OFF", False) in commands, 10, "the command")
    finally:
        client.loop_stop()
        client.disconnect()


def _accepts(port: int) -> Callable[[], bool]:
    import socket

    def accepts() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    return accepts
