"""msgpack serialization: round trips, the type check, and clear errors on bad bytes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import msgpack
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastiot.core.data_models import FastIoTPublish, FastIoTRequest, FastIoTResponse
from fastiot.core.serialization import serialize_from_bin, serialize_to_bin
from fastiot.exceptions import DeserializationError
from fastiot.msg.thing import Thing


class Point(FastIoTPublish):
    x: float
    y: float


class Shape(FastIoTPublish):
    name: str
    corners: list[Point]
    tags: dict[str, int] = {}
    created: datetime | None = None
    blob: bytes = b""


class AddReply(FastIoTResponse):
    total: int


class AddRequest(FastIoTRequest):
    _reply_cls = AddReply
    a: int
    b: int


def test_thing_round_trip() -> None:
    thing = Thing(machine="press_1", name="temp", value=21.5, unit="degC")
    data = serialize_to_bin(Thing, thing)
    assert isinstance(data, bytes)
    back = serialize_from_bin(Thing, data)
    assert isinstance(back, Thing)
    assert back == thing
    assert back.timestamp.tzinfo is not None and back.timestamp.utcoffset() == timedelta(0)


def test_nested_model_round_trip() -> None:
    shape = Shape(
        name="triangle",
        corners=[Point(x=0, y=0), Point(x=1, y=0), Point(x=0, y=1)],
        tags={"a": 1},
        created=datetime(2024, 1, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2))),
        blob=b"\x00\xff",
    )
    back = serialize_from_bin(Shape, serialize_to_bin(Shape, shape))
    assert back == shape
    assert back.created == datetime(2024, 1, 1, 10, 30, 15, 123456, tzinfo=timezone.utc)
    assert back.blob == b"\x00\xff"


def test_request_and_response_round_trip() -> None:
    assert serialize_from_bin(AddRequest, serialize_to_bin(AddRequest, AddRequest(a=1, b=2))) == AddRequest(
        a=1, b=2
    )
    assert serialize_from_bin(AddReply, serialize_to_bin(AddReply, AddReply(total=3))) == AddReply(total=3)


def test_dict_round_trip_with_datetimes() -> None:
    msg = {"a": 1, "b": [1, "x", None, True], "c": {"d": 2.5}, "when": datetime(2024, 1, 1, 8)}
    back = serialize_from_bin(dict, serialize_to_bin(dict, msg))
    assert back["a"] == 1 and back["b"] == [1, "x", None, True] and back["c"] == {"d": 2.5}
    # naive datetimes travel as UTC and come back timezone-aware
    assert back["when"] == datetime(2024, 1, 1, 8, tzinfo=timezone.utc)


def test_wire_format_is_plain_msgpack() -> None:
    """Another FastIoT implementation (or a bare nats-py client) can read the payload."""
    data = serialize_to_bin(Point, Point(x=1.0, y=2.0))
    assert msgpack.unpackb(data) == {"x": 1.0, "y": 2.0}
    assert serialize_from_bin(Point, msgpack.packb({"x": 3.0, "y": 4.0})) == Point(x=3.0, y=4.0)


def test_serialize_to_bin_checks_the_model() -> None:
    with pytest.raises(TypeError, match=r"expected a Thing message.*got Point"):
        serialize_to_bin(Thing, Point(x=1, y=2))
    with pytest.raises(TypeError, match=r"expected a Point message.*got dict"):
        serialize_to_bin(Point, {"x": 1, "y": 2})
    with pytest.raises(TypeError, match=r"expected a dict message.*got int"):
        serialize_to_bin(dict, 5)


def test_serialize_to_bin_rejects_values_msgpack_cannot_hold() -> None:
    with pytest.raises(TypeError, match="cannot serialize object"):
        serialize_to_bin(dict, {"x": object()})
    with pytest.raises(TypeError, match="cannot serialize"):
        serialize_to_bin(Thing, Thing(machine="m", name="n", value=complex(1, 2)))


@pytest.mark.parametrize("bad", [b"\xc1", b"\x92\x01", b"\x81\xa1a\x01\x02", b"", b"\xd9"])
def test_bad_bytes_raise_deserialization_error(bad: bytes) -> None:
    with pytest.raises(DeserializationError, match="not valid msgpack") as info:
        serialize_from_bin(Thing, bad)
    assert isinstance(info.value, ValueError)  # so `except ValueError` still catches it
    with pytest.raises(DeserializationError):
        serialize_from_bin(dict, bad)


def test_payload_that_does_not_fit_the_model_raises_validation_error() -> None:
    with pytest.raises(pydantic.ValidationError):
        serialize_from_bin(Point, serialize_to_bin(dict, {"x": "not a number", "y": 1}))
    with pytest.raises(pydantic.ValidationError):
        serialize_from_bin(Point, serialize_to_bin(dict, {"x": 1}))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(value=json_values, machine=st.text(max_size=20), unit=st.text(max_size=5))
def test_thing_round_trip_property(value: object, machine: str, unit: str) -> None:
    thing = Thing(machine=machine, name="n", value=value, unit=unit)
    assert serialize_from_bin(Thing, serialize_to_bin(Thing, thing)) == thing


@settings(max_examples=100, deadline=None)
@given(when=st.datetimes(timezones=st.none() | st.timezones()))
def test_datetime_round_trip_property(when: datetime) -> None:
    thing = Thing(machine="m", name="n", value=1, timestamp=when)
    back = serialize_from_bin(Thing, serialize_to_bin(Thing, thing))
    expected = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
    assert back.timestamp == expected
    assert back.timestamp.utcoffset() == timedelta(0)


@pytest.mark.parametrize("big", [2**64, -(2**63) - 1])
def test_integers_beyond_64_bits_say_so(big: int) -> None:
    with pytest.raises(TypeError, match=f"the integer {big} does not fit into 64 bits"):
        serialize_to_bin(Thing, Thing(machine="m", name="n", value=big))


@pytest.mark.parametrize("edge", [2**64 - 1, -(2**63)])
def test_integers_at_the_64_bit_edges_round_trip(edge: int) -> None:
    assert serialize_from_bin(dict, serialize_to_bin(dict, {"v": edge})) == {"v": edge}


def test_enum_values_travel_as_their_value() -> None:
    import enum

    class Mode(enum.Enum):
        AUTO = "auto"
        MANUAL = 2

    data = serialize_to_bin(dict, {"mode": Mode.AUTO, "other": Mode.MANUAL})
    assert serialize_from_bin(dict, data) == {"mode": "auto", "other": 2}


def test_a_dict_subject_reads_the_json_mqtt_devices_send_and_models_stay_msgpack() -> None:
    assert serialize_from_bin(dict, b' {"ENERGY": {"Power": 12}}') == {"ENERGY": {"Power": 12}}
    assert serialize_from_bin(dict, b"[1, 2]") == [1, 2]
    assert serialize_from_bin(dict, serialize_to_bin(dict, {"a": 1})) == {"a": 1}
    for not_json in (b"ON", b"{not json", b"\xc1"):
        with pytest.raises(DeserializationError, match="not valid msgpack"):
            serialize_from_bin(dict, not_json)

    class Reading(pydantic.BaseModel):
        value: int

    with pytest.raises(DeserializationError):
        serialize_from_bin(Reading, b'{"value": 1}')  # FastIoT's wire format for a model's subject
