"""Subject name helpers: FastIoT subjects look like ``v1.my_message`` or ``v1.thing.press_1.temp``.

The constants and conversions are FastIoT's, so a model class publishes on the same subject in a
FastIoT 1.1 service and in this one.

Example:
    >>> from fastiot.core.subject_helper import HIERARCHY, MSG_FORMAT_VERSION, sanitize_pub_subject_name
    >>> sanitize_pub_subject_name("MyMessage." + HIERARCHY)
    'v1.my_message.>'
"""

from __future__ import annotations

import re

__all__ = [
    "HIERARCHY",
    "MSG_FORMAT_VERSION",
    "SYSTEM_SUBJECT_PREFIXES",
    "WILDCARD_SAME_LEVEL",
    "camel_to_snake",
    "filter_specific_sign",
    "is_fastiot1_inbox",
    "is_system_subject",
    "patterns_overlap",
    "sanitize_pub_subject_name",
    "subject_matches",
]

MSG_FORMAT_VERSION = "v1"
"""The first token of every FastIoT subject."""
HIERARCHY = ">"
"""NATS wildcard for any number of further tokens: ``v1.thing.>``."""
WILDCARD_SAME_LEVEL = "*"
"""NATS wildcard for exactly one token: ``v1.thing.*.temperature``."""

# FastIoT's rule: an underscore before every capital but the first. `Sensor_Data` gives `sensor__data`
# there, so it must here too, or the two would publish the same class on different subjects.
_CAMEL_BOUNDARY = re.compile(r"(?<!^)(?=[A-Z])")
_WHITESPACE_OR_WILDCARD = re.compile(r"[\s*]")
# FastIoT 1.x requests with a reply inbox of its own: "_INBOX" and a random number, no dot. Ours and
# nats-py's are "_INBOX.<token>...".
_FASTIOT1_INBOX = re.compile(r"_INBOX[0-9]+")


def camel_to_snake(name: str) -> str:
    """``MySpecialModel`` -> ``my_special_model``, exactly as FastIoT converts class names.

    Example:
        >>> camel_to_snake("MySpecialModel")
        'my_special_model'
    """
    return _CAMEL_BOUNDARY.sub("_", name).lower()


def filter_specific_sign(name: str) -> str:
    """Turn a subject pattern into a plain name: drop whitespace and ``*``, then empty tokens.

    As in FastIoT, where e.g. an object-storage service makes a reply subject from ``thing.*``.

    Example:
        >>> filter_specific_sign("thing.*")
        'thing'
        >>> filter_specific_sign("my sensor.*.temp")
        'mysensor.temp'
    """
    return ".".join(token for token in _WHITESPACE_OR_WILDCARD.sub("", name).split(".") if token)


def is_fastiot1_inbox(subject: str) -> bool:
    """Whether ``subject`` is the reply inbox of a request sent by FastIoT 1.x (``_INBOX`` + a number).

    Such a requester decodes whatever arrives there as its reply model; it cannot tell an error reply.

    Example:
        >>> is_fastiot1_inbox("_INBOX482113"), is_fastiot1_inbox("_INBOX.fX3k.1")
        (True, False)
    """
    return _FASTIOT1_INBOX.fullmatch(subject) is not None


def sanitize_pub_subject_name(subject_name: str) -> str:
    """Bring a subject name into FastIoT's format ``v1.my_message[.more.tokens]``.

    - ``"MyMessage"`` -> ``"v1.my_message"``; ``"my_message"`` -> ``"v1.my_message"``
    - ``"MyMessage.*"`` -> ``"v1.my_message.*"``; ``"v1.MyMessage"`` -> ``"v1.my_message"``
    - ``"v1.my_message.>"`` -> ``"v1.my_message.>"``; ``">"`` -> ``"v1.>"``

    Example:
        >>> sanitize_pub_subject_name("MyMessage.*")
        'v1.my_message.*'

    Raises:
        ValueError: If the name is empty or has an empty token (``"a..b"``).
    """
    if not isinstance(subject_name, str):
        raise TypeError(f"subject_name must be a str, got {type(subject_name).__name__}")
    tokens = subject_name.strip().split(".")
    if any(t == "" for t in tokens):
        raise ValueError(
            f"subject name {subject_name!r} has an empty token; "
            f"write it like 'v1.my_message' or 'MyMessage.*'"
        )
    if tokens[0] != MSG_FORMAT_VERSION:
        tokens.insert(0, MSG_FORMAT_VERSION)
    return ".".join(
        [tokens[0], *(t if t in (HIERARCHY, WILDCARD_SAME_LEVEL) else camel_to_snake(t) for t in tokens[1:])]
    )


def subject_matches(subject: str, pattern: str) -> bool:
    """Whether a NATS subject matches a pattern: ``*`` stands for one token, a final ``>`` for one or more.

    Example:
        >>> subject_matches("v1.thing.press_1.temp", "v1.thing.>")
        True
        >>> subject_matches("v1.thing", "v1.thing.>")
        False
    """
    if pattern == HIERARCHY:
        return True
    if WILDCARD_SAME_LEVEL not in pattern and HIERARCHY not in pattern:
        return subject == pattern
    parts = subject.split(".")
    tokens = pattern.split(".")
    for i, token in enumerate(tokens):
        if token == HIERARCHY:
            return len(parts) > i
        if i >= len(parts) or (token != WILDCARD_SAME_LEVEL and token != parts[i]):
            return False
    return len(parts) == len(tokens)


def patterns_overlap(a: str, b: str) -> bool:
    """Whether some subject matches both NATS patterns.

    Example:
        >>> patterns_overlap("v1.*.press_1", "v1.thing.>")
        True
        >>> patterns_overlap("v1.thing.>", "v2.>")
        False
    """
    left, right = a.split("."), b.split(".")
    for i in range(max(len(left), len(right))):
        x = left[i] if i < len(left) else None
        y = right[i] if i < len(right) else None
        if x == HIERARCHY or y == HIERARCHY:
            return (x is not None) and (y is not None)
        if x is None or y is None:
            return False
        if x != y and WILDCARD_SAME_LEVEL not in (x, y):
            return False
    return True


SYSTEM_SUBJECT_PREFIXES: tuple[str, ...] = ("$", "_INBOX.")
"""NATS reserves subjects starting with ``$`` for its own machinery (``$JS.`` JetStream's API, ``$KV.``
and ``$O.`` buckets, ``$SYS.``, ``$MQTT.``, ``$SRV.`` the services API), and request replies go to
``_INBOX.``: not application traffic. Hidden in the SubjectBrowser by default, and never part of
"record everything" (a stream on them would take JetStream's API traffic or block buckets)."""


def is_system_subject(subject: str) -> bool:
    """Whether ``subject`` belongs to NATS' machinery (see :data:`SYSTEM_SUBJECT_PREFIXES`).

    Example:
        >>> is_system_subject("$KV.config.limit"), is_system_subject("v1.thing.press_1.temperature")
        (True, False)
    """
    return subject.startswith(SYSTEM_SUBJECT_PREFIXES)
