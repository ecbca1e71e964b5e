"""Code written for FastIoT 1.1 runs unchanged: hierarchical subjects, default_subject, FastIoT's names."""

from __future__ import annotations

import asyncio
import importlib
from typing import Optional, Type  # noqa: UP035 (as FastIoT code writes them)

import pytest

from fastiot.core import FastIoTPublish, FastIoTRequest, FastIoTResponse
from fastiot.core.broker_connection import ERROR_HEADER, NatsBrokerConnection
from fastiot.core.serialization import serialize_from_bin, serialize_to_bin
from fastiot.core.subject_helper import HIERARCHY, MSG_FORMAT_VERSION, WILDCARD_SAME_LEVEL, is_fastiot1_inbox
from fastiot.exceptions import FastIoTError, ReplyHandlerError, SubjectHierarchyError
from fastiot.msg.thing import MEASUREMENT_ID, Thing


class Command(FastIoTPublish):
    _handles_hierarchical_subjects = False
    action: str = ""


class Reading(FastIoTPublish):
    _handles_hierarchical_subjects = True
    value: float = 0.0


class Anything(FastIoTPublish):
    value: int = 0


class Pong(FastIoTResponse):
    ok: bool = True


class PingOne(FastIoTRequest):
    _handles_hierarchical_subjects = False
    _reply_cls = Pong


class Square(FastIoTResponse):
    result: int


class SquareMe(FastIoTRequest):
    _reply_cls = Square
    x: int


# As FastIoT code writes them (pydantic v1 left annotated underscore attributes as class attributes).
class AnnotatedCommand(FastIoTPublish):
    _handles_hierarchical_subjects: bool = False
    action: str = ""


class AnnotatedReading(FastIoTPublish):
    _handles_hierarchical_subjects: Optional[bool] = True  # noqa: UP045
    value: float = 0.0


class AnnotatedSquareMe(FastIoTRequest):
    _handles_hierarchical_subjects: bool = False
    _reply_cls: Type[Square] = Square  # noqa: UP006
    x: int = 0


class Sensor_Reading(FastIoTPublish):  # FastIoT code may name classes like this
    value: float = 0.0


def test_the_subject_constants_are_fastiots() -> None:
    assert (MSG_FORMAT_VERSION, HIERARCHY, WILDCARD_SAME_LEVEL) == ("v1", ">", "*")


def test_hierarchy_defaults_to_no_check() -> None:
    assert Anything._handles_hierarchical_subjects is None
    assert Anything.get_subject().name == "v1.anything"
    assert Anything.get_subject("stuff.*").name == "v1.anything.stuff.*"
    assert Anything.get_subject(">").name == "v1.anything.>"


@pytest.mark.parametrize("name", ["stuff.*", ">", "press_1.>", "*.temp"])
def test_a_model_without_hierarchy_refuses_wildcards(name: str) -> None:
    with pytest.raises(RuntimeError, match=r"no hierarchy.*Command.get_subject\(\)") as caught:
        Command.get_subject(name)
    assert isinstance(caught.value, SubjectHierarchyError) and isinstance(caught.value, FastIoTError)


def test_a_model_without_hierarchy_takes_plain_names() -> None:
    assert Command.get_subject().name == "v1.command"
    assert Command.get_subject("press_1").name == "v1.command.press_1"


def test_a_request_without_hierarchy_refuses_wildcards_too() -> None:
    assert PingOne.get_reply_subject().name == "v1.ping_one"
    with pytest.raises(RuntimeError):
        PingOne.get_reply_subject("*")


def test_a_hierarchical_model_needs_a_name_and_says_how_to_give_one() -> None:
    with pytest.raises(RuntimeError) as caught:
        Reading.get_subject()
    message = str(caught.value)
    assert "Reading.get_subject('my_sensor')" in message and "v1.reading.my_sensor" in message
    assert Reading.get_subject("stuff.*").name == "v1.reading.stuff.*"


def test_thing_is_hierarchical() -> None:
    assert Thing._handles_hierarchical_subjects is True
    with pytest.raises(RuntimeError, match=r"Thing.get_subject\('>'\)"):
        Thing.get_subject()
    assert Thing.get_subject("*").name == "v1.thing.*"


def test_spaces_are_removed_from_subject_names() -> None:
    assert Thing.get_subject("a machine.a name").name == "v1.thing.amachine.aname"
    assert Anything.get_subject(" press 1 ").name == "v1.anything.press1"


def test_default_subject_is_machine_dot_name_without_spaces() -> None:
    thing = Thing(machine="a machine", name="a name", value="1")
    subject = thing.default_subject
    assert subject.name == "v1.thing.amachine.aname"
    assert subject.msg_cls is Thing
    assert Thing(machine="press_1", name="temp", value=1).default_subject == Thing.get_subject("press_1.temp")
    assert isinstance(Thing.__dict__["default_subject"], property)  # thing.default_subject, not ()
    assert "default_subject" not in thing.model_dump()  # not sent on the wire


def test_an_annotated_hierarchy_setting_counts_as_in_fastiot() -> None:
    assert AnnotatedCommand._handles_hierarchical_subjects is False
    with pytest.raises(RuntimeError, match="no hierarchy"):
        AnnotatedCommand.get_subject("*")
    assert AnnotatedCommand.get_subject("press_1").name == "v1.annotated_command.press_1"
    with pytest.raises(RuntimeError, match=r"AnnotatedReading.get_subject\('my_sensor'\)"):
        AnnotatedReading.get_subject()
    assert AnnotatedCommand(action="go").model_dump() == {"action": "go"}


def test_an_annotated_reply_class_counts_as_in_fastiot() -> None:
    subject = AnnotatedSquareMe.get_reply_subject()
    assert (subject.name, subject.msg_cls, subject.reply_cls) == (
        "v1.annotated_square_me",
        AnnotatedSquareMe,
        Square,
    )
    assert AnnotatedSquareMe(x=2)._reply_cls is Square
    with pytest.raises(RuntimeError):
        AnnotatedSquareMe.get_reply_subject("*")


async def test_an_annotated_reply_class_is_answered(broker: NatsBrokerConnection) -> None:
    async def square(request: AnnotatedSquareMe) -> Square:
        return Square(result=request.x**2)

    subject = AnnotatedSquareMe.get_reply_subject()
    await broker.subscribe_reply_cb(subject, square)
    assert await broker.request(subject, AnnotatedSquareMe(x=7), timeout=10) == Square(result=49)


def test_class_names_convert_to_subjects_as_in_fastiot() -> None:
    # FastIoT puts an underscore before every capital but the first; both must agree on the wire.
    assert Sensor_Reading.get_subject().name == "v1.sensor__reading"


def test_measurement_id_is_the_default_of_every_thing() -> None:
    assert Thing(machine="m", name="n", value=1).measurement_id == MEASUREMENT_ID


# Public names of FastIoT 1.1.23 that code written for it imports (see README, "Coming from FastIoT").
FASTIOT_NAMES = {
    "fastiot.core": [
        "FastIoTPublish",
        "FastIoTRequest",
        "FastIoTResponse",
        "FastIoTService",
        "ReplySubject",
        "Subject",
        "loop",
        "reply",
        "subscribe",
    ],
    "fastiot.core.data_models": [
        "FastIoTData",
        "Msg",
        "MsgCls",
        "MsgPub",
        "MsgClsPub",
        "MsgReq",
        "MsgClsReq",
        "MsgResp",
        "MsgClsResp",
        "HIERARCHY",
        "MSG_FORMAT_VERSION",
        "WILDCARD_SAME_LEVEL",
    ],
    "fastiot.core.broker_connection": ["Msg", "MsgPub", "MsgReq", "MsgResp"],
    "fastiot.core.serialization": ["FastIoTData", "Msg", "MsgCls"],
    "fastiot.core.service": ["logging"],
    "fastiot.core.subject_helper": [
        "MSG_FORMAT_VERSION",
        "HIERARCHY",
        "WILDCARD_SAME_LEVEL",
        "sanitize_pub_subject_name",
        "filter_specific_sign",
    ],
    "fastiot.core.logger": ["setup_logger", "get_log_config", "logging"],
    "fastiot.msg.thing": ["Thing", "MEASUREMENT_ID"],
    "fastiot.exceptions": [
        "ShutdownRequestedInterruption",
        "ServiceError",
        "SQLSchemaCheckError",
        "CSVError",
    ],
    "fastiot.testlib": ["populate_test_env", "BackgroundProcess"],
    "fastiot": ["logging"],
}


@pytest.mark.parametrize("module", sorted(FASTIOT_NAMES))
def test_fastiot_names_import(module: str) -> None:
    imported = importlib.import_module(module)
    missing = [name for name in FASTIOT_NAMES[module] if not hasattr(imported, name)]
    assert not missing, f"{module} lacks FastIoT's {missing}"


def test_the_re_exported_names_are_the_data_models_own() -> None:
    import logging

    from fastiot.core import broker_connection, data_models, serialization, service
    from fastiot.core.logger import logging as fastiot_logging

    for module, names in (
        (broker_connection, FASTIOT_NAMES["fastiot.core.broker_connection"]),
        (serialization, FASTIOT_NAMES["fastiot.core.serialization"]),
    ):
        for name in names:
            assert getattr(module, name) is getattr(data_models, name), f"{module.__name__}.{name}"
    # FastIoT's service.logging is a logger (its root logger), not the logging module.
    assert isinstance(service.logging, logging.Logger) and service.logging is fastiot_logging


def test_fastiot_exceptions_are_fastiot_errors() -> None:
    from fastiot.exceptions import CSVError, ServiceError, SQLSchemaCheckError

    for error in (ServiceError, SQLSchemaCheckError, CSVError):
        assert issubclass(error, FastIoTError)


def test_the_message_aliases_are_fastiots() -> None:
    from typing import Union, get_args

    from fastiot.core.data_models import FastIoTData, Msg, MsgCls, MsgPub, MsgReq, MsgResp

    assert Msg == Union[FastIoTData, dict]  # noqa: UP007
    assert get_args(MsgCls) == (Msg,)
    assert set(get_args(MsgPub)) == {FastIoTPublish, dict}
    assert set(get_args(MsgReq)) == {FastIoTRequest, dict}
    assert set(get_args(MsgResp)) == {FastIoTResponse, dict}


# --- a FastIoT 1.x requester and a handler that raises ---------------------------------------------------


def test_fastiot1_inboxes_are_told_from_ours() -> None:
    assert is_fastiot1_inbox("_INBOX482113")  # FastIoT 1.x: "_INBOX" + str(random.randint(0, 10**9))
    ours = SquareMe.get_reply_subject().make_generic_reply_inbox().name
    for name in (ours, "_INBOX.abc.1", "_INBOX", "_INBOXx1", "v1.thing.x"):
        assert not is_fastiot1_inbox(name), name


async def test_a_fastiot1_requester_gets_no_error_reply(broker: NatsBrokerConnection) -> None:
    """FastIoT 1.x decodes whatever reaches its inbox as the reply and, run with main(), shuts its service
    down when that fails; so a failing handler sends it nothing, as a FastIoT replier does."""

    async def square(request: SquareMe) -> Square:
        if request.x < 0:
            raise ValueError("no negative numbers")
        return Square(result=request.x**2)

    subject = SquareMe.get_reply_subject("fastiot1")
    await broker.subscribe_reply_cb(subject, square)
    inbox: asyncio.Queue = asyncio.Queue()
    await broker.client.subscribe("_INBOX7364", cb=inbox.put)  # how FastIoT 1.x requests: its own inbox
    for x in (-1, 3):  # handled in order: an error reply to -1 would arrive first
        await broker.client.publish(
            subject.name, serialize_to_bin(SquareMe, SquareMe(x=x)), reply="_INBOX7364"
        )
    first = await asyncio.wait_for(inbox.get(), 10)
    assert not (first.headers and ERROR_HEADER in first.headers)
    assert serialize_from_bin(Square, first.data) == Square(result=9)
    # A requester of ours still gets the error at once.
    with pytest.raises(ReplyHandlerError, match="no negative numbers"):
        await broker.request(subject, SquareMe(x=-1), timeout=10)
