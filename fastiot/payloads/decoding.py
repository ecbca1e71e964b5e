"""Decoding payloads: :func:`decode` and the decoders users register.

:func:`decode` tries, in this order: decoders registered for the subject; the subject's FastIoTData
model (see :mod:`fastiot.payloads.models`); msgpack; JSON; UTF-8 text; and, if nothing fits, the bytes
with an error that says why.

Example:
    >>> decode(b"21.5 degC")
    Decoded(kind='text', value='21.5 degC', error=None, decoder='text', note=None)
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgpack
import pydantic

from fastiot.core.serialization import unpackb
from fastiot.core.subject_helper import (
    NamedSubject,
    SubjectsArg,
    check_subject,
    patterns_overlap,
    subject_matches,
    subject_targets,
)
from fastiot.exceptions import DecoderRegistrationError, InvalidDecoderSubjectError
from fastiot.mqtt.topics import MQTT_PUBLISH_HEADER
from fastiot.payloads.models import model_for_subject
from fastiot.payloads.text import limit_depth, to_text

__all__ = [
    "KINDS",
    "Decoded",
    "content_type",
    "decode",
    "decoders_overlap",
    "error_text",
    "is_text_not_msgpack",
    "register_decoder",
    "registered_decoders",
    "unregister_decoder",
]

KINDS = ("model", "msgpack", "json", "text", "bytes")
"""The kinds of the built-in decoders; a registered decoder's results have its name as kind."""

_MAX_ERROR_TEXT = 500
# C0 control characters other than tab, line feed and carriage return, and DEL: binary, not text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Decoded:
    r"""A decoded payload.

    Attributes:
        kind: ``"model"``, ``"msgpack"``, ``"json"``, ``"text"`` or ``"bytes"`` for the built-in
            decoders; the name of a registered decoder for its results.
        value: The decoded value: a model instance, dict, list, number, str, ... or the bytes.
        error: ``None`` if the payload decoded; else why nothing fit (``kind`` is then ``"bytes"``).
        decoder: What decoded it: the kind, or the model's class name for kind ``"model"``.
        note: Something worth knowing that is no error, e.g. that the payload did not fit the
            subject's model and was read as plain msgpack.

    Example:
        >>> decode(b"\xc1").error.startswith("not msgpack")
        True
    """

    kind: str
    value: Any
    error: str | None = None
    decoder: str = ""
    note: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the payload decoded (``error is None``)."""
        return self.error is None

    def to_text(self, max_chars: int | None = None) -> str:
        """The value as readable text (JSON-like; see :func:`to_text`), or the error."""
        return self.error if self.error is not None else to_text(self.value, max_chars=max_chars)


def error_text(error: BaseException) -> str:
    """A short one-line description of an exception (validation errors field by field)."""
    if isinstance(error, pydantic.ValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in error.errors()]
        detail = f"{error.error_count()} validation error(s): " + "; ".join(parts)
    else:
        detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return detail if len(detail) <= _MAX_ERROR_TEXT else detail[: _MAX_ERROR_TEXT - 3] + "..."


# -- registered decoders ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Registered:
    name: str
    function: Callable[..., Any]
    subjects: tuple[str, ...]
    with_subject: bool = False
    never_msgpack: bool = False


_decoders: dict[str, _Registered] = {}


def register_decoder(
    name: str,
    function: Callable[..., Any],
    subjects: SubjectsArg = ">",
    *,
    with_subject: bool = False,
    never_msgpack: bool = False,
) -> None:
    """Decode payloads on matching subjects with ``function`` before trying the built-in formats.

    ``function(data)`` returns the decoded value, or raises if the payload is not its format; then
    the next decoder is tried. Decoders registered later are tried first; registering a name again
    replaces the decoder. A capture picks its decoders when it starts.

    Args:
        name: The decoder's name; it becomes :attr:`Decoded.kind` of what it decodes.
        function: Takes the payload bytes, returns the value.
        subjects: A NATS pattern, a :class:`Subject` or a list of them; the decoder is tried on matching
            subjects only.
        with_subject: Call ``function(data, subject)`` with the subject the payload arrived on (``None``
            if unknown), for formats whose meaning depends on the sender (Sparkplug B's aliases).
        never_msgpack: Its payloads never unpack as msgpack (e.g. protobuf): captures may keep unpacking
            msgpack first on overlapping subjects and call it only for payloads that are not msgpack.

    Raises:
        DecoderRegistrationError: If the name is empty or ``function`` is not callable.
        InvalidDecoderSubjectError: A pattern is no NATS pattern, or there is none (an
            :class:`InvalidSubjectError` and a ``DecoderRegistrationError``).

    Example:
        >>> import cbor2  # doctest: +SKIP
        >>> register_decoder("cbor", cbor2.loads, subjects="sensors.cbor.>")  # doctest: +SKIP
    """
    if not isinstance(name, str) or not name:
        raise DecoderRegistrationError(f"a decoder needs a name, e.g. 'protobuf', got {name!r}")
    if not callable(function):
        raise DecoderRegistrationError(
            f"the decoder {name!r} must be a function taking the payload bytes, got {type(function).__name__}"
        )
    patterns = tuple(p for p, _ in subject_targets(subjects, error=InvalidDecoderSubjectError))
    _decoders.pop(name, None)
    _decoders[name] = _Registered(name, function, patterns, with_subject, never_msgpack)


def unregister_decoder(name: str) -> bool:
    """Forget a registered decoder; returns whether one of that name was registered."""
    return _decoders.pop(name, None) is not None


def registered_decoders() -> dict[str, tuple[str, ...]]:
    """The registered decoders' names and subject patterns, in the order they are tried."""
    return {r.name: r.subjects for r in reversed(_decoders.values())}


def decoders_overlap(pattern: str) -> bool:
    """Whether a decoder that may read msgpack is registered for a subject that ``pattern`` may match.

    Decoders registered with ``never_msgpack`` (Sparkplug B's protobuf) do not count: a decoder may then
    keep unpacking msgpack first and hand them only what is not msgpack.
    """
    return any(
        patterns_overlap(pattern, p) for r in _decoders.values() if not r.never_msgpack for p in r.subjects
    )


def _decoders_for(subject: str | None) -> list[_Registered]:
    if not _decoders:
        return []
    found = reversed(_decoders.values())
    if subject is None:
        return [r for r in found if ">" in r.subjects]
    return [r for r in found if any(subject_matches(subject, p) for p in r.subjects)]


def _text(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if _CONTROL.search(text) else text


def is_text_not_msgpack(data: bytes, value: Any) -> bool:
    r"""Whether a payload that unpacked as msgpack to ``value`` is text all the same: one printable byte.

    ``b"5"`` is the msgpack int 53, but what ``nats pub subject 5`` sends is text. Every decoder that
    tries msgpack first asks this (:func:`decode` and :class:`~fastiot.payloads.BatchDecoder`).

    Example:
        >>> is_text_not_msgpack(b"5", 53), is_text_not_msgpack(b"\x05", 5)
        (True, False)
    """
    return type(value) is int and len(data) == 1 and 0x20 <= data[0] < 0x7F


def content_type(headers: Mapping[str, str] | None) -> str:
    """The ``Content-Type`` of NATS headers, lower case (``""`` without one); the key in any case."""
    if not headers:
        return ""
    for key, value in headers.items():
        if key.lower() == "content-type":
            return str(value).lower()
    return ""


@functools.lru_cache(maxsize=4096)
def _check_arrival_subject(subject: str) -> None:
    """Check a subject once: messages arrive on the same few subjects again and again."""
    check_subject(subject, wildcards=False)


def decode(
    data: bytes,
    *,
    subject: str | NamedSubject | None = None,
    headers: Mapping[str, str] | None = None,
    typed: bool = True,
) -> Decoded:
    """Decode a payload: registered decoders, the subject's model, msgpack, JSON, UTF-8 text, bytes.

    A ``Content-Type`` header naming JSON or text is tried first. A payload on a model's subject that
    does not fit the model is returned as plain msgpack/JSON with a :attr:`Decoded.note`.

    Args:
        data: The payload bytes.
        subject: The subject it arrived on (selects registered decoders and the model), as a string or
            a :class:`Subject` (whose model is then the one decoded to).
        headers: The message's NATS headers, if any.
        typed: Decode to the subject's FastIoTData model when there is one.

    Example:
        >>> from fastiot.core.serialization import pack
        >>> decode(pack({"a": 1}))
        Decoded(kind='msgpack', value={'a': 1}, error=None, decoder='msgpack', note=None)
        >>> decode(b"21.5 degC").kind
        'text'

    Raises:
        InvalidSubjectError: ``subject`` is not a NATS subject (wildcards, empty tokens, white space).
    """
    model: type[pydantic.BaseModel] | None = None
    if subject is not None:
        # A str first: isinstance() of a Protocol is slow, and decode() runs for every message.
        if not isinstance(subject, str) and isinstance(subject, NamedSubject):
            msg_cls = subject.msg_cls
            model = msg_cls if isinstance(msg_cls, type) and issubclass(msg_cls, pydantic.BaseModel) else None
            subject = subject.name
        _check_arrival_subject(subject)
    failures: list[str] = []
    for registered in _decoders_for(subject):
        try:
            value = (
                registered.function(data, subject) if registered.with_subject else registered.function(data)
            )
        except Exception as e:
            failures.append(f"not {registered.name} ({error_text(e)})")
            continue
        if isinstance(value, Decoded):
            return value
        return Decoded(registered.name, limit_depth(value), None, registered.name)
    media_type = content_type(headers)
    if media_type.startswith("text/"):
        text = _text(data)
        if text is not None:
            return Decoded("text", text, None, "text")
    # MQTT devices send JSON or text, never FastIoT's msgpack: JSON first spares a failed unpack.
    prefer_json = "json" in media_type or bool(headers and MQTT_PUBLISH_HEADER in headers)
    kind, value = _structured(data, prefer_json=prefer_json, failures=failures)
    if kind is None:
        text = _text(data)
        if text is not None:
            return Decoded("text", text, None, "text")
        failures.append("not UTF-8 text")
        return Decoded("bytes", data, ", ".join(failures), "bytes")
    value = limit_depth(value)
    if not typed:
        model = None
    elif model is None and subject:
        model = model_for_subject(subject)
    if model is not None and isinstance(value, dict):
        try:
            instance = model.__pydantic_validator__.validate_python(value)
        except (pydantic.ValidationError, RecursionError, ValueError, TypeError) as e:
            return Decoded(kind, value, None, kind, f"does not fit {model.__name__}: {error_text(e)}")
        return Decoded("model", instance, None, model.__name__)
    return Decoded(kind, value, None, kind)


def _structured(data: bytes, *, prefer_json: bool, failures: list[str]) -> tuple[str | None, Any]:
    order = ("json", "msgpack") if prefer_json else ("msgpack", "json")
    for kind in order:
        try:
            if kind == "msgpack":
                value = unpackb(data)
                if is_text_not_msgpack(data, value):
                    raise ValueError("a single printable character is taken as text")
            else:
                value = json.loads(data)
        except (ValueError, TypeError, OverflowError, RecursionError, msgpack.exceptions.ExtraData) as e:
            failures.append(f"not {'msgpack' if kind == 'msgpack' else 'JSON'} ({error_text(e)})")
            continue
        return kind, value
    return None, None
