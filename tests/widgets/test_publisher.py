"""Publisher, headless: forms filled through .values, sent with .click() or await, against a real broker."""

from __future__ import annotations

import asyncio
import enum
import json
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
    assert pub.history[0].subject == "v1.thing.press_1.temp" and pub.history[0].mode == "publish"

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
    assert pub.error == ""
    first = await asyncio.wait_for(received.get(), 5)
    assert first.value == 1, "the invalid forms sent nothing"

    with pytest.raises(ValueError, match="unknown field"):
        pub.values = {"nonsense": 1}


async def test_form_is_generated_from_the_field_types(broker) -> None:
    received = await _subscribe(broker, Setpoint.get_subject())
    pub = Publisher(Setpoint, connection=broker)
    # The ipywidgets kind of each field (the fields are its loop-bound subclasses).
    kinds = {
        name: next(c for c in type(field.widget).__mro__ if c.__module__.startswith("ipywidgets."))
        for name, field in pub.fields.items()
    }
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
    assert pub.reply_kind == "model" and pub.round_trip_ms > 0
    assert pub.history[0].outcome.startswith("reply in ")

    pub.values = {"value": 5}
    pub.publish_button.click()
    await pub.wait_idle()
    assert pub.reply == DoubleReply(value=10.0)
    assert pub.sent == 2
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
    assert "wildcard subscriber" in pub.error, "why NATS may not say that nobody answers"


async def test_a_subject_name_opens_the_free_form_editor_in_fastiots_msgpack(broker) -> None:
    received = await _subscribe(broker, Subject(name="v1.raw.widget_test", msg_cls=dict))
    pub = Publisher("v1.raw.widget_test", connection=broker)
    assert pub.free_form and pub.fields == {} and pub.encoding == "msgpack"
    pub.payload = '{"a": 1, "b": [true, null]}'
    assert await pub.publish() == {"a": 1, "b": [True, None]}
    assert await asyncio.wait_for(received.get(), 5) == {"a": 1, "b": [True, None]}

    pub.payload = "{a: 1}"
    assert await pub.publish() is None
    assert "payload: not valid JSON" in pub.error


async def test_the_workbench_connection_is_the_default(broker) -> None:
    received = await _subscribe(broker, Thing.get_subject("wb.>"))
    pub = Publisher(Thing)
    await wait_for_trait(pub.connection_status, "state", lambda s: s == "connected")
    pub.values = {"machine": "wb", "name": "x", "value": "on"}
    assert await pub.publish() is not None, pub.error
    assert (await asyncio.wait_for(received.get(), 5)).value == "on"


class RawInbox:
    """A raw subscriber that keeps the bytes and headers of each message."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[Any] = asyncio.Queue()

    async def on_msg(self, msg: Any) -> None:
        await self.messages.put(msg)

    async def next(self) -> tuple[bytes, dict[str, str]]:
        msg = await asyncio.wait_for(self.messages.get(), 5)
        return msg.data, dict(msg.headers or {})


async def _raw_inbox(broker: NatsBrokerConnection, subject: str) -> RawInbox:
    inbox = RawInbox()
    await broker.subscribe_raw(subject, inbox.on_msg)
    await broker.flush()
    return inbox


@pytest.mark.parametrize(
    ("encoding", "payload", "data"),
    [
        ("json", '{"on": true}', b'{"on": true}'),
        ("text", "on", b"on"),
        ("msgpack", '{"on": true}', b"\x81\xa2on\xc3"),
        ("hex", "01 ff", b"\x01\xff"),
    ],
)
async def test_free_form_publishes_the_payload_with_headers(
    broker: NatsBrokerConnection, encoding: str, payload: str, data: bytes
) -> None:
    inbox = await _raw_inbox(broker, "v1.free.lamp")
    pub = Publisher(connection=broker)
    assert pub.free_form and pub.mode == "publish" and pub.subject == ""
    pub.subject, pub.encoding, pub.payload = "v1.free.lamp", encoding, payload
    pub.headers = "Trace-Id: 42\norigin: notebook"
    pub.publish_button.click()
    await pub.wait_idle()
    assert pub.error == ""
    assert await inbox.next() == (data, {"Trace-Id": "42", "origin": "notebook"})


async def test_free_form_mistakes_are_shown_not_raised(broker: NatsBrokerConnection) -> None:
    pub = Publisher(connection=broker)
    pub.payload, pub.headers = "{broken", "no colon here"
    assert await pub.publish() is None
    assert "subject: give the subject" in pub.error
    assert "payload: not valid JSON" in pub.error and "headers: line 1" in pub.error
    pub.subject, pub.encoding, pub.payload, pub.headers = "v1.*", "text", "x", ""
    assert await pub.publish() is None and "wildcard" in pub.error


async def _raw_replier(broker: NatsBrokerConnection, subject: str, answer: bytes) -> None:
    async def reply(msg: Any) -> None:
        await broker.publish_raw(msg.reply, answer, headers={"Served-By": "test"})

    await broker.subscribe_raw(subject, reply)
    await broker.flush()


async def test_a_free_form_request_shows_the_reply_decoded_with_its_round_trip_time(
    broker: NatsBrokerConnection,
) -> None:
    await _raw_replier(broker, "v1.free.ask_json", b'{"temperature": 21.5}')
    await _raw_replier(broker, "v1.free.ask_text", b"all good")
    pub = Publisher("v1.free.ask_json", connection=broker)
    pub.mode_buttons.value = "request"  # the toggle, as a click sets it
    assert pub.mode == "request" and pub.publish_button.description == "Send request"
    pub.encoding, pub.payload = "json", '{"what": "temperature"}'
    assert await pub.request() == {"temperature": 21.5}
    assert pub.reply_kind == "json" and pub.round_trip_ms > 0
    assert pub.reply_headers == {"Served-By": "test"}
    pub.subject = "v1.free.ask_text"
    pub.publish_button.click()
    await pub.wait_idle()
    assert (pub.reply, pub.reply_kind) == ("all good", "text")
    assert [entry.subject for entry in pub.history] == ["v1.free.ask_text", "v1.free.ask_json"]


async def test_a_free_form_request_on_a_request_models_subject_shows_the_reply_model(
    broker: NatsBrokerConnection, doubler: ServiceRunner
) -> None:
    """Not the request model (which the request's subject names): ``DoubleRequest(value=...)`` would
    show the reply's numbers under the wrong name, and a reply with other fields as an empty model."""
    pub = Publisher(DoubleRequest.get_reply_subject().name, connection=broker)
    pub.mode, pub.payload = "request", '{"value": 4}'
    assert await pub.request() == DoubleReply(value=8.0)
    assert pub.reply_kind == "model" and "DoubleReply" in pub.output.value
    assert await pub.resend(0) == DoubleReply(value=8.0)
    pub.copy_code.frontend_timeout = 0.05
    await pub.copy_code.copy()
    assert "serialize_from_bin(DoubleReply, response.data)" in pub.copy_code.code


async def test_history_entries_can_be_sent_again_and_edited(broker: NatsBrokerConnection) -> None:
    inbox = await _raw_inbox(broker, "v1.free.history.>")
    pub = Publisher(connection=broker, history_size=2)
    for i in range(3):
        pub.subject, pub.encoding, pub.payload = f"v1.free.history.n{i}", "json", json.dumps({"n": i})
        await pub.publish()
        await inbox.next()
    assert [entry.subject for entry in pub.history] == ["v1.free.history.n2", "v1.free.history.n1"]
    assert pub.history.dropped == 1
    assert len(pub.history_panel.entries.options) == 2

    pub.history_panel.entries.value = 1  # the older one, as a click in the list selects it
    pub.history_panel.resend_button.click()
    await pub.wait_idle()
    assert await inbox.next() == (b'{"n": 1}', {})
    assert pub.history[0].subject == "v1.free.history.n1", "a re-sent message is the newest entry"

    pub.payload = "changed"
    pub.history_panel.entries.value = 1
    pub.history_panel.edit_button.click()
    assert (pub.subject, pub.payload, pub.encoding) == ("v1.free.history.n2", '{"n": 2}', "json")


async def test_a_model_forms_history_resends_the_same_bytes(broker: NatsBrokerConnection) -> None:
    inbox = await _raw_inbox(broker, "v1.thing.again.>")
    pub = Publisher(Thing, connection=broker)
    pub.values = {"machine": "again", "name": "t", "value": 1}
    pub.headers = "origin: form"
    await pub.publish()
    first = await inbox.next()
    assert first[1] == {"origin": "form"}
    assert await pub.resend(0) is True
    assert await inbox.next() == first
    pub.values = {"value": 99}
    pub.load(pub.history[0])
    assert pub.fields["value"].widget.value == "1" and pub.fields["timestamp"].widget.value == "now"


async def test_templates_are_saved_to_a_file_and_loaded_back(
    broker: NatsBrokerConnection, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    pub = Publisher(connection=broker)
    panel = pub.templates_panel
    assert panel.names == [] and panel.store.path == tmp_path / "fastiot-templates.json"
    pub.subject, pub.encoding, pub.payload, pub.headers = "v1.lamp", "json", '{"on": true}', "a: 1"
    panel.name_field.value = "lamp on"
    panel.save_button.click()
    assert panel.names == ["lamp on"] and panel.error == ""

    other = Publisher(connection=broker)  # another form, e.g. after a kernel restart, reads the file
    other.templates_panel.choice.value = "lamp on"
    other.templates_panel.load_button.click()
    assert (other.subject, other.payload, other.encoding, other.headers) == (
        "v1.lamp",
        '{"on": true}',
        "json",
        "a: 1",
    )

    form = Publisher(Thing, connection=broker)
    form.values = {"machine": "m", "name": "n", "value": 5}
    form.templates_panel.save("thing five")
    form.values = {"value": 6}
    form.templates_panel.choice.value = "lamp on"
    form.templates_panel.load_button.click()
    assert "not of Thing" in form.templates_panel.error
    form.templates_panel.load("thing five")
    assert form.fields["value"].widget.value == "5" and form.subject == "v1.thing.m.n"
    with pytest.raises(ValueError, match="Publisher"):
        pub.templates_panel.load("thing five")

    panel.refresh()
    panel.choice.value = "lamp on"
    panel.delete_button.click()
    assert panel.names == ["thing five"]


async def test_a_broken_templates_file_is_shown_not_raised(
    broker: NatsBrokerConnection, tmp_path: Any
) -> None:
    path = tmp_path / "mine.json"
    path.write_text("{oops")
    pub = Publisher(connection=broker, templates_file=path)
    assert f"the templates file {path} is not JSON" in pub.templates_panel.error
    pub.subject, pub.payload = "v1.x", "1"
    pub.templates_panel.name_field.value = "x"
    pub.templates_panel.save_button.click()
    assert "fix it, or rename it" in pub.templates_panel.error
    assert path.read_text() == "{oops"


async def test_copy_as_code_writes_the_publish_and_the_request(broker: NatsBrokerConnection) -> None:
    pub = Publisher(connection=broker)
    pub.copy_code.frontend_timeout = 0.05  # no JupyterLab here: the code is shown in a text box
    pub.subject, pub.encoding, pub.payload, pub.headers = "v1.lamp", "json", '{"on": true}', "a: 1"
    assert await pub.copy_code.copy() == "shown"
    code = pub.copy_code.code
    assert (
        'publish_raw("v1.lamp"' in code
        and "json.dumps(payload)" in code
        and "'a': '1'" in code.replace('"', "'")
    )
    pub.mode = "request"
    await pub.copy_code.copy()
    assert "broker.request_raw(" in pub.copy_code.code and "decode(response.data" in pub.copy_code.code

    form = Publisher(DoubleRequest, connection=broker)
    form.copy_code.frontend_timeout = 0.05
    form.values = {"value": 2}
    await form.copy_code.copy()
    assert "DoubleRequest(" in form.copy_code.code and "serialize_to_bin" in form.copy_code.code
    form.fields["value"].widget.value = 1.0
    pub.payload = "{broken"
    assert await pub.copy_code.copy() == "failed" and "not valid JSON" in pub.copy_code.error


def test_rejects_what_it_cannot_send() -> None:
    with pytest.raises(TypeError, match="Publisher needs"):
        Publisher(42)

    class NoReply(FastIoTRequest):
        x: int

    with pytest.raises(TypeError, match="_reply_cls"):
        Publisher(NoReply)


async def test_a_response_model_gets_a_form_with_a_subject_to_type(broker) -> None:
    """A response has no subject of its own (its get_subject raises): the form asks for one."""
    received = await _subscribe(broker, Subject(name="test.publisher.reply", msg_cls=DoubleReply))
    pub = Publisher(DoubleReply, connection=broker)
    assert pub.mode == "publish" and pub.subject == ""
    pub.subject = "test.publisher.reply"
    pub.values = {"value": 4.0}
    sent = await pub.publish()
    assert sent is not None, pub.error
    assert await asyncio.wait_for(received.get(), 5) == DoubleReply(value=4.0)
