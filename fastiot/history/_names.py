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
from fastiot.core.subject_helper import check_subject, patterns_overlap, subject_targets
from fastiot.exceptions import InvalidRecordingError, InvalidRecordingSubjectError, InvalidSubjectError

__all__ = [
    "MAX_NAME_LENGTH",
    "RecordingSubjects",
    "check_prefix",
    "check_stream_name",
    "patterns_overlap",
    "subject_patterns",
]

# What a recording records: a NATS pattern, a Subject, or a list of them.
RecordingSubjects = Union[str, Subject, Sequence[Union[str, Subject]]]  # noqa: UP007 - a runtime alias

MAX_NAME_LENGTH = 255  # nats-server's limit for stream names
_FORBIDDEN_IN_NAMES = set(".*>/\\")


def check_stream_name(name: object, what: str = "recording name") -> str:
    r"""``name`` if JetStream accepts it as a stream name.

    Raises:
        InvalidRecordingError: It is empty, too long, or has whitespace, ``. * > / \`` or control characters.
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


def subject_patterns(subjects: RecordingSubjects) -> list[str]:
    """The patterns of a pattern, a :class:`Subject` or a list of them (duplicates dropped).

    Checked by :func:`fastiot.core.subject_helper.subject_targets`, as every API checks patterns.

    Raises:
        InvalidRecordingSubjectError: A pattern is malformed or the list is empty (an
            :class:`InvalidRecordingError` and an :class:`InvalidSubjectError`).
        InvalidRecordingError: ``subjects``, or an item of it, is neither a pattern nor a Subject.
    """
    try:
        targets = subject_targets(subjects, error=InvalidRecordingSubjectError)
    except TypeError as e:
        raise InvalidRecordingError(str(e)) from None
    return [pattern for pattern, _ in targets]


def check_prefix(prefix: str) -> str:
    """``prefix`` if it can go in front of a subject (``prefix + "." + subject``).

    Raises:
        InvalidRecordingError: It is empty, has wildcards or whitespace, or starts or ends with a dot.
    """
    if not isinstance(prefix, str) or not prefix:
        raise InvalidRecordingError(
            f"subject_prefix must be a non-empty string like 'replay', got {prefix!r}"
        )
    # No wildcard character at all: in front of every replayed subject even a literal `*` would mislead.
    bad = "*" in prefix or ">" in prefix
    try:
        check_subject(prefix, wildcards=False)
    except InvalidSubjectError:
        bad = True
    if bad:
        raise InvalidRecordingSubjectError(
            f"subject_prefix {prefix!r} must be plain subject tokens without wildcards, e.g. 'replay' or "
            f"'test.replay' (messages go to PREFIX.SUBJECT)"
        )
    return prefix
