"""Payloads: one way to decode, compare and address the data in NATS messages, for every view.

Captures, the subject index and browser, tables and recordings all decode through :func:`decode`,
so a payload reads the same everywhere. It tries, in this order: decoders registered for the subject
(:func:`register_decoder`, e.g. Protobuf or CBOR); the :class:`~fastiot.core.data_models.FastIoTData`
model whose subject the message is on (typed decoding: every such model defined in the process is
known by its subject, :func:`model_for_subject`); msgpack (FastIoT's wire format); JSON; UTF-8 text
(what ``nats pub`` sends); and, if nothing fits, the bytes with an error saying why.

Paths name a field in a decoded payload: keys joined with ``.`` (``sensors.temp.value``), list
items by index (``samples.0``), a key that holds a ``.`` quoted as ``["a.b"]``
(``readings["temp.1"].value``). :func:`diff`, :func:`get_path` and :func:`flatten` use them.

- :mod:`~fastiot.payloads.decoding`: :func:`decode`, :class:`Decoded`, registered decoders;
- :mod:`~fastiot.payloads.batch`: :class:`BatchDecoder`, one subscription's decoder for a message or a
  batch (what captures, recordings and the subject index decode with);
- :mod:`~fastiot.payloads.models`: typed decoding, models found by subject;
- :mod:`~fastiot.payloads.paths`: :func:`get_path`, :func:`flatten`, :func:`diff`;
- :mod:`~fastiot.payloads.text`: :func:`to_text`, :func:`limit_depth` (values of any depth as text).

Example:
    >>> from fastiot.payloads import decode, diff
    >>> decode(b'{"temp": 21.5}').kind
    'json'
    >>> decode(b"hello").value
    'hello'
    >>> diff({"temp": 21.5, "unit": "C"}, {"temp": 22.0, "unit": "C"})
    [('temp', 21.5, 22.0)]
"""

from __future__ import annotations

from fastiot.payloads.batch import BatchDecoder, ValueDecoder, value_decoder
from fastiot.payloads.decoding import (
    KINDS,
    Decoded,
    decode,
    error_text,
    register_decoder,
    registered_decoders,
    unregister_decoder,
)
from fastiot.payloads.models import model_for_subject, model_schema, models
from fastiot.payloads.paths import MISSING, diff, flatten, get_path, join_path, split_path
from fastiot.payloads.text import DEFAULT_MAX_DEPTH, limit_depth, to_text

from fastiot.mqtt.sparkplug import register_sparkplug_decoder  # isort: skip  (needs the decoders above)

# Sparkplug B (MQTT topics spBv1.0/#) decodes by default; a decoder a user registers later is tried first.
register_sparkplug_decoder()

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "KINDS",
    "MISSING",
    "BatchDecoder",
    "Decoded",
    "ValueDecoder",
    "decode",
    "diff",
    "error_text",
    "flatten",
    "get_path",
    "join_path",
    "limit_depth",
    "model_for_subject",
    "model_schema",
    "models",
    "register_decoder",
    "registered_decoders",
    "split_path",
    "to_text",
    "unregister_decoder",
    "value_decoder",
]
