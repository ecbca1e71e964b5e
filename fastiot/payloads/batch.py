"""BatchDecoder: the decoder of one subscription, for one message or a batch of them.

Every view that turns many messages into rows decodes through it: a capture's buffer (a batch per
write), a recording's frame builder (a batch per read from the stream) and the subject index (one
message when somebody looks). How it decodes is chosen once, from the subscription's model and pattern:

- a pydantic model class: msgpack that validates as the model (whatever the headers say);
- ``dict``: msgpack;
- ``None``: msgpack first, as :func:`~fastiot.payloads.decode` (a ``Content-Type`` header naming text or
  JSON is tried first; one printable byte is text, see
  :func:`~fastiot.payloads.decoding.is_text_not_msgpack`); decoders registered for subjects the pattern
  may match, or ``typed=True``, send every message through :func:`~fastiot.payloads.decode`.

A batch of msgpack payloads is unpacked in one ``map`` over the C unpacker; only what is not msgpack
goes through :func:`~fastiot.payloads.decode`, one message at a time.

Example:
    >>> from fastiot.core.serialization import pack
    >>> BatchDecoder().decode_batch([pack({"a": 1}), b"x"], ["v1.x", "v1.x"])
    [{'a': 1}, Decoded(kind='text', value='x', error=None, decoder='text', note=None)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import pydantic

from fastiot.core.serialization import unpackb
from fastiot.mqtt.topics import MQTT_PUBLISH_HEADER
from fastiot.payloads.decoding import (
    Decoded,
    content_type,
    decode,
    decoders_overlap,
    error_text,
    is_text_not_msgpack,
)
from fastiot.payloads.text import fields as model_fields

__all__ = ["BatchDecoder", "ValueDecoder", "value_decoder"]

# How a BatchDecoder decodes, chosen when it is made.
_MODEL, _MSGPACK, _ANY, _DECODE = "model", "msgpack", "any", "decode"


class ValueDecoder(Protocol):
    """A decoder of one message: ``decoder(data, subject, headers=None)`` (a :class:`BatchDecoder` is one)."""

    def __call__(self, data: bytes, subject: str, headers: Mapping[str, str] | None = None, /) -> Any:
        """Decode one message's payload."""


class BatchDecoder:
    r"""Decodes the messages of one subscription, one at a time or a batch at a time.

    A result is the decoded value itself on the fast path (msgpack, the model instance, or its fields)
    and a :class:`~fastiot.payloads.Decoded` otherwise (JSON, text, registered formats, and failures
    with their error). :meth:`decoded` always gives a :class:`~fastiot.payloads.Decoded`.

    Args:
        model: The subscription's model: a pydantic model class (payloads must be msgpack that
            validates), ``dict`` (payloads must be msgpack), or ``None`` (any format).
        pattern: The subscription's pattern: decoders registered for subjects it may match are used.
        fields: Give a model's fields as a dict instead of the instance.
        typed: With ``model=None``: decode to the FastIoTData model found by each message's subject
            (as :func:`~fastiot.payloads.decode` does by default).

    Example:
        >>> decoder = BatchDecoder()
        >>> decoder(b"\x81\xa1a\x01", "v1.x")
        {'a': 1}
        >>> decoder(b"123", "v1.x", {"Content-Type": "text/plain"}).value
        '123'
    """

    __slots__ = ("_mode", "_name", "_validate", "fields", "model", "pattern", "typed")

    def __init__(
        self, model: type | None = None, *, pattern: str = ">", fields: bool = False, typed: bool = False
    ) -> None:
        self.model: type | None = model
        self.pattern: str = pattern
        self.fields: bool = fields
        self.typed: bool = typed and model is None
        self._name: str = getattr(model, "__name__", "") if model is not None else ""
        self._validate: Any = None
        if isinstance(model, type) and issubclass(model, pydantic.BaseModel):
            self._mode = _MODEL
            self._validate = model.__pydantic_validator__.validate_python
        elif model is dict:
            self._mode = _MSGPACK
        elif self.typed or decoders_overlap(pattern):
            self._mode = _DECODE
        else:
            self._mode = _ANY

    def __repr__(self) -> str:
        return f"<BatchDecoder {self._mode} {self._name or self.pattern}>"

    @property
    def msgpack_first(self) -> bool:
        """Whether it unpacks msgpack first (the fast path) and calls :func:`decode` only for the rest.

        Without a model that holds unless a decoder that may read msgpack is registered for subjects its
        pattern may match (one registered with ``never_msgpack``, Sparkplug B's, does not count).
        """
        return self._mode is not _DECODE

    # -- one message ---------------------------------------------------------------------------------

    def __call__(self, data: bytes, subject: str, headers: Mapping[str, str] | None = None, /) -> Any:
        """Decode one message: the value on the fast path, else a :class:`~fastiot.payloads.Decoded`."""
        mode = self._mode
        if mode is _ANY:
            if headers and (MQTT_PUBLISH_HEADER in headers or content_type(headers)):
                # A Content-Type decides how the payload reads; an MQTT device's is JSON or text.
                return self._with_content_type(data, subject, headers)
            try:
                value = unpackb(data)
            except Exception:
                # With the subject: decoders registered with never_msgpack (Sparkplug B) get their payloads.
                return decode(data, subject=subject or None, typed=False)
            if is_text_not_msgpack(data, value):
                return decode(data, subject=subject or None, typed=False)
            return value
        if mode is _DECODE:
            return decode(data, subject=subject, headers=headers, typed=self.typed)
        try:
            value = unpackb(data)
        except Exception as e:
            return Decoded("bytes", data, f"not msgpack ({error_text(e)})", "bytes")
        return self._validated(data, value) if mode is _MODEL else value

    def decoded(self, data: bytes, subject: str, headers: Mapping[str, str] | None = None) -> Decoded:
        r"""Decode one message into a :class:`~fastiot.payloads.Decoded` (what a view of it shows).

        Without a model it is exactly :func:`~fastiot.payloads.decode` (``typed`` as given).

        Example:
            >>> BatchDecoder(dict).decoded(b"\x01", "v1.x")
            Decoded(kind='msgpack', value=1, error=None, decoder='msgpack', note=None)
        """
        if self.model is None:
            return decode(data, subject=subject, headers=headers, typed=self.typed)
        value = self(data, subject, headers)
        if type(value) is Decoded:
            return value
        if self._mode is _MODEL:
            return Decoded("model", value, None, self._name)
        return Decoded("msgpack", value, None, "msgpack")

    # -- a batch -------------------------------------------------------------------------------------

    def decode_batch(
        self,
        datas: Sequence[bytes],
        subjects: Sequence[str],
        headers: Mapping[int, Mapping[str, str]] | None = None,
    ) -> list[Any]:
        r"""Decode the messages ``(datas[k], subjects[k])``; ``headers``: their NATS headers by index ``k``.

        Gives what calling the decoder on each message gives, in order.

        Example:
            >>> text = {"Content-Type": "text/plain"}
            >>> BatchDecoder().decode_batch([b"\x01", b"{}"], ["a", "a"], {1: text})
            [1, Decoded(kind='text', value='{}', error=None, decoder='text', note=None)]
        """
        mode = self._mode
        if mode is _DECODE:
            at = headers.get if headers else _no_headers
            typed = self.typed
            return [
                decode(data, subject=subjects[k], headers=at(k), typed=typed) for k, data in enumerate(datas)
            ]
        try:
            values = list(map(unpackb, datas))
        except Exception:
            # Not all msgpack: each message on its own (only those that fail go the slow way).
            values = [self(data, subject) for data, subject in zip(datas, subjects, strict=True)]
        else:
            if mode is _MODEL:
                values = self._validated_batch(datas, values)
            elif mode is _ANY and 1 in map(len, datas):
                for k, data in enumerate(datas):
                    if is_text_not_msgpack(data, values[k]):
                        values[k] = decode(data, subject=subjects[k] or None, typed=False)
        if headers and mode is _ANY:
            # A Content-Type decides how the payload reads, as in fastiot.payloads.decode.
            for k, row_headers in headers.items():
                values[k] = self(datas[k], subjects[k], row_headers)
        return values

    # -- helpers -------------------------------------------------------------------------------------

    def _validated(self, data: bytes, value: Any) -> Any:
        try:
            instance = self._validate(value)
        except Exception as e:
            return Decoded("bytes", data, f"does not fit {self._name}: {error_text(e)}", "bytes")
        return model_fields(instance) if self.fields else instance

    def _validated_batch(self, datas: Sequence[bytes], values: list[Any]) -> list[Any]:
        try:
            instances = list(map(self._validate, values))  # all valid: the validator in one C loop
        except Exception:
            return [self._validated(data, value) for data, value in zip(datas, values, strict=True)]
        return list(map(model_fields, instances)) if self.fields else instances

    @staticmethod
    def _with_content_type(data: bytes, subject: str, headers: Mapping[str, str]) -> Any:
        """:func:`decode` with the headers, shaped as the fast path's results (msgpack as the bare value).

        With the subject: a decoder registered for it (Sparkplug B's, on an MQTT device's topic) comes first.
        """
        decoded = decode(data, subject=subject or None, headers=headers, typed=False)
        return decoded.value if decoded.kind == "msgpack" else decoded


def _no_headers(_k: int) -> None:
    return None


def value_decoder(model: type | None = None, *, pattern: str = ">", fields: bool = False) -> BatchDecoder:
    r"""The decoder of one subscription, chosen once (a :class:`BatchDecoder`).

    Args:
        model: A pydantic model class, ``dict`` or ``None`` (see :class:`BatchDecoder`).
        pattern: The subscription's pattern: decoders registered for overlapping subjects are used.
        fields: Give a model's fields as a dict instead of the instance.

    Example:
        >>> decode_value = value_decoder()
        >>> decode_value(b"\x81\xa1a\x01", "v1.x")
        {'a': 1}
    """
    return BatchDecoder(model, pattern=pattern, fields=fields)
