"""msgpack serialization, FastIoT's wire format.

Datetimes travel as msgpack Timestamps (extension type -1) and decode to timezone-aware UTC.

A ``dict`` subject also reads a JSON object or array where msgpack fails: MQTT devices (Tasmota, Shelly,
Node-RED) publish JSON, so ``Subject(name="tele.*.SENSOR", msg_cls=dict)`` receives their telemetry. Such
bytes are never valid msgpack (a ``{`` or ``[`` is one small integer, the rest would be extra data), so
msgpack payloads decode exactly as before. A model's subject stays msgpack only: FastIoT's wire format.

Example:
    >>> data = serialize_to_bin(dict, {"a": 1})
    >>> serialize_from_bin(dict, data)
    {'a': 1}
"""

from __future__ import annotations

import datetime as _dt
import enum
import functools
import json
import threading
from collections.abc import Callable
from typing import Any

import msgpack
from pydantic import BaseModel

from fastiot.core.data_models import FastIoTData, Msg, MsgCls
from fastiot.core.time import ensure_tzinfo
from fastiot.exceptions import DeserializationError

# FastIoTData, Msg and MsgCls are data_models' names: FastIoT's serialization module has them too.
__all__ = [
    "FastIoTData",
    "Msg",
    "MsgCls",
    "decoder_for",
    "pack",
    "serialize_from_bin",
    "serialize_to_bin",
    "unpack",
    "unpackb",
]

_msgpack_unpackb = msgpack.unpackb


def unpackb(data: bytes) -> Any:
    """``msgpack.unpackb`` with the one set of options FastIoT reads its wire format with.

    Text as ``str``, Timestamps as timezone-aware UTC datetimes (``timestamp=3``), map keys of any type
    (other clients send int keys). Services, captures, subject indexes and the payload decoder all
    unpack with this; it raises msgpack's own errors (hot paths catch them). Keyword arguments written
    out are the fastest call there is: ``functools.partial`` with keywords costs ~0.2 us more.

    Example:
        >>> unpackb(pack({"a": 1}))
        {'a': 1}
    """
    return _msgpack_unpackb(data, raw=False, timestamp=3, strict_map_key=False)


def _default(obj: Any) -> Any:
    if isinstance(obj, _dt.datetime):
        return msgpack.Timestamp.from_datetime(ensure_tzinfo(obj))
    if isinstance(obj, BaseModel):
        return obj.model_dump()
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, _dt.date):
        return obj.isoformat()
    if isinstance(obj, int):  # msgpack hands back only the ints it cannot hold
        raise TypeError(f"the integer {obj} does not fit into 64 bits; send it as a str or float instead")
    raise TypeError(
        f"cannot serialize {type(obj).__name__} with msgpack; convert it to a plain Python type "
        f"(int, float, str, bytes, list, dict, datetime) first"
    )


# With datetime=True msgpack writes aware datetimes as Timestamps in C; naive ones still go to _default.
_packer_options: dict[str, Any] = {"default": _default, "use_bin_type": True, "datetime": True}
# msgpack.packb() builds a Packer and its buffer on every call, which costs more than packing a small
# message. One Packer per thread: _default runs Python code, during which another thread could use it.
_thread_local = threading.local()


def _packer() -> msgpack.Packer:
    try:
        return _thread_local.packer
    except AttributeError:
        packer = _thread_local.packer = msgpack.Packer(**_packer_options)
        return packer


def pack(obj: Any) -> bytes:
    """msgpack-encode plain Python data (datetimes become Timestamps)."""
    return _packer().pack(obj)  # type: ignore[no-any-return]


# Per model class: is its __dict__ what model_dump() would give? Then it is packed as it is.
_dumps_as_dict: dict[type, bool] = {}


def _customizes_serialization(schema: Any) -> bool:
    if isinstance(schema, dict):
        if "serialization" in schema or schema.get("computed_fields") or schema.get("serialization_exclude"):
            return True
        return any(_customizes_serialization(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_customizes_serialization(v) for v in schema)
    return False


def _check_dumps_as_dict(cls: type[BaseModel]) -> bool:
    # Not with extra fields, computed or excluded fields, or a custom serializer anywhere in the schema.
    # Nested models are fine: _default dumps them.
    try:
        schema = cls.__pydantic_core_schema__
        return cls.model_config.get("extra") != "allow" and not _customizes_serialization(schema)
    except Exception:  # not fully defined yet (forward references): take the safe path
        return False


def _dump(msg: Any) -> Any:
    cls = type(msg)
    as_dict = _dumps_as_dict.get(cls)
    if as_dict is None:
        as_dict = _dumps_as_dict[cls] = _check_dumps_as_dict(cls)
    return msg.__dict__ if as_dict else msg.model_dump()


@functools.lru_cache(maxsize=1024)
def _is_model_class(msg_cls: Any) -> bool:
    # issubclass() through pydantic's ABC metaclass costs more than this lookup, on every message.
    return isinstance(msg_cls, type) and issubclass(msg_cls, BaseModel)


def unpack(data: bytes) -> Any:
    """msgpack-decode bytes; Timestamps become timezone-aware UTC datetimes.

    Raises:
        DeserializationError: If the bytes are not one complete msgpack value.
    """
    try:
        return unpackb(data)
    except _UNPACK_ERRORS as e:
        raise _not_msgpack(e) from e


def _unpack_or_json(data: bytes) -> Any:
    """msgpack, else a JSON object or array (what MQTT devices send)."""
    try:
        return unpackb(data)
    except _UNPACK_ERRORS as e:
        value = _json_document(data)
        if value is _NOT_JSON:
            raise _not_msgpack(e) from e
        return value


_NOT_JSON = object()
_JSON_STARTS = (b"{", b"[")


def _json_document(data: bytes) -> Any:
    if data.lstrip()[:1] not in _JSON_STARTS:
        return _NOT_JSON
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return _NOT_JSON


# OverflowError: a Timestamp beyond what datetime holds (e.g. 2**62 seconds).
_UNPACK_ERRORS = (ValueError, TypeError, OverflowError, msgpack.exceptions.ExtraData)


def _not_msgpack(e: Exception) -> DeserializationError:
    return DeserializationError(
        f"payload is not valid msgpack ({type(e).__name__}: {e or 'not valid msgpack'})"
    )


def _too_deep(msg_cls: type) -> DeserializationError:
    # msgpack nests up to 1024 levels; walking them for datetimes can exceed Python's stack.
    return DeserializationError(
        f"payload for {msg_cls.__name__} is nested too deeply to validate; send flatter data"
    )


@functools.lru_cache(maxsize=1024)
def decoder_for(msg_cls: type) -> Callable[[bytes], Any]:
    """``serialize_from_bin(msg_cls, ...)`` as one function, made once per model.

    Subscriptions decode every message with it: the per-message work is the unpacking and the
    validation alone.
    """
    if not _is_model_class(msg_cls):
        return _unpack_or_json
    validate = msg_cls.__pydantic_validator__.validate_python  # type: ignore[attr-defined]
    fast_unpackb = unpackb  # a closure variable: cheaper than a global lookup on every message

    def decode(data: bytes) -> Any:
        try:
            unpacked = fast_unpackb(data)
        except _UNPACK_ERRORS as e:
            raise _not_msgpack(e) from e
        try:
            # Not model_validate(), whose seven keyword arguments cost ~0.4 us per message.
            return validate(unpacked)
        except RecursionError:
            raise _too_deep(msg_cls) from None

    return decode


def serialize_to_bin(msg_cls: type, msg: Any) -> bytes:
    """Serialize a message to bytes, checking it is of the subject's model.

    Note that msgpack serializes plain Python types only: numpy scalars, for example, must be
    converted first.

    Raises:
        TypeError: If ``msg_cls`` is a model and ``msg`` is not an instance of it, or a value cannot
            be serialized.
    """
    if _is_model_class(msg_cls):
        if type(msg) is not msg_cls and not isinstance(msg, msg_cls):
            raise TypeError(
                f"expected a {msg_cls.__name__} message for this subject, got {type(msg).__name__}; "
                f"build it as {msg_cls.__name__}(...) or use a subject whose msg_cls is dict"
            )
        return pack(_dump(msg))
    if not isinstance(msg, dict):
        if isinstance(msg, BaseModel):
            return pack(msg.model_dump())
        raise TypeError(f"expected a dict message for this subject, got {type(msg).__name__}")
    return pack(msg)


def serialize_from_bin(msg_cls: type, data: bytes) -> Any:
    """Deserialize bytes to a message of ``msg_cls`` (a pydantic model, or dict).

    For ``dict``: msgpack, else a JSON object or array (MQTT devices' telemetry).

    Raises:
        DeserializationError: If the bytes are not msgpack (nor JSON, for dict), or nest too deeply.
        pydantic.ValidationError: If the payload does not fit the model.
    """
    return decoder_for(msg_cls)(data)
