"""MQTT topics and NATS subjects: nats-server's own mapping, and what its headers say about a message.

nats-server's MQTT listener carries every MQTT publish on a NATS subject: ``/`` becomes ``.``, a ``.``
inside a level becomes ``//``, and an empty level (leading, trailing or doubled ``/``) becomes a level
``/``. MQTT subscribers receive NATS publishes the other way round. The functions here do exactly what
the server does (the tests compare them with the server itself), so a subject a capture shows and a
topic an MQTT device uses always name the same thing.

Example:
    >>> topic_to_subject("tele/tasmota_1/SENSOR")
    'tele.tasmota_1.SENSOR'
    >>> topic_to_subject("spBv1.0/plant/NDATA/edge1")
    'spBv1//0.plant.NDATA.edge1'
    >>> subject_to_topic("spBv1//0.plant.NDATA.edge1")
    'spBv1.0/plant/NDATA/edge1'
"""

from __future__ import annotations

from collections.abc import Mapping

from fastiot.exceptions import InvalidTopicError

__all__ = [
    "MQTT_INTERNAL_PREFIX",
    "MQTT_PUBLISH_HEADER",
    "MQTT_QOS_COLUMN",
    "MQTT_RETAINED_COLUMN",
    "MQTT_TOPIC_COLUMN",
    "RETAINED_PREFIX",
    "RETAINED_STORE_REPLY_PREFIX",
    "RetainedPublishHeaders",
    "filter_to_subject",
    "is_mqtt_message",
    "mqtt_name",
    "mqtt_qos",
    "republished_headers",
    "subject_to_topic",
    "topic_to_subject",
]

MQTT_PUBLISH_HEADER = "Nmqtt-Pub"
"""The header nats-server puts on every message an MQTT client published; its value is the QoS."""
MQTT_INTERNAL_PREFIX = "$MQTT."
"""The subjects of the MQTT listener's own machinery (sessions, retained messages, QoS 1 deliveries)."""

RETAINED_PREFIX = "$MQTT.rmsgs."
"""nats-server keeps a topic's retained message on this prefix and the topic's subject."""
MQTT_TOPIC_COLUMN = "mqtt_topic"
"""The column of captures and recordings with the MQTT topic of messages MQTT clients published."""
MQTT_QOS_COLUMN = "mqtt_qos"
"""The column with the QoS those messages were published with."""
MQTT_RETAINED_COLUMN = "mqtt_retained"
"""The column telling whether those messages were published with MQTT's retain flag."""
RETAINED_STORE_REPLY_PREFIX = b"$MQTT.JSA."
"""The reply subject of nats-server storing a retained publish on ``$MQTT.rmsgs.<subject>``.

It sends that store request just before it delivers the publish itself, on the same connection; the
copy its own consumer of ``$MQTT_rmsgs`` reads back afterwards has a ``$JS.ACK.`` reply instead.
"""


class RetainedPublishHeaders(dict[str, str]):
    """The NATS headers of a message an MQTT client published with the retain flag.

    nats-server's ``Nmqtt-Pub`` header has only the QoS; the live views learn the retain flag from the
    store request that precedes a retained publish (:data:`RETAINED_STORE_REPLY_PREFIX`) and hand on
    that publish's headers as this type, which reads like any ``dict`` of headers. Only retained
    publishes are copied (they are rare), so the other messages cost nothing.

    Example:
        >>> headers = RetainedPublishHeaders({"Nmqtt-Pub": "1"})
        >>> headers["Nmqtt-Pub"], isinstance(headers, RetainedPublishHeaders)
        ('1', True)
    """

    __slots__ = ()


_EMPTY_LEVEL = "/"
_DOT = "//"
_MAX_TOPIC_BYTES = 65535  # an MQTT string's length is two bytes


def _check(topic: str, *, wildcards: bool) -> None:
    if not isinstance(topic, str) or topic == "":
        raise InvalidTopicError(
            f"{topic!r} is not an MQTT topic: give a non-empty string like 'tele/plug_1/SENSOR'"
        )
    if len(topic.encode()) > _MAX_TOPIC_BYTES:
        raise InvalidTopicError(
            f"the MQTT topic {topic[:40]!r}... is longer than MQTT's {_MAX_TOPIC_BYTES} bytes"
        )
    if any(c.isspace() for c in topic):
        # nats-server refuses these ("unsupported characters"): a NATS subject cannot hold white space.
        raise InvalidTopicError(
            f"the MQTT topic {topic!r} has white space, which NATS cannot carry; remove it"
        )
    levels = topic.split("/")
    for index, level in enumerate(levels):
        if "+" in level or "#" in level:
            if not wildcards:
                raise InvalidTopicError(
                    f"the MQTT topic {topic!r} has a wildcard (+ or #); publish to a topic without one"
                )
            if len(level) != 1 or (level == "#" and index != len(levels) - 1):
                raise InvalidTopicError(
                    f"the MQTT filter {topic!r} misplaces a wildcard: + stands for a whole level, # for the "
                    f"whole rest and only at the end (e.g. 'tele/+/SENSOR', 'tele/#')"
                )


def _level_to_token(level: str) -> str:
    return level.replace(".", _DOT) if level else _EMPTY_LEVEL


def topic_to_subject(topic: str) -> str:
    """The NATS subject nats-server uses for the MQTT ``topic``.

    Args:
        topic: An MQTT topic without wildcards, e.g. ``tele/tasmota_1/SENSOR``.

    Returns:
        The subject, e.g. ``tele.tasmota_1.SENSOR``; ``/a`` gives ``/.a``, ``a/`` gives ``a./``.

    Raises:
        InvalidTopicError: It is empty, has white space or a wildcard.

    Example:
        >>> topic_to_subject("cmnd/plug_1/POWER"), topic_to_subject("a//b")
        ('cmnd.plug_1.POWER', 'a./.b')
    """
    _check(topic, wildcards=False)
    return ".".join(_level_to_token(level) for level in topic.split("/"))


def filter_to_subject(topic_filter: str) -> str:
    """The NATS subject pattern for an MQTT topic filter: ``+`` becomes ``*``, a final ``#`` becomes ``>``.

    MQTT's ``a/#`` also matches ``a`` itself, which NATS' ``a.>`` does not (nats-server subscribes to
    both for an MQTT client); this returns the ``a.>`` part.

    Args:
        topic_filter: An MQTT filter such as ``tele/+/SENSOR`` or ``tele/#``.

    Returns:
        The pattern, e.g. ``tele.*.SENSOR``.

    Raises:
        InvalidTopicError: It is not a valid MQTT filter.

    Example:
        >>> filter_to_subject("tele/+/SENSOR"), filter_to_subject("#")
        ('tele.*.SENSOR', '>')
    """
    _check(topic_filter, wildcards=True)
    tokens = []
    for level in topic_filter.split("/"):
        tokens.append({"+": "*", "#": ">"}.get(level) or _level_to_token(level))
    return ".".join(tokens)


def subject_to_topic(subject: str) -> str:
    """The MQTT topic on which MQTT subscribers receive a NATS publish to ``subject``.

    The inverse of :func:`topic_to_subject`, written as nats-server converts: ``.`` becomes ``/``,
    ``//`` becomes ``.``, a ``/.`` becomes ``/``, and any other ``/`` is dropped.

    Args:
        subject: A NATS subject, e.g. ``cmnd.plug_1.POWER``.

    Returns:
        The topic, e.g. ``cmnd/plug_1/POWER``.

    Example:
        >>> subject_to_topic("cmnd.plug_1.POWER"), subject_to_topic("/.a"), subject_to_topic("x//y.z")
        ('cmnd/plug_1/POWER', '/a', 'x.y/z')
    """
    out: list[str] = []
    i, end = 0, len(subject) - 1
    while i <= end:
        char = subject[i]
        if char == "/":
            if i < end and subject[i + 1] in "./":
                out.append("/" if subject[i + 1] == "." else ".")
                i += 1
        elif char == ".":
            out.append("/")
        else:
            out.append(char)
        i += 1
    return "".join(out)


def mqtt_qos(headers: Mapping[str, str] | None) -> int | None:
    """The QoS an MQTT client published a message with, from its NATS headers; ``None`` if it came from NATS.

    Example:
        >>> mqtt_qos({"Nmqtt-Pub": "1"}), mqtt_qos(None)
        (1, None)
    """
    if not headers:
        return None
    value = headers.get(MQTT_PUBLISH_HEADER)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return 0


def is_mqtt_message(headers: Mapping[str, str] | None) -> bool:
    """Whether a message with these NATS headers was published by an MQTT client.

    Example:
        >>> is_mqtt_message({"Nmqtt-Pub": "0"}), is_mqtt_message({})
        (True, False)
    """
    return mqtt_qos(headers) is not None


def mqtt_name(token: str) -> str:
    """One subject token as the MQTT level it stands for (``spBv1//0`` -> ``spBv1.0``; ``/`` -> empty).

    A token nats-server cannot have made from a topic (a lone ``/``, as in ``/tmp/x``) stays as it is.

    Example:
        >>> mqtt_name("spBv1//0"), mqtt_name("/"), mqtt_name("SENSOR"), mqtt_name("/tmp/x")
        ('spBv1.0', '', 'SENSOR', '/tmp/x')
    """
    if "/" not in token:
        return token
    if token == _EMPTY_LEVEL:
        return ""
    return token.replace(_DOT, ".") if "/" not in token.replace(_DOT, "") else token


def republished_headers(headers: dict[str, str] | None) -> dict[str, str] | None:
    """``headers`` without nats-server's ``Nmqtt-Pub``, for publishing a recorded MQTT message again.

    nats-server takes a NATS message that carries ``Nmqtt-Pub`` for one its MQTT listener made, and does
    not deliver it to QoS 1 subscribers: a replay of MQTT traffic must publish it as a plain message.

    Example:
        >>> republished_headers({"Nmqtt-Pub": "1"}), republished_headers({"Nmqtt-Pub": "0", "a": "b"})
        (None, {'a': 'b'})
    """
    if not headers or MQTT_PUBLISH_HEADER not in headers:
        return headers
    rest = {name: value for name, value in headers.items() if name != MQTT_PUBLISH_HEADER}
    return rest or None
