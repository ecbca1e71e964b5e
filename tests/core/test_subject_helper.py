"""sanitize_pub_subject_name and filter_specific_sign: the table from the API doc, and the error paths."""

from __future__ import annotations

import pytest

from fastiot.core.subject_helper import filter_specific_sign, sanitize_pub_subject_name


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        # The table of the reference documentation, in its order.
        ("MyMessage", "v1.my_message"),
        ("my_message", "v1.my_message"),
        ("MyMessage.*", "v1.my_message.*"),
        ("my_message.*", "v1.my_message.*"),
        ("v1.MyMessage", "v1.my_message"),
        ("v1.my_message", "v1.my_message"),
        ("v1.my_message.*", "v1.my_message.*"),
        # "If the suffix is a '>' instead of a '*', it will also be kept."
        ("MyMessage.>", "v1.my_message.>"),
        ("my_message.>", "v1.my_message.>"),
        ("v1.MyMessage.>", "v1.my_message.>"),
        ("v1.my_message.>", "v1.my_message.>"),
        # Everything, as the issue asks.
        (">", "v1.>"),
        ("*", "v1.*"),
        # Deeper hierarchies are converted token by token.
        ("Thing.Press1.Temp", "v1.thing.press1.temp"),
        ("v1.thing.press_1.*", "v1.thing.press_1.*"),
    ],
)
def test_sanitize_pub_subject_name_table(given: str, expected: str) -> None:
    assert sanitize_pub_subject_name(given) == expected


@pytest.mark.parametrize("name", ["v1.my_message", "v1.my_message.*", "v1.>", "v1.thing.press_1.temp"])
def test_sanitize_is_idempotent(name: str) -> None:
    assert sanitize_pub_subject_name(sanitize_pub_subject_name(name)) == name


@pytest.mark.parametrize("bad", ["", "a..b", ".my_message", "my_message.", "v1..x", "."])
def test_sanitize_rejects_empty_tokens_with_a_clear_message(bad: str) -> None:
    with pytest.raises(ValueError, match="empty token"):
        sanitize_pub_subject_name(bad)


@pytest.mark.parametrize("bad", [None, 1, b"v1.my_message"])
def test_sanitize_rejects_non_strings(bad: object) -> None:
    with pytest.raises(TypeError, match="must be a str"):
        sanitize_pub_subject_name(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        # FastIoT's behaviour: spaces and `*` go, then empty tokens; the rest stays.
        ("thing.*", "thing"),  # how FastIoT's object storage makes a reply subject of a pattern
        ("my sensor.*.temp", "mysensor.temp"),
        ("my sensor#1", "mysensor#1"),
        ("press_1", "press_1"),
        ("a.b", "a.b"),
        ("a..b", "a.b"),
        (" .x. ", "x"),
        ("*", ""),
        (">", ">"),
        ("", ""),
        # Beyond FastIoT: other whitespace goes too, as no subject may hold it.
        ("tab\there", "tabhere"),
    ],
)
def test_filter_specific_sign(given: str, expected: str) -> None:
    assert filter_specific_sign(given) == expected
