"""One subject-pattern check: every API that takes a subject or pattern refuses the same mistakes with the
same error (ours, never nats-py's), and takes a string, a Subject or a list of them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from fastiot import payloads
from fastiot.capture import MessageCapture
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.serialization import pack
from fastiot.core.subject_helper import check_subject, subject_targets
from fastiot.exceptions import (
    DecoderRegistrationError,
    InvalidRecordingError,
    InvalidSubjectError,
    SubjectTooLongError,
)
from fastiot.history import Recording
from fastiot.msg.thing import Thing
from fastiot.series import LiveSeries
from fastiot.subjects import SubjectIndex

# Mistakes every API refuses, whether it takes a pattern or a concrete subject.
BAD_SUBJECTS = ["v1.>.x", "a..b", ".a", "a.", "a b", "a\tb", "v1.thing\n", ""]


async def _ignore(msg: Any) -> None:
    pass


def _sync(call: Callable[[str], Any]) -> Callable[[NatsBrokerConnection, str], Awaitable[Any]]:
    async def run(broker: NatsBrokerConnection, subject: str) -> Any:
        return call(subject)

    return run


async def _set_pattern(broker: NatsBrokerConnection, subject: str) -> None:
    await SubjectIndex(">", broker).set_pattern(subject)


async def _record(broker: NatsBrokerConnection, subject: str) -> None:
    await Recording.start("never_made", subject, connection=broker)


async def _subscribe(broker: NatsBrokerConnection, subject: str) -> None:
    await broker.subscribe_raw(subject, _ignore)


async def _publish(broker: NatsBrokerConnection, subject: str) -> None:
    await broker.publish_raw(subject, b"x")


async def _request(broker: NatsBrokerConnection, subject: str) -> None:
    await broker.request_raw(subject, b"x", timeout=1)


APIS: dict[str, Callable[[NatsBrokerConnection, str], Awaitable[Any]]] = {
    "check_subject": _sync(check_subject),
    "MessageCapture": _sync(MessageCapture),
    "MessageCapture(list)": _sync(lambda s: MessageCapture(["v1.ok.>", s])),
    "SubjectIndex": _sync(SubjectIndex),
    "SubjectIndex.set_pattern": _set_pattern,
    "LiveSeries": _sync(LiveSeries),
    "Recording.start": _record,
    "register_decoder": _sync(lambda s: payloads.register_decoder("never", bytes, subjects=s)),
    "payloads.decode": _sync(lambda s: payloads.decode(pack(1), subject=s)),
    "subscribe_raw": _subscribe,
    "publish_raw": _publish,
    "request_raw": _request,
}


@pytest.mark.parametrize("api", list(APIS))
@pytest.mark.parametrize("subject", BAD_SUBJECTS)
async def test_every_api_refuses_the_same_mistake_with_the_same_error(
    broker: NatsBrokerConnection, api: str, subject: str
) -> None:
    with pytest.raises(InvalidSubjectError, match="is not a NATS subject") as info:
        await APIS[api](broker, subject)
    assert isinstance(info.value, ValueError), "code that caught ValueError keeps working"
    assert "register_decoder" not in api or isinstance(info.value, DecoderRegistrationError)
    assert "Recording" not in api or isinstance(info.value, InvalidRecordingError)
    assert broker.is_connected, "a refused subject never reaches the server"


def test_the_error_says_what_is_wrong_and_what_to_write() -> None:
    with pytest.raises(InvalidSubjectError, match=r"'>' must be the last token.*e\.g\. 'v1\.thing\.>'"):
        check_subject("v1.>.x")
    with pytest.raises(InvalidSubjectError, match="empty token"):
        check_subject("a..b")
    with pytest.raises(InvalidSubjectError, match="a wildcard; a message goes to one concrete subject"):
        check_subject("v1.thing.>", wildcards=False)
    with pytest.raises(InvalidSubjectError, match="mixes a wildcard"):
        check_subject("v1.th*ng")
    assert check_subject("v1.th*ng", wildcards=False) == "v1.th*ng", "NATS takes it literally in a subject"
    assert isinstance(SubjectTooLongError("x"), InvalidSubjectError)


def test_a_pattern_a_subject_or_a_list_of_them_is_normalized_in_one_place() -> None:
    temp = Thing.get_subject("press_1.temp")
    assert subject_targets("v1.a.>") == [("v1.a.>", None)]
    assert subject_targets(temp) == [("v1.thing.press_1.temp", Thing)]
    assert subject_targets([temp, "v1.a.>", temp]) == [("v1.thing.press_1.temp", Thing), ("v1.a.>", None)]
    with pytest.raises(InvalidSubjectError, match="at least one"):
        subject_targets([])
    with pytest.raises(TypeError, match="pattern string or a Subject"):
        subject_targets(["v1.a", 5])


def test_every_api_takes_a_subject_and_a_list() -> None:
    temp = Thing.get_subject("press_1.temp")
    assert MessageCapture(temp).patterns == ["v1.thing.press_1.temp"]
    assert MessageCapture([temp, "v1.a.>"]).patterns == ["v1.thing.press_1.temp", "v1.a.>"]
    assert SubjectIndex(Thing.get_subject(">")).pattern == "v1.thing.>"
    assert SubjectIndex([temp]).pattern == "v1.thing.press_1.temp"
    assert LiveSeries(temp).subjects == ["v1.thing.press_1.temp"]
    assert LiveSeries([temp, "v1.a.>"]).subjects == ["v1.thing.press_1.temp", "v1.a.>"]
    payloads.register_decoder("test_subject_check", bytes, subjects=[temp, "v1.b.>"])
    try:
        assert payloads.registered_decoders()["test_subject_check"] == ("v1.thing.press_1.temp", "v1.b.>")
    finally:
        payloads.unregister_decoder("test_subject_check")


def test_decode_takes_a_subject_and_decodes_to_its_model() -> None:
    thing = Thing(machine="press_1", name="temp", value=21.5)
    decoded = payloads.decode(pack(thing), subject=Thing.get_subject("press_1.temp"))
    assert decoded.kind == "model" and decoded.value == thing
    assert payloads.decode(pack(thing), subject="v1.thing.press_1.temp").value == thing
