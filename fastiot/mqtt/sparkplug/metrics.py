"""Sparkplug B payloads as plain values: the metrics of a protobuf ``Payload`` with names, types and values.

The protobuf classes are generated from Eclipse Tahu's ``sparkplug_b.proto`` (EPL-2.0, see the
``.proto`` beside this module). Values come out as Python values: signed integers with their sign
(Sparkplug carries them as unsigned two's complement), arrays unpacked from their little-endian bytes,
data sets as ``{"columns", "types", "rows"}`` and templates as ``{"template_ref", "metrics"}``.

Example:
    >>> from fastiot.mqtt.sparkplug.metrics import payload_to_dict
    >>> from fastiot.mqtt.sparkplug import sparkplug_b_pb2 as pb
    >>> metric = pb.Payload.Metric(name="temp", datatype=pb.Float, float_value=21.5)
    >>> payload = pb.Payload(seq=1, metrics=[metric])
    >>> payload_to_dict(payload.SerializeToString())["metrics"][0]["value"]
    21.5
"""

from __future__ import annotations

import struct
from typing import Any

from fastiot.mqtt.sparkplug import sparkplug_b_pb2 as pb

__all__ = ["DATATYPES", "datatype_name", "payload_to_dict"]

DATATYPES: dict[int, str] = {number: name for name, number in pb.DataType.items()}
"""Sparkplug's datatype numbers and their names (``9: "Float"``)."""

# Signed integers travel as unsigned two's complement; the bit width says where the sign is.
_SIGNED_BITS: dict[int, int] = {pb.Int8: 8, pb.Int16: 16, pb.Int32: 32, pb.Int64: 64}
_ARRAY_FORMATS: dict[int, str] = {
    pb.Int8Array: "b",
    pb.Int16Array: "h",
    pb.Int32Array: "i",
    pb.Int64Array: "q",
    pb.UInt8Array: "B",
    pb.UInt16Array: "H",
    pb.UInt32Array: "I",
    pb.UInt64Array: "Q",
    pb.FloatArray: "f",
    pb.DoubleArray: "d",
    pb.DateTimeArray: "q",
}


def datatype_name(datatype: int) -> str:
    """The name of a Sparkplug datatype number (``"Unknown(99)"`` for a number the spec lacks).

    Args:
        datatype: The number in a metric's ``datatype`` field.

    Returns:
        The name, e.g. ``"Double"``.

    Example:
        >>> datatype_name(10)
        'Double'
    """
    return DATATYPES.get(datatype, f"Unknown({datatype})")


def _signed(value: int, datatype: int) -> int:
    bits = _SIGNED_BITS.get(datatype)
    if bits is not None and value >= 1 << (bits - 1) and value < 1 << bits:
        return value - (1 << bits)
    if bits is not None and bits < 32 and value >= 1 << 31:
        # Tahu's own encoders put a negative Int8/Int16 into the uint32 as a 32-bit two's complement.
        return value - (1 << 32)
    return value


def _array(data: bytes, datatype: int) -> Any:
    if datatype == pb.BooleanArray:
        # A 4-byte little-endian count of booleans, then the bits packed most significant first.
        if len(data) < 4:
            return []
        count = struct.unpack_from("<I", data)[0]
        bits = data[4:]
        return [bool(bits[i // 8] >> (7 - i % 8) & 1) for i in range(min(count, len(bits) * 8))]
    if datatype == pb.StringArray:
        return [part.decode("utf-8", "replace") for part in data.split(b"\0")[:-1]]
    fmt = _ARRAY_FORMATS[datatype]
    size = struct.calcsize(fmt)
    return list(struct.unpack(f"<{len(data) // size}{fmt}", data[: len(data) - len(data) % size]))


def _oneof_value(message: Any, datatype: int) -> Any:
    """The value of a ``value`` oneof (metric, property, data set cell, template parameter)."""
    field = message.WhichOneof("value")
    if field is None:
        return None
    value = getattr(message, field)
    if field in ("int_value", "long_value"):
        return _signed(value, datatype)
    if field == "bytes_value":
        return (
            _array(value, datatype)
            if datatype in _ARRAY_FORMATS
            or datatype
            in (
                pb.BooleanArray,
                pb.StringArray,
            )
            else bytes(value)
        )
    if field == "dataset_value":
        return {
            "columns": list(value.columns),
            "types": [datatype_name(t) for t in value.types],
            "rows": [
                [_oneof_value(cell, t) for cell, t in zip(row.elements, value.types, strict=False)]
                for row in value.rows
            ],
        }
    if field == "template_value":
        return {
            "template_ref": value.template_ref or None,
            "is_definition": value.is_definition,
            "metrics": [_metric(m) for m in value.metrics],
        }
    if field == "extension_value":
        return None
    return value


def _properties(properties: Any) -> dict[str, Any]:
    return {
        key: _oneof_value(value, value.type)
        for key, value in zip(properties.keys, properties.values, strict=False)
    }


def _metric(metric: Any) -> dict[str, Any]:
    datatype = metric.datatype
    found: dict[str, Any] = {
        "name": metric.name if metric.HasField("name") else None,
        "alias": metric.alias if metric.HasField("alias") else None,
        "datatype": datatype_name(datatype),
        "value": None if metric.is_null else _oneof_value(metric, datatype),
        "timestamp": metric.timestamp if metric.HasField("timestamp") else None,
    }
    if metric.is_historical:
        found["is_historical"] = True
    if metric.is_transient:
        found["is_transient"] = True
    if metric.HasField("properties"):
        found["properties"] = _properties(metric.properties)
    return found


def payload_to_dict(data: bytes) -> dict[str, Any]:
    """Decode a Sparkplug B payload to ``{"timestamp", "seq", "metrics": [...]}``.

    Each metric is ``{"name", "alias", "datatype", "value", "timestamp"}`` (plus ``properties``,
    ``is_historical``, ``is_transient`` when set). Names are as sent: a data message that uses aliases
    has ``name: None``; :class:`~fastiot.mqtt.sparkplug.state.SparkplugNodes` fills them in from the
    birth certificate.

    Args:
        data: The payload bytes.

    Returns:
        The payload as a dict (``uuid`` and ``body`` only when present).

    Raises:
        ValueError: If ``data`` is no Sparkplug B payload (the next decoder is then tried).

    Example:
        >>> payload_to_dict(pb.Payload(seq=4).SerializeToString())
        {'timestamp': None, 'seq': 4, 'metrics': []}
    """
    from google.protobuf.message import DecodeError

    payload = pb.Payload()
    try:
        payload.ParseFromString(data)
    except DecodeError as e:
        raise ValueError(f"not a Sparkplug B payload: {e}") from e
    found: dict[str, Any] = {
        "timestamp": payload.timestamp if payload.HasField("timestamp") else None,
        "seq": payload.seq if payload.HasField("seq") else None,
        "metrics": [_metric(m) for m in payload.metrics],
    }
    if payload.HasField("uuid"):
        found["uuid"] = payload.uuid
    if payload.HasField("body"):
        found["body"] = bytes(payload.body)
    return found
