"""fastiot.payloads and fastiot.rates without a broker: decoding, typed models, paths, diff, text, rates."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import datetime, timezone

import msgpack
import pandas as pd
import pytest

from fastiot.capture import ColumnarBuffer
from fastiot.core.data_models import FastIoTPublish, FastIoTResponse
from fastiot.core.serialization import pack
from fastiot.exceptions import DecoderRegistrationError, InvalidPathError, PathNotFoundError
from fastiot.msg.thing import Thing
from fastiot.payloads import (
    DEFAULT_MAX_DEPTH,
    MISSING,
    BatchDecoder,
    Decoded,
    decode,
    diff,
    flatten,
    get_path,
    limit_depth,
    model_for_subject,
    model_schema,
    register_decoder,
    registered_decoders,
    to_text,
    unregister_decoder,
    value_decoder,
)
from fastiot.payloads.decoding import is_text_not_msgpack
from fastiot.rates import describe_rate, message_rate

S = 1_000_000_000  # ns per second


def _nested_dict(levels: int) -> dict[str, object]:
    value: dict[str, object] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"k": value}
    return value


def _nested_list(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.fixture
def decoders() -> Iterator[list[str]]:
    """Names registered by the test, unregistered afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        unregister_decoder(name)


# -- built-in formats ------------------------------------------------------------------------------


def test_each_format_decodes_to_its_kind() -> None:
    assert decode(pack({"a": 1})) == Decoded("msgpack", {"a": 1}, None, "msgpack")
    assert decode(b'{"a": [1, 2]}') == Decoded("json", {"a": [1, 2]}, None, "json")
    text = decode("21.5 °C on press_1\n".encode())
    assert (text.kind, text.value, text.error) == ("text", "21.5 °C on press_1\n", None)
    assert decode(b"").kind == "text" and decode(b"").value == ""
    broken = decode(b"\xc1\x00\xff binary")
    assert broken.kind == "bytes" and broken.value == b"\xc1\x00\xff binary" and not broken.ok
    assert "not msgpack" in broken.error and "not JSON" in broken.error and "not UTF-8 text" in broken.error


def test_text_from_nats_pub_is_text_not_an_error() -> None:
    # What `nats pub subject "hello world"` and `nats pub subject 5` send.
    assert decode(b"hello world").kind == "text"
    assert decode(b"a").value == "a", "one printable byte is text, not the msgpack int 97"
    assert decode(b"5").value == 5 and decode(b"5").kind == "json"
    assert decode(pack(200)).value == 200, "a msgpack int that is no printable character stays an int"
    assert decode(b"line\x00with NUL").kind == "bytes", "control characters are binary"


def test_a_content_type_header_is_tried_first() -> None:
    assert decode(b"[1]", headers={"Content-Type": "text/plain"}).value == "[1]"
    assert decode(b"[1]", headers={"content-type": "application/json"}).kind == "json"
    assert decode(pack([1])).kind == "msgpack"


@pytest.mark.parametrize(
    "data, headers",
    [
        (b"123", {"Content-Type": "text/plain"}),
        (b'{"a": 1}', {"content-type": "text/plain; charset=utf-8"}),
        (b"123", {"Content-Type": "application/json"}),
        (b"123", {"origin": "no content type"}),
        (pack({"a": 1}), {"Content-Type": "application/msgpack"}),
        (b"\xff\xfe", {"Content-Type": "text/plain"}),
        (b"123", None),
    ],
)
def test_a_captures_decoder_reads_headers_as_decode_does(data: bytes, headers: dict[str, str] | None) -> None:
    expected = decode(data, headers=headers, typed=False)
    got = value_decoder()(data, "v1.x", headers)
    if type(got) is Decoded:
        assert (got.kind, got.value, got.error) == (expected.kind, expected.value, expected.error)
    else:  # the fast path's msgpack value
        assert expected.kind == "msgpack" and got == expected.value


def test_a_capture_buffer_reads_headers_as_decode_does() -> None:
    buffer = ColumnarBuffer(10)
    buffer.append("v1.x", 1, b"123", {"Content-Type": "text/plain"})
    buffer.append("v1.x", 2, b"123")
    assert buffer.to_dataframe()["value"].tolist() == ["123", 123]


# -- the batch decoder: one rule for every view -----------------------------------------------------

# Every kind of payload a subscription sees: msgpack, one printable byte (text or JSON), one byte that is
# msgpack, JSON, text, bytes that are nothing, an empty payload, a Thing, and a Thing that does not fit.
_THING = Thing(machine="press_1", name="temperature", value=21.5, unit="degC")
_MIXED = [
    pack({"a": 1}),
    b"x",
    b"7",
    b"\x05",
    b'{"j": [1]}',
    b"plain text",
    b"\xc1",
    b"",
    pack(_THING.model_dump()),
    pack({"machine": "press_1"}),
]


@pytest.mark.parametrize(
    "model, fields, registered",
    [
        (None, False, False),
        (None, False, True),
        (dict, False, False),
        (Thing, False, False),
        (Thing, True, False),
    ],
)
def test_a_batch_decodes_as_each_message_alone(
    decoders: list[str], model: type | None, fields: bool, registered: bool
) -> None:
    if registered:
        register_decoder("csv", lambda data: data.decode().split(","), subjects="v1.csv.>")
        decoders.append("csv")
    decoder = BatchDecoder(model, pattern="v1.>", fields=fields)
    subjects = ["v1.csv.x" if k % 2 else "v1.x" for k in range(len(_MIXED))]
    headers = {1: {"Content-Type": "application/json"}, 5: {"content-type": "text/plain"}, 7: {"h": "1"}}
    one_by_one = [decoder(data, subjects[k], headers.get(k)) for k, data in enumerate(_MIXED)]
    assert decoder.decode_batch(_MIXED, subjects, headers) == one_by_one
    msgpack_only = [pack({"n": n}) for n in range(5)] + [b"\x05", b"x"]  # unpacked in one map over the batch
    one_by_one = [decoder(data, "v1.x") for data in msgpack_only]
    assert decoder.decode_batch(msgpack_only, ["v1.x"] * len(msgpack_only)) == one_by_one


def test_one_printable_byte_is_text_in_every_decoder() -> None:
    """b"7" is the msgpack int 55, but `nats pub subject 7` sent the text "7" (which reads as JSON 7)."""
    payloads = [b"x", b"7", b"\x05", b"\x7f"]
    expected = [decode(data, typed=False) for data in payloads]
    assert [d.kind for d in expected] == ["text", "json", "msgpack", "msgpack"]
    assert [d.value for d in expected] == ["x", 7, 5, 127]
    assert [is_text_not_msgpack(data, msgpack.unpackb(data)) for data in payloads] == [
        True,
        True,
        False,
        False,
    ]
    decoder = BatchDecoder()
    assert [decoder.decoded(data, "v1.x") for data in payloads] == expected
    for got, want in zip(decoder.decode_batch(payloads, ["v1.x"] * 4), expected, strict=True):
        assert (got.value if type(got) is Decoded else got) == want.value
    buffer = ColumnarBuffer(10)
    for k, data in enumerate(payloads):
        buffer.append("v1.x", k, data)
    buffer.extend(["v1.x"] * 4, [4, 5, 6, 7], payloads)
    assert buffer.to_dataframe()["value"].tolist() == [d.value for d in expected] * 2


def test_a_buffer_decodes_each_row_with_the_decoder_of_its_subscription() -> None:
    """A capture of a Thing subject and a pattern: rows of both in one batch, each decoded its own way."""
    things = BatchDecoder(Thing, pattern="v1.thing.>", fields=True)
    anything = BatchDecoder(pattern="v1.raw")
    buffer = ColumnarBuffer(100)
    for i in range(6):
        buffer.append("v1.thing.press_1.temperature", i, pack(_THING.model_dump()), None, things)
        buffer.append("v1.raw", i, pack({"machine": f"m{i}"}), None, anything)
    buffer.append("v1.thing.press_1.temperature", 6, pack({"machine": "m6"}), None, things)
    frame = buffer.to_dataframe()
    assert frame["machine"].tolist()[:12] == [x for i in range(6) for x in ("press_1", f"m{i}")]
    assert buffer.errors == 1 and "does not fit Thing" in frame["error"].iloc[-1]
    assert pd.isna(frame["machine"].iloc[-1]) and frame["error"].isna().sum() == 12
    assert frame["value"].iloc[0] == 21.5 and pd.isna(frame["value"].iloc[1])


def test_a_batch_decoders_decoded_says_what_decoded_the_payload() -> None:
    assert BatchDecoder(Thing).decoded(pack(_THING.model_dump()), "v1.x") == Decoded(
        "model", _THING, None, "Thing"
    )
    assert BatchDecoder(dict).decoded(pack([1]), "v1.x") == Decoded("msgpack", [1], None, "msgpack")
    assert BatchDecoder(dict).decoded(b"{}", "v1.x").error.startswith("not msgpack")  # type: ignore[union-attr]
    typed = BatchDecoder(typed=True).decoded(pack(_THING.model_dump()), "v1.thing.press_1.temperature")
    assert typed == decode(pack(_THING.model_dump()), subject="v1.thing.press_1.temperature")
    assert typed.kind == "model"


def test_a_captures_columns_are_the_flattened_paths() -> None:
    payload = {
        "a": {"b": 1, "c.d": 2},
        "e": [1, 2],
        "": "empty key",
        "deep": _nested_dict(DEFAULT_MAX_DEPTH + 2),
    }
    buffer = ColumnarBuffer(10)
    buffer.append("v1.x", 0, pack(payload))
    buffer.append("v1.x", 1, pack(5))
    frame = buffer.to_dataframe()
    flat = flatten(payload)
    assert frame.columns.tolist()[2:] == [*flat, "value"]
    assert [frame[name].iloc[0] for name in flat] == list(flat.values())
    assert pd.isna(frame["value"].iloc[0]) and frame["value"].iloc[1] == 5 and flatten(5) == {"value": 5}


# -- typed decoding --------------------------------------------------------------------------------


def test_a_models_messages_decode_to_the_model_found_by_subject() -> None:
    thing = Thing(machine="press_1", name="temperature", value=21.5, unit="degC")
    decoded = decode(pack(thing.model_dump()), subject="v1.thing.press_1.temperature")
    assert decoded.kind == "model" and decoded.decoder == "Thing" and decoded.value == thing
    assert model_for_subject("v1.thing.press_1.temperature") is Thing
    assert model_for_subject("v1.thing") is Thing
    assert model_for_subject("v1.thingamajig") is None and model_for_subject("other.subject") is None
    untyped = decode(pack(thing.model_dump()), subject="v1.thing.press_1.temperature", typed=False)
    assert untyped.kind == "msgpack"
    as_json = decode(thing.model_dump_json().encode(), subject="v1.thing.press_1.temperature")
    assert as_json.kind == "model" and as_json.value == thing


def test_a_payload_that_does_not_fit_its_model_stays_plain_with_a_note() -> None:
    decoded = decode(pack({"machine": "press_1"}), subject="v1.thing.press_1.temperature")
    assert decoded.ok and decoded.kind == "msgpack" and decoded.value == {"machine": "press_1"}
    assert decoded.note is not None and "does not fit Thing" in decoded.note and "name" in decoded.note


def test_models_defined_later_are_found_and_the_newest_definition_wins() -> None:
    assert model_for_subject("v1.boiler_pressure.unit_7") is None  # looked up (and cached) before

    class BoilerPressure(FastIoTPublish):
        bar: float

    assert model_for_subject("v1.boiler_pressure.unit_7") is BoilerPressure
    first = BoilerPressure

    class BoilerPressure(FastIoTPublish):  # type: ignore[no-redef]  # a cell run again
        bar: float
        sensor: str = "a"

    assert model_for_subject("v1.boiler_pressure.unit_7") is BoilerPressure is not first
    decoded = decode(pack({"bar": 2.5}), subject="v1.boiler_pressure.unit_7")
    assert decoded.kind == "model" and decoded.value.sensor == "a"
    schema = model_schema("v1.boiler_pressure")
    assert schema is not None and set(schema["properties"]) == {"bar", "sensor"}
    assert model_schema("no.model.here") is None


def test_responses_have_no_subject_of_their_own() -> None:
    class StatusAnswer(FastIoTResponse):
        ok: bool

    assert model_for_subject("v1.status_answer") is None


# -- registered decoders ---------------------------------------------------------------------------


def test_registered_decoders_come_first_on_their_subjects(decoders: list[str]) -> None:
    def csv_row(data: bytes) -> list[str]:
        text = data.decode()
        if "," not in text:
            raise ValueError("no comma")
        return text.split(",")

    register_decoder("csv", csv_row, subjects=["lab.csv.>", "lab.other"])
    decoders.append("csv")
    assert decode(b"1,2,3", subject="lab.csv.a") == Decoded("csv", ["1", "2", "3"], None, "csv")
    assert decode(b"1,2,3", subject="lab.elsewhere").kind == "text", "only on matching subjects"
    assert decode(b"no comma here", subject="lab.csv.a").kind == "text", "a decoder that raises is skipped"
    assert decode(b"\xff\xfe", subject="lab.csv.a").error.startswith("not csv (")

    register_decoder("upper", lambda data: data.decode().upper(), subjects="lab.csv.>")
    decoders.append("upper")
    assert decode(b"1,2", subject="lab.csv.a").kind == "upper", "the newest registration is tried first"
    assert list(registered_decoders()) == ["upper", "csv", "sparkplug"], "Sparkplug B is there by default"
    assert unregister_decoder("upper") is True and unregister_decoder("upper") is False
    assert decode(b"1,2", subject="lab.csv.a").kind == "csv"


def test_bad_registrations_are_refused_with_a_hint() -> None:
    with pytest.raises(DecoderRegistrationError, match="needs a name"):
        register_decoder("", json.loads)
    with pytest.raises(DecoderRegistrationError, match="function taking the payload bytes"):
        register_decoder("x", "not callable")  # type: ignore[arg-type]
    with pytest.raises(DecoderRegistrationError, match="not a NATS subject pattern"):
        register_decoder("x", json.loads, subjects="a b")
    assert isinstance(DecoderRegistrationError("x"), ValueError)


# -- paths and diff --------------------------------------------------------------------------------


def test_diff_names_every_changed_added_and_removed_field_by_path() -> None:
    old = {"a": {"b": 1, "c": "x"}, "gone": 0, "list": [1, 2, 3], "sensors": {"temp.1": 20.0}, "same": [1]}
    new = {"a": {"b": 2, "c": "x"}, "list": [1, 5], "sensors": {"temp.1": 21.5}, "new": {"k": 1}, "same": [1]}
    assert diff(old, new) == [
        ("a.b", 1, 2),
        ("gone", 0, MISSING),
        ("list.1", 2, 5),
        ("list.2", 3, MISSING),
        ('sensors["temp.1"]', 20.0, 21.5),
        ("new", MISSING, {"k": 1}),
    ]
    assert diff(new, new) == []
    assert diff(1, 2) == [("", 1, 2)]
    assert diff({"v": 1}, {"v": True}) == [("v", 1, True)], "a bool is not the number it equals"
    assert diff({"v": math.nan}, {"v": math.nan}) == []
    assert diff({"v": [1]}, {"v": {"0": 1}}) == [("v", [1], {"0": 1})]
    assert repr(MISSING) == "MISSING" and not MISSING


def test_diff_compares_models_field_by_field() -> None:
    at = datetime(2024, 1, 1, tzinfo=timezone.utc)
    a = Thing(machine="m", name="t", value=1.0, timestamp=at, measurement_id="x")
    b = Thing(machine="m", name="t", value=2.0, timestamp=at, measurement_id="x")
    assert diff(a, b) == [("value", 1.0, 2.0)]


def test_get_path_reads_keys_with_dots_list_items_and_models() -> None:
    payload = {"readings": {"temp.1": {"value": 3}}, "samples": [10, 20], "plain": {"x": None}}
    assert get_path(payload, 'readings["temp.1"].value') == 3
    assert get_path(payload, ["readings", "temp.1", "value"]) == 3
    assert get_path(payload, "samples.1") == 20 and get_path(payload, "samples.-1") == 20
    assert get_path(payload, "plain.x") is None
    assert get_path(payload, "") is payload
    assert get_path(Thing(machine="m", name="t", value=7), "value") == 7
    assert get_path({1: "int key"}, "1") == "int key"
    assert get_path(payload, "readings.missing", default=None) is None
    with pytest.raises(
        PathNotFoundError, match=r"no field 'readings.temp': 'readings' has the fields 'temp.1'"
    ):
        get_path(payload, "readings.temp")
    with pytest.raises(KeyError, match="list of 2 items"):
        get_path(payload, "samples.5")
    with pytest.raises(InvalidPathError, match="quoted key"):
        get_path(payload, 'readings["temp.1')
    with pytest.raises(InvalidPathError, match="ends with"):
        get_path(payload, "readings.")


def test_flatten_uses_the_same_paths() -> None:
    flat = flatten({"a": {"b": 1, "c.d": 2}, "e": [1, 2], "m": Thing(machine="x", name="n", value=1)})
    assert flat["a.b"] == 1 and flat['a["c.d"]'] == 2 and flat["e"] == [1, 2] and flat["m.machine"] == "x"
    for path, value in flat.items():
        assert get_path({"a": {"b": 1, "c.d": 2}, "e": [1, 2]}, path, default=value) == value
    assert flatten(5) == {"value": 5}


# -- depth and text --------------------------------------------------------------------------------


def test_values_of_any_depth_become_text_without_recursion() -> None:
    deep = _nested_list(5_000)
    text = to_text(deep)
    assert text.startswith("[[[") and text.count("[") == 5_000
    limited = limit_depth(deep)
    assert isinstance(limited, list)
    node = limited
    for _ in range(DEFAULT_MAX_DEPTH):
        node = node[0]
    assert isinstance(node, str) and node.startswith("[[")
    repr(limited)  # what pandas and views do: no RecursionError
    shallow = {"a": [1, {"b": 2}]}
    assert limit_depth(shallow) is shallow, "shallow values come back as they are"
    assert to_text({"t": datetime(2024, 1, 1, tzinfo=timezone.utc), "b": b"\x01"}) == (
        '{"t": "2024-01-01T00:00:00+00:00", "b": "01"}'
    )
    assert to_text("plain text") == "plain text"
    assert (
        to_text(list(range(1000)), max_chars=20).endswith("…")
        and len(to_text(list(range(1000)), max_chars=20)) == 20
    )
    assert to_text([[[1]]], max_depth=2) == "[[[…]]]"


def test_a_deeply_nested_msgpack_payload_decodes_with_text_below_the_limit() -> None:
    data = msgpack.packb(_nested_list(1000))
    assert len(data) < 1100
    decoded = decode(data)
    assert decoded.ok and decoded.kind == "msgpack"
    repr(decoded.value)
    assert decoded.to_text().count("[") == 1000


# -- rates -----------------------------------------------------------------------------------------


def test_a_slow_subject_has_a_rate_that_is_not_zero_and_decays_when_it_stops() -> None:
    every_30_s = [i * 30 * S for i in range(10)]  # 10 messages, one each 30 s
    last = every_30_s[-1]
    live = message_rate(every_30_s, now_ns=last + 10 * S, window_ns=5 * S, first_ns=0, total=10)
    assert 1 / 40 < live < 1 / 25, "about one per 30 s, though no message in the 5 s window"
    assert describe_rate(live).endswith("/min") and describe_rate(live) == "2.1/min"
    silent = message_rate(every_30_s, now_ns=last + 3600 * S, window_ns=5 * S, first_ns=0, total=10)
    assert 0 < silent < live / 10
    assert message_rate([], now_ns=S, window_ns=5 * S, first_ns=0, total=0) == 0.0


def test_a_fast_subject_is_counted_over_the_window() -> None:
    times = [int(i * S / 100) for i in range(1000)]  # 100/s for 10 s
    now = times[-1]
    rate = message_rate(times, now_ns=now, window_ns=5 * S, first_ns=0, total=1000)
    assert 99 <= rate <= 101
    kept = times[-50:]  # only 50 kept, all within the window: the rate is over the time they span
    assert 95 <= message_rate(kept, now_ns=now, window_ns=5 * S, first_ns=0, total=1000) <= 105
    started = message_rate(times[:20], now_ns=times[19], window_ns=5 * S, first_ns=0, total=20)
    assert started == 20.0, "a history shorter than the window counts over at least one second"
    assert (
        describe_rate(0) == "0/s" and describe_rate(12.345) == "12.3/s" and describe_rate(0.5) == "30.0/min"
    )
