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
from collections.abc import Sequence
from typing import Any, Protocol, Union, runtime_checkable

from fastiot.exceptions import InvalidSubjectError

__all__ = [
    "HIERARCHY",
    "MSG_FORMAT_VERSION",
    "SYSTEM_SUBJECT_PREFIXES",
    "WILDCARD_SAME_LEVEL",
    "NamedSubject",
    "SubjectsArg",
    "camel_to_snake",
    "check_subject",
    "filter_specific_sign",
    "is_fastiot1_inbox",
    "is_system_subject",
    "patterns_overlap",
    "sanitize_pub_subject_name",
    "subject_matches",
    "subject_targets",
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
# Characters NATS never accepts in a subject: white space (nats-py refuses it only when publishing,
# nats-server drops the connection for it) and control characters.
_FORBIDDEN = re.compile(r"[\s\x00-\x1f\x7f]")
_PATTERN_HINT = (
    "use dot separated tokens, '*' for one token and '>' for the rest at the end, e.g. 'v1.thing.>'"
)
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


@runtime_checkable
class NamedSubject(Protocol):
    """A :class:`fastiot.core.data_models.Subject` as the subject checks see it: a name and a model."""

    name: str
    msg_cls: Any


# What an API that listens to subjects takes: a pattern, a Subject, or a list of them.
SubjectsArg = Union[str, NamedSubject, Sequence[Union[str, NamedSubject]]]  # noqa: UP007 - a runtime alias


def check_subject(
    subject: object,
    *,
    wildcards: bool | None = True,
    error: type[InvalidSubjectError] = InvalidSubjectError,
) -> str:
    """``subject`` if NATS accepts it as a subject pattern (or, with ``wildcards=False``, a subject).

    THE check of subjects and patterns: every API that takes one calls it, so the same mistake gives
    the same error everywhere. A :class:`Subject` is not accepted here; :func:`subject_targets` takes
    its name.

    Args:
        subject: The subject or pattern.
        wildcards: Whether ``*`` (one token) and a final ``>`` (the rest) are allowed; ``None`` for a
            name that may be either, as a :class:`Subject`'s (only the tokens' syntax is checked).
        error: The :class:`InvalidSubjectError` subclass to raise (an API's own, e.g. a recording's).

    Raises:
        InvalidSubjectError: It is no string, empty, has an empty token (``a..b``), white space or a
            control character, a ``>`` before the end (``v1.>.x``), a wildcard inside a token of a
            pattern (``th*ng``), or, with ``wildcards=False``, a wildcard token.

    Example:
        >>> check_subject("v1.thing.>")
        'v1.thing.>'
        >>> check_subject("v1.>.x")
        Traceback (most recent call last):
        ...
        fastiot.exceptions.InvalidSubjectError: 'v1.>.x' is not a NATS subject pattern: '>' must be \
the last token; use dot separated tokens, '*' for one token and '>' for the rest at the end, e.g. 'v1.thing.>'
    """
    what = "NATS subject pattern" if wildcards else "NATS subject"
    if wildcards is None:
        what = "NATS subject or pattern"
    if not isinstance(subject, str):
        raise error(f"a {what} must be a string like 'v1.thing.>', got {type(subject).__name__} {subject!r}")
    problem = _subject_problem(subject, wildcards)
    if problem is not None:
        hint = _PATTERN_HINT if wildcards else "write tokens joined by dots, e.g. 'v1.thing.press_1'"
        raise error(f"{subject!r} is not a {what}: {problem}; {hint}")
    return subject


def _subject_problem(subject: str, wildcards: bool | None) -> str | None:
    if not subject:
        return "it is empty"
    if _FORBIDDEN.search(subject):
        return "it has white space or a control character"
    tokens = subject.split(".")
    if not all(tokens):
        return "it has an empty token (two dots, or a dot at an end)"
    if wildcards is None:
        return None
    for i, token in enumerate(tokens):
        if token in (WILDCARD_SAME_LEVEL, HIERARCHY):
            if not wildcards:
                return f"{token!r} is a wildcard; a message goes to one concrete subject"
            if token == HIERARCHY and i < len(tokens) - 1:
                return "'>' must be the last token"
        elif wildcards and (WILDCARD_SAME_LEVEL in token or HIERARCHY in token):
            # In a subject NATS takes `th*ng` literally; in a pattern it is most likely a mistake.
            return f"the token {token!r} mixes a wildcard with other characters"
    return None


def subject_targets(
    subjects: object,
    *,
    error: type[InvalidSubjectError] = InvalidSubjectError,
    example: str = "'v1.thing.>'",
) -> list[tuple[str, Any]]:
    """The (pattern, model) pairs of a pattern, a :class:`Subject` or a list of them, each checked.

    THE normalization of what an API that listens to subjects is given; the model is ``None`` for a
    pattern string. A pattern given twice is kept once (the first one).

    Raises:
        InvalidSubjectError: A pattern is not valid (see :func:`check_subject`), or the list is empty.
        TypeError: ``subjects``, or an item of the list, is neither a string nor a Subject.

    Example:
        >>> subject_targets(["v1.thing.>", "v1.alarm.*", "v1.thing.>"])
        [('v1.thing.>', None), ('v1.alarm.*', None)]
    """
    items: Sequence[object]
    if isinstance(subjects, (str, NamedSubject)):
        items = [subjects]
    elif isinstance(subjects, Sequence):
        items = subjects
    else:
        raise TypeError(
            f"subjects must be a NATS pattern string like {example}, a Subject or a list of them, "
            f"got {type(subjects).__name__}"
        )
    targets: dict[str, Any] = {}
    for item in items:
        if isinstance(item, str):
            pattern, model = item, None
        elif isinstance(item, NamedSubject):
            pattern, model = item.name, item.msg_cls
        else:
            raise TypeError(f"each subject must be a pattern string or a Subject, got {type(item).__name__}")
        targets.setdefault(check_subject(pattern, error=error), model)
    if not targets:
        raise error(f"give at least one subject pattern, e.g. {example}")
    return list(targets.items())


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
