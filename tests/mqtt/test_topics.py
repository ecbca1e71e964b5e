"""Topic <-> subject mapping, checked against nats-server itself in both directions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import InvalidSubjectError, InvalidTopicError
from fastiot.mqtt import filter_to_subject, subject_to_topic, topic_to_subject
from fastiot.nats_server import NatsServer
from tests.mqtt.conftest import PASSWORD, USER
from tests.mqtt.paho_client import Device

# Levels as devices write them: plain, a "." inside a level (Sparkplug), empty levels anywhere.
TOPIC_TAILS = [
    "tele/tasmota_1/SENSOR",
    "spBv1.0/plant/NDATA/edge1",
    "a//b",
    "a/",
    "a/b//",
    "a/./b",
    "a..b",
    ".a",
    "a.",
    "a/.b",
    "a./b",
]


async def test_mqtt_publishes_arrive_on_the_subjects_topic_to_subject_names(
    mqtt_server: NatsServer, mqtt_broker: NatsBrokerConnection, root: str
) -> None:
    topics = [f"{root}/{tail}" for tail in TOPIC_TAILS] + [f"/{root}", f"/{root}/"]
    arrived: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    async def on_msg(msg: Any) -> None:
        await arrived.put((msg.subject, msg.data))

    await mqtt_broker.subscribe_raw(f"{root}.>", on_msg)
    await mqtt_broker.subscribe_raw(f"/.{root}.>", on_msg)
    await mqtt_broker.subscribe_raw(f"/.{root}", on_msg)
    await mqtt_broker.flush()
    with Device(mqtt_server.mqtt_port, user=USER, password=PASSWORD) as device:
        for topic in topics:
            device.publish(topic, topic.encode(), qos=1)
    seen = {}
    for _ in topics:
        subject, data = await asyncio.wait_for(arrived.get(), 10)
        seen[data.decode()] = subject
    assert seen == {topic: topic_to_subject(topic) for topic in topics}
    assert seen[f"{root}/spBv1.0/plant/NDATA/edge1"] == f"{root}.spBv1//0.plant.NDATA.edge1"
    assert seen[f"/{root}"] == f"/.{root}"


async def test_nats_publishes_reach_mqtt_subscribers_on_the_topics_subject_to_topic_names(
    mqtt_server: NatsServer, mqtt_broker: NatsBrokerConnection, root: str
) -> None:
    subjects = [topic_to_subject(f"{root}/{tail}") for tail in TOPIC_TAILS] + [
        f"{root}.x/y",
        f"{root}.x//y.z",
    ]
    with Device(mqtt_server.mqtt_port, user=USER, password=PASSWORD) as device:
        device.subscribe(f"{root}/#")
        for subject in subjects:
            await mqtt_broker.publish_raw(subject, subject.encode())
        await mqtt_broker.flush()
        seen = {}
        for _ in subjects:
            topic, payload, qos, retain, _dup = await asyncio.to_thread(device.next_message)
            seen[payload.decode()] = topic
            assert (qos, retain) == (0, False)  # what a NATS publish is to MQTT
    assert seen == {subject: subject_to_topic(subject) for subject in subjects}
    # Round trip for every topic a device may use.
    for tail in TOPIC_TAILS:
        assert subject_to_topic(topic_to_subject(f"{root}/{tail}")) == f"{root}/{tail}"


def test_filters_become_subject_patterns() -> None:
    assert filter_to_subject("tele/+/SENSOR") == "tele.*.SENSOR"
    assert filter_to_subject("spBv1.0/#") == "spBv1//0.>"
    assert filter_to_subject("stat/plug_1/POWER") == "stat.plug_1.POWER"


@pytest.mark.parametrize("bad", ["", "a b/c", "tele/+/x", "a/#"])
def test_a_publish_topic_with_a_wildcard_or_white_space_is_refused(bad: str) -> None:
    with pytest.raises(InvalidTopicError, match="MQTT topic"):
        topic_to_subject(bad)


@pytest.mark.parametrize("bad", ["a/#/b", "a/b+", "a/#x"])
def test_a_misplaced_filter_wildcard_is_refused_and_is_a_subject_error(bad: str) -> None:
    with pytest.raises(InvalidSubjectError, match="misplaces a wildcard"):
        filter_to_subject(bad)
