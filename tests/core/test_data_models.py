"""Data models: subjects from class names, Thing, UTC datetimes everywhere, request/reply subjects."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Optional

import pydantic
import pytest

import fastiot.core
from fastiot.core.core_uuid import get_uuid
from fastiot.core.data_models import (
    FastIoTData,
    FastIoTPublish,
    FastIoTRequest,
    FastIoTResponse,
    ReplySubject,
    Subject,
)
from fastiot.core.time import ensure_tzinfo, get_time_now
from fastiot.msg.thing import Thing

CET = timezone(timedelta(hours=1), "CET")


class MySpecialModel(FastIoTPublish):
    value: int = 0


class MachineState(FastIoTPublish):
    machine: str
    running: bool


class StatusReply(FastIoTResponse):
    ok: bool


class StatusRequest(FastIoTRequest):
    _reply_cls = StatusReply
    machine: str


class DictReplyRequest(FastIoTRequest):
    _reply_cls = dict


class NoReplyClsRequest(FastIoTRequest):
    pass


class Inner(FastIoTData):
    at: datetime


class Stamped(FastIoTPublish):
    start: datetime
    end: Optional[datetime] = None  # noqa: UP045 - the Optional spelling must work too
    maybe: datetime | None = None
    history: list[datetime] = []
    by_name: dict[str, datetime] = {}
    inner: Optional[Inner] = None  # noqa: UP045
    day: Optional[date] = None  # noqa: UP045


# --- subjects from class names ---------------------------------------------------------------------


def test_subject_name_comes_from_the_class_name() -> None:
    subject = MySpecialModel.get_subject()
    assert isinstance(subject, Subject)
    assert subject.name == "v1.my_special_model"
    assert subject.msg_cls is MySpecialModel
    assert MachineState.get_subject().name == "v1.machine_state"


def test_subject_name_with_a_hierarchy() -> None:
    assert MachineState.get_subject("press_1").name == "v1.machine_state.press_1"
    assert MachineState.get_subject("*").name == "v1.machine_state.*"
    assert MachineState.get_subject(">").name == "v1.machine_state.>"


def test_response_has_no_subject_of_its_own() -> None:
    with pytest.raises(NotImplementedError, match="get_reply_subject"):
        StatusReply.get_subject()


def test_core_package_reexports_the_public_api() -> None:
    expected = {
        "FastIoTPublish",
        "FastIoTRequest",
        "FastIoTResponse",
        "Subject",
        "ReplySubject",
        "FastIoTService",
        "subscribe",
        "reply",
        "loop",
    }
    assert expected <= set(fastiot.core.__all__)
    for name in expected:
        assert getattr(fastiot.core, name) is not None


# --- Subject / ReplySubject ------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "a b", "a..b", ".a", "a."])
def test_subject_rejects_invalid_names(bad: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="is not a NATS subject"):
        Subject(name=bad, msg_cls=dict)


def test_subject_rejects_a_msg_cls_that_is_no_model() -> None:
    with pytest.raises(TypeError, match="msg_cls must be"):
        Subject(name="v1.x", msg_cls=int)
    with pytest.raises(TypeError, match="msg_cls must be"):
        Subject(name="v1.x", msg_cls=MachineState(machine="m", running=True))


def test_subject_is_frozen_and_hashable() -> None:
    subject = MachineState.get_subject()
    with pytest.raises(pydantic.ValidationError):
        subject.name = "v1.other"  # type: ignore[misc]
    assert subject == MachineState.get_subject()
    assert hash(subject) == hash(MachineState.get_subject())


def test_request_reply_subject() -> None:
    assert StatusRequest._reply_cls is StatusReply
    subject = StatusRequest.get_reply_subject()
    assert isinstance(subject, ReplySubject)
    assert subject.name == "v1.status_request"
    assert subject.msg_cls is StatusRequest
    assert subject.reply_cls is StatusReply
    assert StatusRequest.get_reply_subject("press_1").name == "v1.status_request.press_1"
    assert DictReplyRequest.get_reply_subject().reply_cls is dict


def test_request_without_reply_cls_says_how_to_fix_it() -> None:
    with pytest.raises(TypeError, match="_reply_cls"):
        NoReplyClsRequest.get_reply_subject()


def test_reply_cls_is_a_class_attribute_not_a_field() -> None:
    assert "_reply_cls" not in StatusRequest.model_fields
    request = StatusRequest(machine="press_1")
    assert request.model_dump() == {"machine": "press_1"}


def test_make_generic_reply_inbox_is_unique_and_typed() -> None:
    subject = StatusRequest.get_reply_subject()
    inboxes = {subject.make_generic_reply_inbox().name for _ in range(100)}
    assert len(inboxes) == 100
    inbox = subject.make_generic_reply_inbox()
    assert isinstance(inbox, Subject)
    assert inbox.name.startswith("_INBOX.")
    assert inbox.msg_cls is StatusReply


def test_get_reply_inbox_uses_the_given_inbox() -> None:
    inbox = StatusRequest.get_reply_subject().get_reply_inbox("_INBOX.abc.123")
    assert isinstance(inbox, Subject)
    assert inbox.name == "_INBOX.abc.123"
    assert inbox.msg_cls is StatusReply


def test_reply_subject_rejects_a_bad_reply_cls() -> None:
    with pytest.raises(TypeError, match="msg_cls must be"):
        ReplySubject(name="v1.x", msg_cls=dict, reply_cls=str)


# --- Thing -----------------------------------------------------------------------------------------


def test_thing_needs_a_hierarchical_subject() -> None:
    with pytest.raises(RuntimeError, match=r"hierarchical.*Thing.get_subject\('my_sensor'\)"):
        Thing.get_subject()


def test_thing_subject() -> None:
    subject = Thing.get_subject("press_1.temp")
    assert subject.name == "v1.thing.press_1.temp"
    assert subject.msg_cls is Thing
    assert Thing.get_subject(">").name == "v1.thing.>"


def test_thing_fields_and_defaults() -> None:
    before = get_time_now()
    thing = Thing(machine="press_1", name="temp", value=21.5)
    after = get_time_now()
    assert thing.unit == ""
    assert thing.value == 21.5
    assert thing.timestamp.tzinfo is timezone.utc
    assert before <= thing.timestamp <= after
    uuid.UUID(thing.measurement_id)  # a valid UUID
    with pytest.raises(pydantic.ValidationError):
        Thing(name="temp", value=1)  # machine is required


@pytest.mark.parametrize("value", [1, 2.5, "on", True, None, [1, 2], {"a": [1, {"b": 2}]}])
def test_thing_value_is_any(value: object) -> None:
    assert Thing(machine="m", name="n", value=value).value == value


def test_thing_measurement_id_is_one_uuid_per_process() -> None:
    first = Thing(machine="m", name="a", value=1).measurement_id
    second = Thing(machine="m", name="b", value=2).measurement_id
    assert first == second
    uuid.UUID(first)
    code = "from fastiot.msg.thing import Thing; print(Thing(machine='m', name='n', value=1).measurement_id)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTIOT_")}
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, env=env)
    assert other.returncode == 0, other.stderr
    other_id = other.stdout.strip()
    uuid.UUID(other_id)
    assert other_id != first


def test_thing_measurement_id_can_be_given() -> None:
    assert Thing(machine="m", name="n", value=1, measurement_id="run-7").measurement_id == "run-7"


# --- UTC datetimes ---------------------------------------------------------------------------------


def test_naive_thing_timestamp_is_taken_as_utc() -> None:
    thing = Thing(machine="m", name="n", value=1, timestamp=datetime(2024, 5, 1, 12, 0))
    assert thing.timestamp == datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    assert thing.timestamp.tzinfo is timezone.utc


def test_aware_thing_timestamp_is_converted_to_utc() -> None:
    thing = Thing(machine="m", name="n", value=1, timestamp=datetime(2024, 5, 1, 12, 0, tzinfo=CET))
    assert thing.timestamp.tzinfo is timezone.utc
    assert thing.timestamp.hour == 11
    assert thing.timestamp == datetime(2024, 5, 1, 11, 0, tzinfo=timezone.utc)


def test_iso_string_timestamps_are_normalized_too() -> None:
    thing = Thing(machine="m", name="n", value=1, timestamp="2024-05-01T12:00:00+02:00")
    assert thing.timestamp == datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc)
    assert thing.timestamp.tzinfo is timezone.utc
    naive = Thing(machine="m", name="n", value=1, timestamp="2024-05-01T12:00:00")
    assert naive.timestamp == datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def _assert_utc(value: datetime, expected: datetime) -> None:
    assert value.tzinfo is not None and value.utcoffset() == timedelta(0), value
    assert value == expected


def test_every_datetime_field_is_utc() -> None:
    naive = datetime(2024, 1, 1, 8, 0)
    aware = datetime(2024, 1, 1, 8, 0, tzinfo=CET)
    utc_naive = naive.replace(tzinfo=timezone.utc)
    utc_aware = datetime(2024, 1, 1, 7, 0, tzinfo=timezone.utc)
    model = Stamped(
        start=naive,
        end=aware,
        maybe=naive,
        history=[naive, aware],
        by_name={"a": naive, "b": aware},
        inner=Inner(at=aware),
        day=date(2024, 1, 1),
    )
    _assert_utc(model.start, utc_naive)
    assert model.end is not None and model.maybe is not None and model.inner is not None
    _assert_utc(model.end, utc_aware)
    _assert_utc(model.maybe, utc_naive)
    _assert_utc(model.history[0], utc_naive)
    _assert_utc(model.history[1], utc_aware)
    _assert_utc(model.by_name["a"], utc_naive)
    _assert_utc(model.by_name["b"], utc_aware)
    _assert_utc(model.inner.at, utc_aware)
    assert model.day == date(2024, 1, 1)


def test_assignment_keeps_datetimes_utc() -> None:
    thing = Thing(machine="m", name="n", value=1)
    thing.timestamp = datetime(2024, 1, 1, 8, 0, tzinfo=CET)
    _assert_utc(thing.timestamp, datetime(2024, 1, 1, 7, 0, tzinfo=timezone.utc))
    thing.timestamp = datetime(2024, 1, 1, 8, 0)
    _assert_utc(thing.timestamp, datetime(2024, 1, 1, 8, 0, tzinfo=timezone.utc))
    thing.value = 5
    assert thing.value == 5


def test_ensure_tzinfo_and_get_time_now() -> None:
    assert ensure_tzinfo(datetime(2024, 1, 1)) == datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert ensure_tzinfo(datetime(2024, 1, 1, 1, tzinfo=CET)) == datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert ensure_tzinfo(datetime(2024, 1, 1, 1, tzinfo=CET)).tzinfo is timezone.utc
    assert ensure_tzinfo(5) == 5
    assert ensure_tzinfo("2024") == "2024"
    now = get_time_now()
    assert now.tzinfo is timezone.utc
    assert abs((datetime.now(timezone.utc) - now).total_seconds()) < 5


def test_get_uuid_is_canonical_and_unique() -> None:
    ids = {get_uuid() for _ in range(1000)}
    assert len(ids) == 1000
    for value in list(ids)[:10]:
        assert str(uuid.UUID(value)) == value  # lowercase, with dashes
        assert len(value) == 36


def test_containers_without_datetimes_are_left_as_they_are() -> None:
    class Bag(FastIoTPublish):
        items: list[int] = []
        meta: dict[str, int] = {}

    bag = Bag()
    items = [1, 2]
    bag.items = items
    assert bag.items is items  # assignment keeps the object, as in plain pydantic
    meta = {"a": 1}
    bag.meta = meta
    assert bag.meta is meta
    stamps = [datetime(2024, 1, 1)]
    stamped = Stamped(start=datetime(2024, 1, 1))
    stamped.history = stamps
    assert stamped.history == [datetime(2024, 1, 1, tzinfo=timezone.utc)]
