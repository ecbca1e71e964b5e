"""``publish_mqtt``: a message MQTT subscribers receive as MQTT, at QoS 0 or 1, retained or not.

A QoS 0 message that is not retained goes out as a plain NATS publish on the topic's subject: nats-server
delivers it to its MQTT subscribers (as its documentation says, at QoS 0). QoS 1 and retained messages
need the MQTT listener itself, so they go through a real MQTT client (paho-mqtt) that logs in with the
broker's credentials (:mod:`fastiot.mqtt.client`).

Example:
    >>> await publish_mqtt("cmnd/plug_1/POWER", "ON")  # doctest: +SKIP
    >>> await publish_mqtt("plant/line_1/status", {"state": "running"}, qos=1, retain=True)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pydantic

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import ConfigurationError, FormError
from fastiot.mqtt.client import DEFAULT_MQTT_TIMEOUT, MqttEndpoint, mqtt_endpoint, publish_blocking
from fastiot.mqtt.topics import topic_to_subject

__all__ = ["mqtt_payload", "publish_mqtt"]


def mqtt_payload(payload: Any) -> bytes:
    """The bytes MQTT devices get for ``payload``: bytes as they are, text as UTF-8, anything else as JSON.

    MQTT devices (Tasmota, Shelly, Node-RED) speak JSON and plain text, not msgpack.

    Raises:
        FormError: ``payload`` cannot be written as JSON.

    Example:
        >>> mqtt_payload({"POWER": "ON"}), mqtt_payload("ON")
        (b'{"POWER":"ON"}', b'ON')
    """
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode()
    if isinstance(payload, pydantic.BaseModel):
        return payload.model_dump_json().encode()
    try:
        return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as e:
        raise FormError(
            {
                "payload": f"{type(payload).__name__} cannot be sent to MQTT devices as JSON ({e}); give "
                f"bytes, a str, or dicts, lists, numbers and strings"
            }
        ) from None


def _check_qos(qos: int) -> None:
    if qos not in (0, 1):
        # nats-server's MQTT listener supports QoS 0 and 1; it refuses QoS 2.
        raise ConfigurationError(
            f"qos={qos!r}: the broker's MQTT listener supports QoS 0 and 1; use one of them"
        )


async def publish_mqtt(
    topic: str,
    payload: Any,
    qos: int = 0,
    retain: bool = False,
    *,
    connection: NatsBrokerConnection | None = None,
    endpoint: MqttEndpoint | None = None,
    timeout: float = DEFAULT_MQTT_TIMEOUT,
) -> None:
    """Publish ``payload`` on the MQTT ``topic`` so that MQTT subscribers receive it as MQTT.

    Args:
        topic: The MQTT topic, e.g. ``cmnd/plug_1/POWER`` (no wildcards).
        payload: bytes, text, or a JSON value (dict, list, number, pydantic model), see :func:`mqtt_payload`.
        qos: 0 or 1. QoS 1 goes through the MQTT listener and returns once the server acknowledged it.
        retain: Keep it as the topic's retained message (new subscribers get it first).
        connection: The NATS connection for QoS 0; the workbench's shared one if not given.
        endpoint: The MQTT listener for QoS 1 and retained messages; :func:`mqtt_endpoint` if not given.
        timeout: Seconds the MQTT connect and publish may take.

    Raises:
        InvalidTopicError: ``topic`` is no MQTT topic (or has a wildcard).
        ConfigurationError: ``qos`` is not 0 or 1.
        FormError: ``payload`` cannot be written as JSON.
        MqttUnavailableError: QoS 1 or ``retain`` without a reachable MQTT listener.
        MqttAuthenticationError: The listener refused the login.
        PermissionDeniedError: The server refused the NATS publish.

    Example:
        >>> await publish_mqtt("cmnd/tasmota_1/POWER", "TOGGLE")  # doctest: +SKIP
    """
    subject = topic_to_subject(topic)
    _check_qos(qos)
    data = mqtt_payload(payload)
    if qos == 0 and not retain:
        from fastiot.workbench import use_connection

        async with use_connection(connection) as broker:
            await broker.publish_raw(subject, data, confirm=True)
        return
    target = endpoint or mqtt_endpoint()
    await asyncio.to_thread(publish_blocking, target, [(topic, data, qos, retain)], timeout=timeout)
