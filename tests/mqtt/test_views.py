"""MQTT devices in the views: topics with QoS and retained flags, NATS names on a toggle, internals hidden."""

from __future__ import annotations

import pytest

from fastiot.capture import MessageCapture
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.nats_server import NatsServer
from fastiot_widgets import MessageTable, SubjectBrowser
from tests.mqtt.conftest import PASSWORD, USER
from tests.mqtt.paho_client import Device
from tests.waits import wait_for_trait, wait_until

FAST = 0.02


async def test_the_browser_shows_mqtt_topics_with_qos_and_retained_and_nats_names_on_a_toggle(
    mqtt_server: NatsServer, mqtt_broker: NatsBrokerConnection, root: str
) -> None:
    browser = SubjectBrowser(">", connection=mqtt_broker, refresh_interval=FAST)
    await browser.start()
    try:
        with Device(mqtt_server.mqtt_port or 0, user=USER, password=PASSWORD) as device:
            device.publish(f"{root}/tasmota_1/SENSOR", b'{"ENERGY": {"Power": 12}}', qos=1)
            device.publish(f"{root}/spBv1.0/edge1", b"birth", qos=0)
            device.publish(f"{root}/tasmota_1/LWT", b"Online", qos=1, retain=True)
        await mqtt_broker.publish_raw(f"{root}.nats_only", b"1")
        sensor, sparkplug, lwt = (
            f"{root}.tasmota_1.SENSOR",
            f"{root}.spBv1//0.edge1",
            f"{root}.tasmota_1.LWT",
        )

        def rows_seen(_n: int) -> bool:
            rows = {row.path: row for row in browser.rows()}
            return all(s in rows for s in (sensor, sparkplug, lwt, f"{root}.nats_only"))

        await wait_for_trait(browser, "renders", rows_seen)
        stats = browser.index.stats(sensor)
        assert (stats.mqtt_topic, stats.mqtt_qos, stats.mqtt_retained) == (
            f"{root}/tasmota_1/SENSOR",
            1,
            False,
        )
        assert browser.index.mqtt(lwt) == (f"{root}/tasmota_1/LWT", 1, True)
        assert browser.index.mqtt(f"{root}.nats_only") is None

        rows = {row.path: row for row in browser.rows()}
        assert rows[f"{root}.spBv1//0"].token == "spBv1.0"  # the MQTT level, not NATS' escape
        assert rows[sensor].value.startswith("[QoS 1] ") and "Power" in rows[sensor].value
        assert rows[lwt].value.startswith("[QoS 1, retained] ")
        assert not rows[f"{root}.nats_only"].value.startswith("[")
        # The listener's own traffic ($MQTT.sess, $MQTT.rmsgs...) is counted but not shown.
        assert any(s.startswith("$MQTT.") for s in browser.index.subjects)
        assert not any(path.startswith("$") for path in rows)

        browser.filter = f"{root}/+/SENSOR"  # an MQTT filter, as MQTT Explorer users write them
        await wait_for_trait(browser, "renders", lambda _n: sensor in {r.path for r in browser.rows()})
        assert {r.path for r in browser.rows() if r.subject} == {sensor}
        browser.filter = "tasmota_1/LWT"  # a piece of a topic
        await wait_for_trait(browser, "renders", lambda _n: lwt in {r.path for r in browser.rows()})
        assert {r.path for r in browser.rows() if r.subject} == {lwt}
        browser.filter = ""

        browser.select(sensor)
        await wait_for_trait(browser, "renders", lambda _n: browser.detail.get("path") == sensor)
        assert browser.detail["mqtt"] == {"topic": f"{root}/tasmota_1/SENSOR", "qos": 1, "retained": False}

        browser.nats_names_button.value = True  # the toggle
        assert browser.nats_names
        await wait_for_trait(browser, "renders", lambda _n: browser.detail.get("mqtt") is None)
        rows = {row.path: row for row in browser.rows()}
        assert rows[f"{root}.spBv1//0"].token == "spBv1//0" and not rows[sensor].value.startswith("[")
    finally:
        await browser.stop()


async def test_captures_have_the_topic_and_qos_of_mqtt_messages(
    mqtt_server: NatsServer, mqtt_broker: NatsBrokerConnection, root: str
) -> None:
    capture = await MessageCapture(f"{root}.>", mqtt_broker).start()
    with Device(mqtt_server.mqtt_port or 0, user=USER, password=PASSWORD) as device:
        device.publish(f"{root}/plug_1/SENSOR", b'{"Power": 3}', qos=1)
        device.publish(f"{root}/spBv1.0/NDATA", b'{"x": 1}', qos=0)
    await mqtt_broker.publish_raw(f"{root}.from_nats", b'{"Power": 4}')
    await capture.wait_for(3, timeout=10)
    await capture.stop()
    frame = capture.to_dataframe().set_index("subject")
    assert frame.loc[f"{root}.plug_1.SENSOR", "mqtt_topic"] == f"{root}/plug_1/SENSOR"
    assert frame.loc[f"{root}.plug_1.SENSOR", "mqtt_qos"] == 1
    assert frame.loc[f"{root}.spBv1//0.NDATA", "mqtt_topic"] == f"{root}/spBv1.0/NDATA"
    assert frame.loc[f"{root}.plug_1.SENSOR", "Power"] == 3  # the device's JSON, decoded
    assert frame["mqtt_topic"].isna()[f"{root}.from_nats"]
    assert not frame.loc[f"{root}.plug_1.SENSOR", "mqtt_retained"]  # published without retain


async def test_captures_tell_retained_publishes_from_the_others_on_one_topic(
    mqtt_server: NatsServer, mqtt_broker: NatsBrokerConnection, root: str
) -> None:
    # The same payload retained and not, on QoS 0 and 1, and a retained clear (empty payload): the
    # flag belongs to each publish, not to the topic or the payload.
    publishes = [
        (b"Online", 0, True),
        (b"Online", 0, False),
        (b"Online", 1, False),
        (b"Online", 1, True),
        (b"Offline", 1, False),
        (b"", 0, True),
        (b"Online", 0, False),
    ]
    capture = await MessageCapture(f"{root}.>", mqtt_broker).start()
    with Device(mqtt_server.mqtt_port or 0, user=USER, password=PASSWORD) as device:
        for payload, qos, retain in publishes:
            device.publish(f"{root}/plug_1/LWT", payload, qos=qos, retain=retain)
        device.publish(f"{root}/plug_2/LWT", b"Online", qos=1, retain=True)
    await capture.wait_for(len(publishes) + 1, timeout=10)
    await capture.stop()
    frame = capture.to_dataframe()
    plug_1 = frame[frame["subject"] == f"{root}.plug_1.LWT"]
    assert plug_1["mqtt_retained"].tolist() == [retain for _, _, retain in publishes]
    assert plug_1["mqtt_qos"].tolist() == [qos for _, qos, _ in publishes]
    assert frame[frame["subject"] == f"{root}.plug_2.LWT"]["mqtt_retained"].tolist() == [True]


async def test_the_message_table_shows_the_topic_and_qos_beside_the_subject(
    mqtt_server: NatsServer, mqtt_broker: NatsBrokerConnection, root: str
) -> None:
    table = MessageTable(f"{root}.>", connection=mqtt_broker, refresh_interval=FAST)
    await table.start()
    try:
        await mqtt_broker.publish_raw(f"{root}.from_nats", b'{"Power": 4}')
        await wait_for_trait(table, "received", lambda n: n == 1)
        assert "mqtt_topic" not in table.grid.columns  # no MQTT device yet: no empty columns
        with Device(mqtt_server.mqtt_port or 0, user=USER, password=PASSWORD) as device:
            device.publish(f"{root}/plug_1/SENSOR", b'{"Power": 3}', qos=1, retain=True)
        await wait_for_trait(table, "received", lambda n: n == 2)
        await wait_for_trait(table.grid, "row_count", lambda _n: "mqtt_topic" in table.grid.columns)
        assert table.grid.columns[:5] == ["received_at", "subject", "mqtt_topic", "mqtt_qos", "mqtt_retained"]
        rows = table.grid.rows(0, 2)
        assert rows[["subject", "mqtt_topic", "mqtt_qos", "mqtt_retained", "Power"]].values.tolist() == [
            [f"{root}.plug_1.SENSOR", f"{root}/plug_1/SENSOR", "1", "True", "3"],
            [f"{root}.from_nats", "", "", "", "4"],
        ]
    finally:
        await table.stop()


async def test_without_the_workbench_serving_mqtt_the_retain_flag_is_not_known(
    mqtt_server: NatsServer, mqtt_broker: NatsBrokerConnection, root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FASTIOT_MQTT_PORT")  # no listener the workbench knows of: no $MQTT.rmsgs watch
    capture = await MessageCapture(f"{root}.>", mqtt_broker).start()
    with Device(mqtt_server.mqtt_port or 0, user=USER, password=PASSWORD) as device:
        device.publish(f"{root}/plug_1/LWT", b"Online", qos=1, retain=True)
    await capture.wait_for(1, timeout=10)
    await capture.stop()
    frame = capture.to_dataframe()
    assert frame["mqtt_qos"].tolist() == [1]
    assert frame["mqtt_retained"].isna().all()  # unknown, never a wrong False


async def test_the_browser_tells_a_plain_publish_from_a_retained_one_with_the_same_payload(
    mqtt_server: NatsServer, mqtt_broker: NatsBrokerConnection, root: str
) -> None:
    browser = SubjectBrowser(">", connection=mqtt_broker, refresh_interval=FAST)
    await browser.start()
    lwt = f"{root}.tasmota_1.LWT"

    def seen(n: int) -> bool:
        return lwt in browser.index and browser.index.stats(lwt).count == n

    try:
        with Device(mqtt_server.mqtt_port or 0, user=USER, password=PASSWORD) as device:
            device.publish(f"{root}/tasmota_1/LWT", b"Online", qos=1, retain=True)
            await wait_until(lambda: seen(1), what="the retained publish")
            assert browser.index.mqtt(lwt) == (f"{root}/tasmota_1/LWT", 1, True)
            device.publish(f"{root}/tasmota_1/LWT", b"Online", qos=1)  # the retained one stays stored
            await wait_until(lambda: seen(2), what="the plain publish")
            assert browser.index.mqtt(lwt) == (f"{root}/tasmota_1/LWT", 1, False)
    finally:
        await browser.stop()
