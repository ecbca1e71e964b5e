"""Publisher, headless: forms filled through .values, sent with .click() or await, against a real broker."""

from __future__ import annotations

import asyncio
import enum
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Optional

import ipywidgets as widgets
import pytest

from fastiot.core import FastIoTPublish, FastIoTRequest, FastIoTResponse, FastIoTService, reply
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.data_models import Subject
from fastiot.msg.thing import Thing
from fastiot.runner import ServiceRunner
from fastiot_widgets import Publisher
from fastiot_widgets.publisher import FormError
from tests.waits import wait_for_trait


class Mode(str, enum.Enum):
    AUTO = "auto"
    MANUAL = "manual"


class Setpoint(FastIoTPublish):
    machine: str
    target: float
    steps: int
    enabled: bool
    mode: Mode
    unit: Literal["degC", "K"] = "degC"
    valid_from: datetime
    note: Optional[str] = None  # noqa: UP045 - the form must understand both spellings
    limit: int | None = None
    tags: list[str] = []
    extra: dict[str, Any] = {}


class DoubleReply(FastIoTResponse):
    value: float


class DoubleRequest(FastIoTRequest):
    _reply_cls = DoubleReply
    value: float


class Doubler(FastIoTService):
    @reply(subject=DoubleRequest.get_reply_subject())
    async def double(self, request: DoubleRequest) -> DoubleReply:
        if request.value < 0:
            raise ValueError("negative values are not allowed")
        return DoubleReply(value=2 * request.value)


async def _subscribe(broker: NatsBrokerConnection, subject: Subject) -> asyncio.Queue[Any]:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    await broker.subscribe_msg_queue(subject, queue)
    await broker.flush()
    return queue


@pytest.fixture
async def doubler(broker) -> ServiceRunner:
    runner = ServiceRunner(Doubler, connection=broker)
    await runner.start()
    yield runner
    await runner.stop()


async def test_publishes_a_thing_that_a_subscriber_receives(broker) -> None:
    received = await _subscribe(broker, Thing.get_subject("press_1.>"))
    pub = Publisher(Thing, connection=broker)
    assert pub.mode == "publish" and pub.publish_button.description == "Publish"
    assert pub.subject == "v1.thing.<machine>.<name>"
    pub.values = {"machine": "press_1", "name": "temp", "value": 21.5, "unit": "degC"}
    assert pub.subject == pub.subject_field.value == "v1.thing.press_1.temp"

    pub.publish_button.click()
    await pub.wait_idle()
    thing = await asyncio.wait_for(received.get(), 5)
    assert (thing.machine, thing.name, thing.value, thing.unit) == ("press_1", "temp", 21.5, "degC")
    assert abs(thing.timestamp - datetime.now(timezone.utc)) < timedelta(seconds=10), (
        "'now' is the time of sending"
    )
    assert pub.error == "" and pub.sent == 1
    assert "v1.thing.press_1.temp" in pub.output.value

    pub.values = {"value": {"raw": [1, 2]}, "timestamp": datetime(2024, 1, 31, 12, tzinfo=timezone.utc)}
    sent = await pub.publish()
    thing = await asyncio.wait_for(received.get(), 5)
    assert thing.value == {"raw": [1, 2]} and thing == sent
    assert thing.timestamp == datetime(2024, 1, 31, 12, tzinfo=timezone.utc)
    assert pub.sent == 2


async def test_validation_errors_are_shown_not_raised(broker) -> None:
    received = await _subscribe(broker, Thing.get_subject("checked.>"))
    pub = Publisher(Thing, connection=broker)

    pub.publish_button.click()  # nothing filled in
    await pub.wait_idle()
    assert "value: Field required" in pub.error
    assert "fill in machine, name" in pub.error
    assert "value: Field required" in pub.field_errors.value

    pub.values = {"machine": "checked", "name": "x"}
    pub.fields["value"].widget.value = "{not json"
    assert await pub.publish() is None
    assert "value: not valid JSON" in pub.error
    with pytest.raises(FormError) as info:
        _ = pub.values
    assert list(info.value.errors) == ["value"]

    pub.values = {"value": 1}
    pub.fields["timestamp"].widget.value = "yesterday-ish"
    assert await pub.publish() is None
    assert "timestamp:" in pub.error

    pub.values = {"timestamp": "now"}
    assert await pub.publish() is not None
    assert pub.error == "" and pub.field_errors.value == ""
    first = await asyncio.wait_for(received.get(), 5)
    assert first.value == 1, "the invalid forms sent nothing"

    with pytest.raises(ValueError, match="unknown field"):
        pub.values = {"nonsense": 1}


async def test_form_is_generated_from_the_field_types(broker) -> None:
    received = await _subscribe(broker, Setpoint.get_subject())
    pub = Publisher(Setpoint, connection=broker)
    kinds = {name: type(field.widget) for name, field in pub.fields.items()}
    assert kinds == {
        "machine": widgets.Text,
        "target": widgets.FloatText,
        "steps": widgets.IntText,
        "enabled": widgets.Checkbox,
        "mode": widgets.Dropdown,
        "unit": widgets.Dropdown,
        "valid_from": widgets.Text,
        "note": widgets.Text,
        "limit": widgets.Text,
        "tags": widgets.Textarea,
        "extra": widgets.Textarea,
    }
    assert pub.fields["valid_from"].widget.value == "now"
    assert pub.fields["unit"].widget.value == "degC"
    assert list(pub.fields["mode"].widget.options) == [("AUTO", Mode.AUTO), ("MANUAL", Mode.MANUAL)]
    assert pub.subject == "v1.setpoint"

    pub.values = {
        "machine": "oven",
        "target": 180.5,
        "steps": 3,
        "enabled": True,
        "mode": Mode.MANUAL,
        "unit": "K",
        "limit": 7,
        "tags": ["a", "b"],
        "extra": {"by": "test"},
    }
    sent = await pub.publish()
    assert sent is not None, pub.error
    got = await asyncio.wait_for(received.get(), 5)
    assert got == sent
    assert (got.target, got.steps, got.enabled, got.mode, got.unit) == (180.5, 3, True, Mode.MANUAL, "K")
    assert (got.note, got.limit, got.tags, got.extra) == (None, 7, ["a", "b"], {"by": "test"})
    assert got.valid_from.tzinfo is not None

    pub.fields["limit"].widget.value = "many"
    assert await pub.publish() is None
    assert pub.error.startswith("limit:")


async def test_subject_follows_machine_and_name_until_edited(broker) -> None:
    pub = Publisher(Thing, connection=broker)
    pub.values = {"machine": "m1"}
    assert pub.subject == "v1.thing.m1.<name>"
    pub.values = {"name": "temp"}
    assert pub.subject == "v1.thing.m1.temp"
    pub.subject_field.value = "v1.thing.elsewhere"  # typed by hand: kept
    pub.values = {"machine": "m2"}
    assert pub.subject == "v1.thing.elsewhere"
    pub.subject_field.value = ""  # cleared: back to the automatic subject
    assert pub.subject == "v1.thing.m2.temp"

    pub.subject = "v1.thing.>"
    pub.values = {"value": 1}
    assert await pub.publish() is None
    assert "wildcard" in pub.error


async def test_request_shows_the_reply(broker, doubler) -> None:
    pub = Publisher(DoubleRequest, connection=broker)
    assert pub.mode == "request" and pub.subject == "v1.double_request"
    assert pub.publish_button.description == "Send request"
    pub.values = {"value": 21}
    reply_msg = await pub.request()
    assert reply_msg == DoubleReply(value=42.0)
    assert pub.reply == reply_msg and pub.error == ""
    assert "DoubleReply" in pub.output.value and "42.0" in pub.output.value

    pub.values = {"value": 5}
    pub.publish_button.click()
    await pub.wait_idle()
    assert pub.reply == DoubleReply(value=10.0)
    assert "10.0" in pub.output.value and pub.sent == 2
    assert doubler.handler_counts()["double"]["received"] == 2

    with pytest.raises(TypeError, match="request"):
        await pub.publish()


async def test_an_error_reply_is_shown(broker, doubler) -> None:
    pub = Publisher(DoubleRequest, connection=broker)
    pub.values = {"value": -1}
    pub.publish_button.click()
    await pub.wait_idle()
    assert pub.reply is None
    assert "ValueError: negative values are not allowed" in pub.error
    assert "negative values are not allowed" in pub.output.value
    assert doubler.status == "running", "a failing request does not stop the service"


async def test_no_responders_and_timeout_are_shown(broker) -> None:
    pub = Publisher(DoubleRequest.get_reply_subject("nobody"), connection=broker)
    assert pub.mode == "request" and pub.subject == "v1.double_request.nobody"
    pub.values = {"value": 1}
    assert await pub.request() is None
    assert "no service answers requests on v1.double_request.nobody" in pub.error

    async def never_answer(_msg: Any) -> None:
        pass

    await broker.subscribe_raw("v1.double_request.silent", never_answer)
    await broker.flush()
    pub.subject = "v1.double_request.silent"
    pub.timeout = 0.3
    assert pub.timeout_field.value == 0.3
    assert await pub.request() is None
    assert "no reply on v1.double_request.silent within 0.3 s" in pub.error
    assert "within 0.3 s" in pub.output.value


async def test_a_subject_name_publishes_json_objects(broker) -> None:
    received = await _subscribe(broker, Subject(name="v1.raw.widget_test", msg_cls=dict))
    pub = Publisher("v1.raw.widget_test", connection=broker)
    assert list(pub.fields) == ["message"]
    pub.values = {"message": {"a": 1, "b": [True, None]}}
    assert await pub.publish() == {"a": 1, "b": [True, None]}
    assert await asyncio.wait_for(received.get(), 5) == {"a": 1, "b": [True, None]}

    pub.fields["message"].widget.value = "[1, 2]"
    assert await pub.publish() is None
    assert "message: must be a JSON object" in pub.error


async def test_the_workbench_connection_is_the_default(broker) -> None:
    received = await _subscribe(broker, Thing.get_subject("wb.>"))
    pub = Publisher(Thing)
    await wait_for_trait(pub.connection_status, "state", lambda s: s == "connected")
    pub.values = {"machine": "wb", "name": "x", "value": "on"}
    assert await pub.publish() is not None, pub.error
    assert (await asyncio.wait_for(received.get(), 5)).value == "on"


def test_rejects_what_it_cannot_send() -> None:
    with pytest.raises(TypeError, match="Publisher needs"):
        Publisher(42)

    class NoReply(FastIoTRequest):
        x: int

    with pytest.raises(TypeError, match="_reply_cls"):
        Publisher(NoReply)
