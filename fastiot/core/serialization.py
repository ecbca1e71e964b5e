"""msgpack serialization, FastIoT's wire format.

Datetimes travel as msgpack Timestamps (extension type -1) and decode to timezone-aware UTC.

Example:
    >>> data = serialize_to_bin(dict, {"a": 1})
    >>> serialize_from_bin(dict, data)
    {'a': 1}
"""

from __future__ import annotations

import datetime as _dt
import enum
from typing import Any

import msgpack
from pydantic import BaseModel

from fastiot.core.time import ensure_tzinfo
from fastiot.exceptions import DeserializationError

__all__ = ["pack", "serialize_from_bin", "serialize_to_bin", "unpack"]


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


_packer_options: dict[str, Any] = {"default": _default, "use_bin_type": True, "datetime": False}


def pack(obj: Any) -> bytes:
    """msgpack-encode plain Python data (datetimes become Timestamps)."""
    return msgpack.packb(obj, **_packer_options)


def unpack(data: bytes) -> Any:
    """msgpack-decode bytes; Timestamps become timezone-aware UTC datetimes.

    Raises:
        DeserializationError: If the bytes are not one complete msgpack value.
    """
    try:
        return msgpack.unpackb(data, raw=False, timestamp=3, strict_map_key=False)
    except (ValueError, TypeError, msgpack.exceptions.ExtraData) as e:
        kind = type(e).__name__
        detail = str(e) or "not valid msgpack"
        raise DeserializationError(f"payload is not valid msgpack ({kind}: {detail})") from e


def serialize_to_bin(msg_cls: type, msg: Any) -> bytes:
    """Serialize a message to bytes, checking it is of the subject's model.

    Note that msgpack serializes plain Python types only: numpy scalars, for example, must be
    converted first.

    Raises:
        TypeError: If ``msg_cls`` is a model and ``msg`` is not an instance of it, or a value cannot
            be serialized.
    """
    if isinstance(msg_cls, type) and issubclass(msg_cls, BaseModel):
        if not isinstance(msg, msg_cls):
            raise TypeError(
                f"expected a {msg_cls.__name__} message for this subject, got {type(msg).__name__}; "
                f"build it as {msg_cls.__name__}(...) or use a subject whose msg_cls is dict"
            )
        return pack(msg.model_dump())
    if not isinstance(msg, dict):
        if isinstance(msg, BaseModel):
            return pack(msg.model_dump())
        raise TypeError(f"expected a dict message for this subject, got {type(msg).__name__}")
    return pack(msg)


def serialize_from_bin(msg_cls: type, data: bytes) -> Any:
    """Deserialize bytes to a message of ``msg_cls`` (a pydantic model, or dict).

    Raises:
        DeserializationError: If the bytes are not msgpack (a ValueError).
        pydantic.ValidationError: If the payload does not fit the model.
    """
    unpacked = unpack(data)
    if isinstance(msg_cls, type) and issubclass(msg_cls, BaseModel):
        return msg_cls.model_validate(unpacked)
    return unpacked
