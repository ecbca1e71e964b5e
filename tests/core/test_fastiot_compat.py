"""Code written for FastIoT 1.1 runs unchanged: hierarchical subjects, default_subject, FastIoT's names."""

from __future__ import annotations

import importlib

import pytest

from fastiot.core import FastIoTPublish, FastIoTRequest, FastIoTResponse
from fastiot.core.subject_helper import HIERARCHY, MSG_FORMAT_VERSION, WILDCARD_SAME_LEVEL
from fastiot.exceptions import FastIoTError, SubjectHierarchyError
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
