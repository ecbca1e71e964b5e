"""Property-based fuzzing (hypothesis) of serialization and the subject helper.

Serialization: anything msgpack can carry round-trips, and no byte string makes decoding raise
anything but DeserializationError or pydantic's ValidationError (so a subscription can always report
it as a bad message). The subject helper never crashes on arbitrary text and is idempotent.
"""

from __future__ import annotations

import struct
from datetime import datetime, timezone

import msgpack
import pydantic
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fastiot.core.data_models import FastIoTPublish, Subject
from fastiot.core.serialization import serialize_from_bin, serialize_to_bin
from fastiot.core.subject_helper import filter_specific_sign, sanitize_pub_subject_name
from fastiot.exceptions import DeserializationError
from fastiot.msg.thing import Thing

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DECODE_ERRORS = (DeserializationError, pydantic.ValidationError)


class Sample(FastIoTPublish):
    name: str
    values: list[float]
    tags: dict[str, int] = {}
    when: datetime | None = None
    blob: bytes = b""


# Everything msgpack carries: None, bool, 64-bit ints, floats, str, bytes, lists and str-keyed maps.
plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(max_size=64),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)
utc_datetimes = st.datetimes(timezones=st.just(timezone.utc))


@FUZZ
@given(message=st.dictionaries(st.text(max_size=10), plain | utc_datetimes, max_size=8))
def test_dict_messages_round_trip(message: dict[str, object]) -> None:
    assert serialize_from_bin(dict, serialize_to_bin(dict, message)) == message


@FUZZ
@given(
    sample=st.builds(
        Sample,
        name=st.text(),
        values=st.lists(st.floats(allow_nan=False), max_size=10),
        tags=st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1), max_size=5),
        when=st.none() | st.datetimes(timezones=st.none() | st.timezones()),
        blob=st.binary(max_size=100),
    )
)
def test_models_round_trip(sample: Sample) -> None:
    assert serialize_from_bin(Sample, serialize_to_bin(Sample, sample)) == sample


def decodes_or_fails_cleanly(msg_cls: type, data: bytes) -> None:
    try:
        serialize_from_bin(msg_cls, data)
    except DECODE_ERRORS:
        pass


# Payloads found worth keeping: each once raised something else, or sits on an edge.
KNOWN_BAD = [
    b"",
    b"\xc1",  # the one byte msgpack never uses
    b"\xc7\x0c\xff" + struct.pack(">Iq", 0, 2**62),  # a Timestamp beyond datetime: OverflowError
    b"\xc7\x0c\xff" + struct.pack(">Iq", 0, -(2**62)),
    b"\xd7\xff" + b"\xff" * 8,  # Timestamp with nanoseconds out of range
    b"\xd5\xff\x00\x01",  # Timestamp of the wrong length
    b"\x81\x91\x01\x02",  # a map with a list as key
    b"\x81\x80\x02",  # a map with a map as key
    b"\x91" * 100_000,  # deeper than msgpack's stack
    b"\x83\xa7machine\xa1m\xa4name\xa1n\xa5value" + b"\x91" * 1000 + b"\x01",  # a Thing nested 1000 deep
    b"\xdd\xff\xff\xff\xff",  # an array announcing 4 billion items
    b"\xdb\xff\xff\xff\xff",  # a str announcing 4 GiB
]


@pytest.mark.parametrize("data", KNOWN_BAD, ids=range(len(KNOWN_BAD)))
@pytest.mark.parametrize("msg_cls", [dict, Thing, Sample])
def test_known_bad_payloads_fail_cleanly(msg_cls: type, data: bytes) -> None:
    decodes_or_fails_cleanly(msg_cls, data)


@FUZZ
@given(data=st.binary(max_size=512))
@example(data=b"\x80")  # an empty map: valid msgpack, invalid Thing
def test_arbitrary_bytes_raise_only_decode_errors(data: bytes) -> None:
    for msg_cls in (dict, Thing, Sample):
        decodes_or_fails_cleanly(msg_cls, data)


@FUZZ
@given(value=plain, cut=st.integers(min_value=0))
def test_valid_msgpack_of_any_shape_and_its_truncations_fail_cleanly(value: object, cut: int) -> None:
    data = msgpack.packb(value, use_bin_type=True)
    for msg_cls in (Thing, Sample):
        decodes_or_fails_cleanly(msg_cls, data)
    if data:
        truncated = data[: cut % len(data)]
        with pytest.raises(DeserializationError):
            serialize_from_bin(dict, truncated)


@FUZZ
@given(
    fields=st.fixed_dictionaries(
        {},
        optional={
            "machine": plain,
            "name": plain,
            "value": plain,
            "unit": plain,
            "timestamp": plain | utc_datetimes,
            "measurement_id": plain,
        },
    )
)
def test_thing_shaped_maps_either_validate_or_raise_validation_error(fields: dict[str, object]) -> None:
    data = msgpack.packb(fields, use_bin_type=True, datetime=True)
    try:
        thing = serialize_from_bin(Thing, data)
    except pydantic.ValidationError:
        return
    assert isinstance(thing, Thing)
    assert thing.timestamp.tzinfo is not None


@FUZZ
@given(name=st.text())
@example(name=">")
@example(name="V1.x")
@example(name="v1")
@example(name="İstanbul.Ωmega")  # lower() changes the length of some characters
@example(name=" a.b\x1c")  # str.strip() removes more than spaces
def test_sanitize_never_crashes_and_is_idempotent(name: str) -> None:
    try:
        result = sanitize_pub_subject_name(name)
    except ValueError:
        return
    assert result.startswith("v1")
    assert sanitize_pub_subject_name(result) == result


@FUZZ
@given(name=st.from_regex(r"[A-Za-z0-9_\-*>.]{1,40}", fullmatch=True))
def test_sanitize_of_subject_like_names_gives_valid_subjects(name: str) -> None:
    try:
        result = sanitize_pub_subject_name(name)
    except ValueError as e:
        assert "empty token" in str(e)
        return
    assert sanitize_pub_subject_name(result) == result
    assert Subject(name=result, msg_cls=dict).name == result


@FUZZ
@given(value=st.none() | st.integers() | st.binary() | st.lists(st.text()) | st.floats())
def test_sanitize_rejects_non_strings_with_type_error(value: object) -> None:
    with pytest.raises(TypeError, match="must be a str"):
        sanitize_pub_subject_name(value)  # type: ignore[arg-type]


@FUZZ
@given(name=st.text())
def test_filter_specific_sign_drops_whitespace_wildcards_and_empty_tokens(name: str) -> None:
    result = filter_specific_sign(name)
    assert "*" not in result and not any(c.isspace() for c in result)
    assert "" not in result.split(".") or result == ""
    assert filter_specific_sign(result) == result
    if "*" not in name and not any(c.isspace() for c in name) and "" not in name.split("."):
        assert result == name
