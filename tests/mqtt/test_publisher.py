"""The Publisher's MQTT mode: topic, JSON or text payload, QoS 0/1, retain; MQTT devices receive it."""

from __future__ import annotations

import asyncio

import pytest
from traitlets import TraitError

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.mqtt import clear_retained, retained
from fastiot.msg.thing import Thing
from fastiot.nats_server import NatsServer
from fastiot_widgets import Publisher
from tests.mqtt.conftest import PASSWORD, USER
from tests.mqtt.paho_client import Device
from tests.waits import wait_until


async def test_the_mqtt_mode_publishes_json_and_text_at_qos_0_and_1_and_retained(
    mqtt_server: NatsServer, mqtt_broker: NatsBrokerConnection, root: str
) -> None:
    pub = Publisher(connection=mqtt_broker)
    pub.mode = "mqtt"
    assert pub.encoding == "json" and pub.subject_field.description == "topic"
    assert pub.headers_field.layout.display == "none" and pub.qos_field.layout.display == ""
    with Device(mqtt_server.mqtt_port or 0, user=USER, password=PASSWORD) as plug:
        plug.subscribe(f"cmnd/{root}/#", qos=1)
        pub.subject, pub.payload = f"cmnd/{root}/Backlog", '{"Power": "ON", "Dimmer": 40}'
        assert await pub.publish() == {"Power": "ON", "Dimmer": 40}
        pub.publish_button.click()  # the button does the same
        await pub.wait_idle(10)
        pub.qos, pub.encoding, pub.subject, pub.payload = 1, "text", f"cmnd/{root}/POWER", "TOGGLE"
        await pub.wait_idle(10)
        pub.publish_button.click()
        await pub.wait_idle(10)
        got = [await asyncio.to_thread(plug.next_message) for _ in range(3)]
    assert pub.error == "", pub.error
    assert got[0][:3] == (f"cmnd/{root}/Backlog", b'{"Power": "ON", "Dimmer": 40}', 0)
    assert {m[:3] for m in got[1:]} == {
        (f"cmnd/{root}/Backlog", b'{"Power": "ON", "Dimmer": 40}', 0),
        (f"cmnd/{root}/POWER", b"TOGGLE", 1),
    }
    assert "QoS 1" in pub.history[0].outcome

    pub.retain, pub.subject, pub.payload = True, f"stat/{root}/POWER", "ON"
    assert await pub.publish() == "ON"

    async def kept() -> bool:  # the listener stores it in $MQTT_rmsgs just after acknowledging it
        found = await retained(f"stat/{root}/#", connection=mqtt_broker)
        return [(m.topic, m.value) for m in found] == [(f"stat/{root}/POWER", "ON")]

    await wait_until(kept, what="the retained message in $MQTT_rmsgs")
    assert await pub.resend(0)  # again, retained, from the history
    assert pub.history[0].outcome == "QoS 1, retained"
    pub.copy_code.frontend_timeout = 0.05  # no JupyterLab here: the code is shown in a text box
    await pub.copy_code.copy()
    code = pub.copy_code.code
    assert code == (
        "from fastiot.mqtt import publish_mqtt\n\n"
        f'await publish_mqtt("stat/{root}/POWER", "ON", qos=1, retain=True)'
    )
    await clear_retained(f"stat/{root}/#", connection=mqtt_broker)


async def test_mistakes_in_the_mqtt_mode_are_shown_not_sent(
    mqtt_broker: NatsBrokerConnection, root: str
) -> None:
    pub = Publisher(connection=mqtt_broker)
    pub.mode = "mqtt"
    pub.subject, pub.payload = f"cmnd/{root}/+", "ON"
    assert await pub.publish() is None
    assert "topic:" in pub.error and "wildcard" in pub.error
    with pytest.raises(TraitError, match="free-form"):
        Publisher(Thing, connection=mqtt_broker).mode = "mqtt"
