"""MQTT devices through nats-server's own MQTT listener: topics, retained messages, MQTT publishes.

The broker the workbench starts serves MQTT 3.1.1 when asked (``fastiot-workbench --mqtt``, or
``FASTIOT_MQTT_PORT`` for the on-demand broker). MQTT publishes arrive as NATS messages on the topic's
subject (``tele/plug_1/SENSOR`` -> ``tele.plug_1.SENSOR``), so captures, recordings and services see
them like any other message; this package adds what is MQTT's own. Sparkplug B payloads:
:mod:`fastiot.mqtt.sparkplug`; the demo's devices: :mod:`fastiot.mqtt.devices`.

Example:
    >>> from fastiot import mqtt
    >>> mqtt.topic_to_subject("tele/plug_1/SENSOR")
    'tele.plug_1.SENSOR'
    >>> await mqtt.publish_mqtt("cmnd/plug_1/POWER", "ON")  # doctest: +SKIP
    >>> await mqtt.retained("stat/#")  # doctest: +SKIP
"""

from __future__ import annotations

from fastiot.mqtt.client import DEFAULT_MQTT_TIMEOUT, MqttEndpoint, mqtt_endpoint
from fastiot.mqtt.publish import mqtt_payload, publish_mqtt
from fastiot.mqtt.retained import RETAINED_STREAM, RetainedMessage, clear_retained, retained
from fastiot.mqtt.topics import (
    MQTT_INTERNAL_PREFIX,
    MQTT_PUBLISH_HEADER,
    filter_to_subject,
    is_mqtt_message,
    mqtt_qos,
    subject_to_topic,
    topic_to_subject,
)

__all__ = [
    "DEFAULT_MQTT_TIMEOUT",
    "MQTT_INTERNAL_PREFIX",
    "MQTT_PUBLISH_HEADER",
    "RETAINED_STREAM",
    "MqttEndpoint",
    "RetainedMessage",
    "clear_retained",
    "filter_to_subject",
    "is_mqtt_message",
    "mqtt_endpoint",
    "mqtt_payload",
    "mqtt_qos",
    "publish_mqtt",
    "retained",
    "subject_to_topic",
    "topic_to_subject",
]
