"""Retained MQTT messages: read from the ``$MQTT_rmsgs`` stream where nats-server keeps them, and cleared.

nats-server's MQTT listener keeps each topic's retained message in the JetStream stream ``$MQTT_rmsgs``
(subject ``$MQTT.rmsgs.<the topic's subject>``, the topic itself in the header ``Nmqtt-RTopic``). Reading
them there needs no MQTT client; clearing one is an MQTT publish of an empty retained message, which
the listener then removes from the stream.

Example:
    >>> for message in await retained("stat/#"):  # doctest: +SKIP
    ...     print(message.topic, message.value, message.time)
    >>> await clear_retained("stat/plug_1/POWER")  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import nats.errors
import nats.js.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.mqtt.client import DEFAULT_MQTT_TIMEOUT, MqttEndpoint, mqtt_endpoint, publish_blocking
from fastiot.mqtt.topics import RETAINED_PREFIX, filter_to_subject, subject_to_topic

__all__ = ["RETAINED_STREAM", "RetainedMessage", "clear_retained", "retained"]

RETAINED_STREAM = "$MQTT_rmsgs"
"""nats-server's stream of retained MQTT messages."""
_TOPIC_HEADER = "Nmqtt-RTopic"
_FLAGS_HEADER = "Nmqtt-RFlags"
_BATCH = 256
_FETCH_TIMEOUT = 5.0
_POLL = 0.05


@dataclass(frozen=True)
class RetainedMessage:
    """One topic's retained message."""

    topic: str
    """The MQTT topic, e.g. ``stat/plug_1/POWER``."""
    value: Any
    """The payload, decoded as every view decodes it (:func:`fastiot.payloads.decode`)."""
    time: datetime
    """When the server stored it (UTC)."""
    qos: int
    """The QoS it was published with."""
    payload: bytes
    """The payload as it was published."""

    @property
    def subject(self) -> str:
        """The NATS subject of its topic."""
        from fastiot.mqtt.topics import topic_to_subject

        return topic_to_subject(self.topic)


def _message(msg: Any) -> RetainedMessage:
    from fastiot.payloads import decode

    headers = msg.headers or {}
    subject = msg.subject.removeprefix(RETAINED_PREFIX)
    topic = headers.get(_TOPIC_HEADER) or subject_to_topic(subject)
    try:
        qos = (int(headers.get(_FLAGS_HEADER, "0")) >> 1) & 0b11  # MQTT's PUBLISH flags: retain, then QoS
    except ValueError:
        qos = 0
    decoded = decode(msg.data, subject=subject)
    return RetainedMessage(topic, decoded.value, msg.metadata.timestamp, qos, bytes(msg.data))


async def _read(broker: NatsBrokerConnection, topic_filter: str, limit: int) -> list[RetainedMessage]:
    js = broker.client.jetstream()
    jsm = broker.client.jsm()
    config = ConsumerConfig(
        name=f"fastiot_retained_{uuid.uuid4().hex[:12]}",
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        ack_policy=AckPolicy.NONE,
        filter_subject=RETAINED_PREFIX + filter_to_subject(topic_filter),
        inactive_threshold=60.0,  # removed by the server if this reader dies before it deletes it
        mem_storage=True,
    )
    try:
        info = await jsm.add_consumer(RETAINED_STREAM, config)
    except nats.js.errors.NotFoundError:
        return []  # no MQTT client ever connected: nothing is retained
    messages: list[RetainedMessage] = []
    try:
        pending = info.num_pending or 0
        if not pending:
            return []
        subscription = await js.pull_subscribe_bind(info.name, RETAINED_STREAM)
        try:
            while pending and len(messages) < limit:
                batch = await subscription.fetch(min(_BATCH, pending, limit - len(messages)), _FETCH_TIMEOUT)
                for msg in batch:
                    messages.append(_message(msg))
                    pending = msg.metadata.num_pending
        finally:
            await subscription.unsubscribe()
    finally:
        try:
            await jsm.delete_consumer(RETAINED_STREAM, info.name)
        except (nats.errors.Error, nats.js.errors.Error):
            pass  # its inactive threshold removes it
    return sorted(messages, key=lambda m: m.topic)


async def retained(
    topic_filter: str = "#", *, connection: NatsBrokerConnection | None = None, limit: int = 10_000
) -> list[RetainedMessage]:
    """The retained MQTT messages whose topics match ``topic_filter``, sorted by topic.

    Args:
        topic_filter: An MQTT filter: ``#`` (all), ``stat/#``, ``stat/+/POWER`` or one topic.
        connection: The NATS connection to read with; the workbench's shared one if not given.
        limit: At most this many (the first by stream order).

    Returns:
        One :class:`RetainedMessage` per topic (topic, decoded value, time, QoS, payload bytes).

    Raises:
        InvalidTopicError: ``topic_filter`` is no MQTT filter.

    Example:
        >>> {m.topic: m.value for m in await retained("stat/#")}  # doctest: +SKIP
        {'stat/plug_1/POWER': 'ON'}
    """
    from fastiot.workbench import use_connection

    filter_to_subject(topic_filter)  # bad input is refused before any connection
    async with use_connection(connection) as broker:
        return await _read(broker, topic_filter, limit)


async def clear_retained(
    topic_filter: str,
    *,
    connection: NatsBrokerConnection | None = None,
    endpoint: MqttEndpoint | None = None,
    timeout: float = DEFAULT_MQTT_TIMEOUT,
) -> int:
    """Clear the retained messages of the topics matching ``topic_filter``, as MQTT clears them.

    Each is cleared by an MQTT publish of an empty retained message through the MQTT listener; this
    returns once the server no longer keeps them.

    Args:
        topic_filter: One topic, or an MQTT filter (``stat/#``) to clear every matching topic.
        connection: The NATS connection to read with; the workbench's shared one if not given.
        endpoint: The MQTT listener; :func:`~fastiot.mqtt.client.mqtt_endpoint` if not given.
        timeout: Seconds the MQTT publish, and the server's removal, may take.

    Returns:
        How many retained messages were cleared.

    Raises:
        InvalidTopicError: ``topic_filter`` is no MQTT filter.
        MqttUnavailableError: No MQTT listener to publish through.
        MqttAuthenticationError: The listener refused the login.

    Example:
        >>> await clear_retained("stat/plug_1/POWER")  # doctest: +SKIP
        1
    """
    from fastiot.workbench import use_connection

    filter_to_subject(topic_filter)
    async with use_connection(connection) as broker:
        topics = [m.topic for m in await _read(broker, topic_filter, 1_000_000)]
        if not topics:
            return 0
        target = endpoint or mqtt_endpoint()
        await asyncio.to_thread(
            publish_blocking, target, [(t, b"", 1, True) for t in topics], timeout=timeout
        )
        deadline = time.monotonic() + timeout
        # The listener removes them from the stream after it acknowledged the publishes; no event says when.
        while time.monotonic() < deadline:
            if not await _read(broker, topic_filter, 1_000_000):
                break
            await asyncio.sleep(_POLL)
    return len(topics)
