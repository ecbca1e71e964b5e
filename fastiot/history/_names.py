"""Names and subjects of recordings: checked here, before anything reaches the server.

Example:
    >>> subject_patterns(["v1.thing.>", "v1.alarm.*"])
    ['v1.thing.>', 'v1.alarm.*']
    >>> patterns_overlap("v1.thing.>", "v1.*.press_1")
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

from fastiot.core.data_models import Subject
from fastiot.exceptions import InvalidRecordingError

__all__ = [
    "MAX_NAME_LENGTH",
    "RecordingSubjects",
    "check_prefix",
    "check_stream_name",
    "pattern_matches",
    "patterns_overlap",
    "subject_patterns",
]

# What a recording records: a NATS pattern, a Subject, or a list of them.
RecordingSubjects = Union[str, Subject, Sequence[Union[str, Subject]]]  # noqa: UP007 - a runtime alias

MAX_NAME_LENGTH = 255  # nats-server's limit for stream names
_FORBIDDEN_IN_NAMES = set(".*>/\\")


def check_stream_name(name: object, what: str = "recording name") -> str:
    """``name`` if JetStream accepts it as a stream name.

    Raises:
        InvalidRecordingError: It is empty, too long, or has whitespace, ``. * > / \\`` or control characters.
    """
    if not isinstance(name, str) or not name:
        raise InvalidRecordingError(f"a {what} must be a non-empty string, got {name!r}; e.g. 'plant_night'")
    bad = sorted({c for c in name if c in _FORBIDDEN_IN_NAMES or c.isspace() or not c.isprintable()})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise InvalidRecordingError(
            f"{name!r} is not a valid {what}: JetStream stream names may not contain {shown} (nor spaces, "
            f"'.', '*', '>', '/' or '\\'); use letters, digits, '-' and '_', e.g. "
            f"{''.join(c if c.isalnum() or c in '-_' else '_' for c in name)!r}"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidRecordingError(
            f"the {what} is {len(name)} characters long; JetStream allows at most {MAX_NAME_LENGTH}"
        )
    return name


def _check_pattern(pattern: str) -> str:
    tokens = pattern.split(".")
    valid = bool(pattern) and not any(c.isspace() for c in pattern) and all(tokens)
    valid = valid and all(t in ("*", ">") or ("*" not in t and ">" not in t) for t in tokens)
    valid = valid and ">" not in tokens[:-1]
    if not valid:
        raise InvalidRecordingError(
            f"{pattern!r} is not a NATS subject pattern; use dot separated tokens, '*' for one token and "
            f"'>' for the rest at the end, e.g. 'v1.thing.>'"
        )
    return pattern


def subject_patterns(subjects: RecordingSubjects) -> list[str]:
    """The patterns of a pattern, a :class:`Subject` or a list of them (duplicates dropped).

    Raises:
        InvalidRecordingError: A pattern is malformed, the list is empty, or an item is of another type.
    """
    items: Sequence[object]
    if isinstance(subjects, (str, Subject)):
        items = [subjects]
    elif isinstance(subjects, Sequence):
        items = subjects
    else:
        raise InvalidRecordingError(
            f"subjects must be a pattern like 'v1.thing.>', a Subject or a list of them, "
            f"got {type(subjects).__name__}"
        )
    patterns: list[str] = []
    for item in items:
        if isinstance(item, Subject):
            pattern = item.name
        elif isinstance(item, str):
            pattern = item
        else:
            raise InvalidRecordingError(f"each subject must be a pattern or a Subject, got {item!r}")
        if _check_pattern(pattern) not in patterns:
            patterns.append(pattern)
    if not patterns:
        raise InvalidRecordingError("give at least one subject pattern to record, e.g. 'v1.thing.>'")
    return patterns


def check_prefix(prefix: str) -> str:
    """``prefix`` if it can go in front of a subject (``prefix + "." + subject``).

    Raises:
        InvalidRecordingError: It is empty, has wildcards or whitespace, or starts or ends with a dot.
    """
    if not isinstance(prefix, str) or not prefix:
        raise InvalidRecordingError(
            f"subject_prefix must be a non-empty string like 'replay', got {prefix!r}"
        )
    tokens = prefix.split(".")
    if not all(tokens) or any(c.isspace() for c in prefix) or "*" in prefix or ">" in prefix:
        raise InvalidRecordingError(
            f"subject_prefix {prefix!r} must be plain subject tokens without wildcards, e.g. 'replay' or "
            f"'test.replay' (messages go to PREFIX.SUBJECT)"
        )
    return prefix


def pattern_matches(pattern: str, subject: str) -> bool:
    """Whether the NATS ``pattern`` matches the plain ``subject``."""
    return patterns_overlap(pattern, subject)


def patterns_overlap(a: str, b: str) -> bool:
    """Whether some subject matches both NATS patterns ``a`` and ``b``."""
    ta, tb = a.split("."), b.split(".")
    for i in range(max(len(ta), len(tb))):
        x = ta[i] if i < len(ta) else None
        y = tb[i] if i < len(tb) else None
        if x == ">" or y == ">":
            return x is not None and y is not None
        if x is None or y is None:
            return False
        if x != y and x != "*" and y != "*":
            return False
    return True
