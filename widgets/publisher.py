"""Publisher: publish a message or send a request, from a model's form or free-form, and keep what was sent.

``Publisher(Model)`` builds a form from a pydantic model (see :mod:`fastiot_widgets._forms`); the
subject is prefilled from the model's ``get_subject()`` (a Thing's follows its ``machine`` and
``name``). For a :class:`~fastiot.core.data_models.FastIoTRequest` the button sends a request.

``Publisher()`` (or ``Publisher("v1.some.subject")``) is free-form: a subject, a payload typed as
JSON, UTF-8 text, msgpack written as JSON (FastIoT's wire format, the default) or hex bytes, and
publish or request. Both kinds take NATS headers (``Name: value`` a line).

A reply is shown decoded (:func:`fastiot.payloads.decode`, or the reply model) with its round-trip
time. Every message sent goes into a history (the newest :data:`~fastiot.publishing.DEFAULT_HISTORY`),
each entry can be sent again or edited; named templates are kept in ``fastiot-templates.json`` in
the notebook's directory. "Copy as code" inserts the Python that does the same in a cell below.

Mistakes (a missing field, bad JSON, a wrong subject, nobody answering, a broken templates file) are
shown next to the form and never raised into the cell.

Example:
    >>> from fastiot.msg.thing import Thing
    >>> from fastiot_widgets import Publisher
    >>> pub = Publisher(Thing)                  # doctest: +SKIP
    >>> pub.values = {"machine": "press_1", "name": "temp", "value": 21.5}  # doctest: +SKIP
    >>> await pub.publish()                     # or click Publish  # doctest: +SKIP
    >>> free = Publisher()                      # free-form         # doctest: +SKIP
    >>> free.subject, free.payload = "v1.lamp", '{"on": true}'     # doctest: +SKIP
    >>> await free.publish()                    # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import html
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
import pydantic
import traitlets
from pydantic_core import PydanticUndefined
from traitlets import TraitError

from fastiot._tasks import BackgroundTasks
from fastiot.core.broker_connection import ERROR_HEADER, BrokerConnection
from fastiot.core.data_models import Subject
from fastiot.core.serialization import serialize_from_bin, serialize_to_bin
from fastiot.exceptions import FormError, InvalidTopicError, PermissionDeniedError
from fastiot.payloads import decode, limit_depth, model_for_subject, to_text
from fastiot.publishing import (
    DEFAULT_HISTORY,
    ENCODINGS,
    Draft,
    MessageHistory,
    SentMessage,
    format_headers,
    parse_headers,
    subject_problem,
)

from ._code import code_for_publish, code_for_publish_mqtt, code_for_request
from ._common import (
    follow_connection,
    format_exception,
    pre_html,
    resolve_connection,
)
from ._forms import FormField, SubjectFollower, form_fields, form_target, message_field
from ._publisher_layout import PublisherLayout
from ._publisher_panels import HistoryPanel, TemplatesPanel

__all__ = ["DEFAULT_REQUEST_TIMEOUT", "FormError", "Publisher"]

# Interactive requests should fail fast; FASTIOT_NATS_DEFAULT_TIMEOUT (30 s) is meant for services.
DEFAULT_REQUEST_TIMEOUT = 5.0
_ERROR_COLOR = "#c62828"
_MQTT_QOS, _MQTT_RETAIN = "MQTT-QoS", "MQTT-Retain"
_OK = "<span style='color:#2e7d32'>&#10003;</span>"


class Publisher(PublisherLayout):
    """A form that publishes a message, or sends a request and shows the reply decoded.

    Args:
        model_cls_or_subject: A :class:`FastIoTPublish` model (publish mode), a :class:`FastIoTRequest`
            model (request mode), a :class:`Subject` or :class:`ReplySubject` of a model; a subject
            name or nothing for the free-form editor.
        connection: The broker connection; ``None`` means the workbench connection.
        templates_file: Where templates are kept; default ``fastiot-templates.json`` in the current
            directory.
        history_size: How many sent messages the history keeps.

    From code: set :attr:`values` (a form) or :attr:`subject` / :attr:`payload` / :attr:`encoding`
    (free-form), then ``await pub.publish()`` or ``await pub.request()``; or click
    :attr:`publish_button`. Failures never raise: they are in :attr:`error` and shown below the form.
    """

    mode = traitlets.Enum(
        ("publish", "request", "mqtt"),
        default_value="publish",
        help="What the button does: publish on NATS, send a request, or (free-form) publish to MQTT devices.",
    )
    qos = traitlets.Int(0, help="MQTT mode: the QoS, 0 or 1.")
    retain = traitlets.Bool(False, help="MQTT mode: keep the message as the topic's retained message.")
    subject = traitlets.Unicode("", help="The subject the message is published or the request is sent on.")
    free_form = traitlets.Bool(False, help="Whether this is the free-form editor (no model form).")
    encoding = traitlets.Enum(
        ENCODINGS, default_value="msgpack", help="Free-form: how the payload text is sent."
    )
    payload = traitlets.Unicode("", help="Free-form: the payload as typed (JSON for json and msgpack).")
    headers = traitlets.Unicode("", help="NATS headers as typed, one 'Name: value' a line.")
    error = traitlets.Unicode("", help="Why the last publish or request failed; '' after a success.")
    sent = traitlets.Int(0, help="Messages published, or requests answered, through this form.")
    timeout = traitlets.Float(DEFAULT_REQUEST_TIMEOUT, help="Seconds a request waits for its reply.")
    round_trip_ms = traitlets.Float(0.0, help="Milliseconds the last reply took to come back.")
    reply_kind = traitlets.Unicode(
        "", help="How the last reply decoded: model, msgpack, json, text or bytes."
    )

    def __init__(
        self,
        model_cls_or_subject: type[pydantic.BaseModel] | Subject | str | None = None,
        connection: BrokerConnection | None = None,
        *,
        templates_file: str | os.PathLike[str] | None = None,
        history_size: int = DEFAULT_HISTORY,
    ) -> None:
        self.connection: BrokerConnection | None = connection
        self.reply: Any = None
        """The last reply received: the reply model, or the decoded value (request mode)."""
        self.reply_headers: dict[str, str] = {}
        self.last_message: Any = None
        """The last message published or sent as a request (a model, dict, or the draft's value)."""
        self.history: MessageHistory = MessageHistory(history_size)
        self._tasks: BackgroundTasks = BackgroundTasks(self._on_task_error)
        target = form_target(model_cls_or_subject)
        msg_cls = target.msg_cls
        self.msg_cls: Any = msg_cls
        self.reply_cls: Any = target.reply_cls
        self.free_form = msg_cls is None
        self.fields: dict[str, FormField] = {}
        if isinstance(msg_cls, type) and issubclass(msg_cls, pydantic.BaseModel):
            self.fields = form_fields(msg_cls)
        elif msg_cls is dict:
            self.fields = {"message": message_field()}

        self._title_text = "free-form message" if self.free_form else msg_cls.__name__
        self._make_controls(subject=target.subject, timeout=self.timeout, code=self._code)
        self.history_panel = HistoryPanel(self)
        self.templates_panel = TemplatesPanel(self, templates_file)

        traitlets.link((self.timeout_field, "value"), (self, "timeout"))
        traitlets.link((self.mode_buttons, "value"), (self, "mode"))
        traitlets.link((self.encoding_field, "value"), (self, "encoding"))
        traitlets.link((self.payload_field, "value"), (self, "payload"))
        traitlets.link((self.headers_field, "value"), (self, "headers"))
        traitlets.link((self.qos_field, "value"), (self, "qos"))
        traitlets.link((self.retain_box, "value"), (self, "retain"))
        self.mode = target.mode
        self.subject_follower = SubjectFollower(self.subject_field, self.fields, target)
        self.subject_field.observe(self._on_subject_edit, names="value")
        self.publish_button.on_click(lambda _b: self._tasks.spawn(self.submit(), what=self.mode))

        super().__init__(children=self._arrange(self.free_form, self.fields))
        self._on_mode({"new": self.mode})
        self.subject = self.subject_field.value
        follow_connection(self.connection_status, connection, self._tasks)

    @traitlets.validate("mode")
    def _valid_mode(self, proposal: Any) -> str:
        if proposal["value"] == "mqtt" and not self.free_form:
            raise TraitError("the MQTT mode is the free-form editor's: open Publisher() to publish to MQTT")
        return str(proposal["value"])

    @traitlets.observe("mode")
    def _on_mode(self, change: Any) -> None:
        if "title" not in self.__dict__:
            return
        request, mqtt = change["new"] == "request", change["new"] == "mqtt"
        self.publish_button.description = (
            "Send request" if request else "Publish to MQTT" if mqtt else "Publish"
        )
        self.timeout_field.layout.display = "" if request else "none"
        self.qos_field.layout.display = self.retain_box.layout.display = "" if mqtt else "none"
        self.headers_field.layout.display = "none" if mqtt else ""  # MQTT 3.1.1 has no headers
        self.subject_field.description = "topic" if mqtt else "subject"
        if mqtt and self.encoding in ("msgpack", "hex"):
            self.encoding = "json"  # devices read JSON or text
        self.title.value = f"<b>{html.escape(self._title_text)}</b> &middot; {change['new']}"

    # -- subject -----------------------------------------------------------------------------------

    def _on_subject_edit(self, _change: dict[str, Any]) -> None:
        self.subject = self.subject_field.value

    @traitlets.observe("subject")
    def _subject_changed(self, change: dict[str, Any]) -> None:
        if "subject_field" in self.__dict__ and self.subject_field.value != change["new"]:
            self.subject_field.value = change["new"]

    # -- values ------------------------------------------------------------------------------------

    @property
    def values(self) -> dict[str, Any]:
        """The form's field values as they go into the model (JSON parsed, ``now`` resolved).

        Setting it fills in the given fields (the others keep their input), e.g.
        ``pub.values = {"machine": "press_1", "value": 21.5}``.

        Raises:
            FormError: (getting) some inputs cannot be converted; ``.errors`` says which and why.
            ValueError: (setting) an unknown field name or a value that does not fit its input.
        """
        values: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for name, field in self.fields.items():
            try:
                value = field.get()
            except ValueError as e:
                errors[name] = str(e)
                continue
            if value is not PydanticUndefined:
                values[name] = value
        if errors:
            raise FormError(errors)
        return values

    @values.setter
    def values(self, new_values: dict[str, Any]) -> None:
        unknown = [name for name in new_values if name not in self.fields]
        if unknown:
            raise ValueError(f"unknown field(s) {unknown}; this form has {list(self.fields)}")
        for name, value in new_values.items():
            self.fields[name].set(value)

    def build_message(self) -> Any:
        """The message the form describes: a model, a dict (dict subject) or the draft's value (free-form).

        Raises:
            FormError: An input cannot be converted.
            pydantic.ValidationError: The values do not make a valid model.
        """
        if self.free_form:
            return self._payload_draft().value()
        values = self.values
        if not (isinstance(self.msg_cls, type) and issubclass(self.msg_cls, pydantic.BaseModel)):
            message = values.get("message", {})
            if not isinstance(message, dict):
                raise FormError(
                    {"message": f'must be a JSON object like {{"a": 1}}, got {type(message).__name__}'}
                )
            return message
        return self.msg_cls(**values)

    def draft(self) -> Draft:
        """The free-form inputs as a :class:`~fastiot.publishing.Draft` (headers parsed).

        Raises:
            FormError: The headers cannot be read.
        """
        return dataclasses.replace(self._payload_draft(), headers=parse_headers(self.headers))

    def _payload_draft(self) -> Draft:
        return Draft(self.subject_field.value.strip(), self.payload, self.encoding, {}, self.mode)

    def _build(self) -> tuple[str, bytes, dict[str, str], Any] | None:
        """Subject, bytes, headers and the message, or None after showing what is wrong."""
        problems: list[str] = []
        message: Any = None
        data = b""
        try:
            message = self.build_message()
            data = self._encode(message)
        except FormError as e:
            problems += [f"{name}: {problem}" for name, problem in e.errors.items()]
        except pydantic.ValidationError as e:
            for err in e.errors():
                where = ".".join(str(part) for part in err["loc"]) or "message"
                problems.append(f"{where}: {err['msg']}")
        try:
            headers = parse_headers(self.headers)
        except FormError as e:
            problems += [f"{name}: {problem}" for name, problem in e.errors.items()]
            headers = {}
        subject = self.subject_field.value.strip()
        problem = subject_problem(subject)
        if "<" in subject:
            missing = ", ".join(self.subject_follower.tokens) or "the placeholders"
            problem = f"fill in {missing} (the subject is {subject!r})"
        if self.mode == "mqtt":
            problem = _topic_problem(subject, self.qos)
        if problem:
            problems.append(f"{'topic' if self.mode == 'mqtt' else 'subject'}: {problem}")
        if problems:
            self._show_problems(problems)
            return None
        self.field_errors.value = ""
        return subject, data, headers, message

    def _encode(self, message: Any) -> bytes:
        if self.free_form:
            return self._payload_draft().encode()
        return serialize_to_bin(self.msg_cls, message)

    def _show_problems(self, problems: list[str]) -> None:
        self.error = "\n".join(problems)
        self.field_errors.value = pre_html(self.error, color=_ERROR_COLOR)
        self.output.value = ""

    def _code(self) -> str:
        """Copy as code: the Python that sends what the form holds now."""
        if self.free_form:
            draft = self.draft()
            payload, encoding = draft.code_payload()
        else:
            payload, encoding = self.build_message(), "msgpack"
        subject, headers = self.subject_field.value.strip(), parse_headers(self.headers)
        if self.mode == "mqtt":
            payload = self.draft().encode() if encoding == "bytes" else payload
            return code_for_publish_mqtt(subject, payload, qos=self.qos, retain=self.retain)
        if self.mode == "request":
            return code_for_request(
                subject,
                payload,
                encoding=encoding,
                headers=headers,
                timeout=self.timeout,
                reply_cls=self._reply_model(subject),
            )
        return code_for_publish(subject, payload, encoding=encoding, headers=headers)

    def _reply_model(self, subject: str) -> type[pydantic.BaseModel] | None:
        """The model replies to a request on ``subject`` decode as: the form's, or the subject's request
        model's reply model (free-form), if it has one."""
        if self.reply_cls is not None:
            return self.reply_cls if isinstance(self.reply_cls, type) else None
        model = model_for_subject(subject)
        reply_cls = getattr(model, "_reply_cls", None) if model is not None else None
        if isinstance(reply_cls, type) and issubclass(reply_cls, pydantic.BaseModel):
            return reply_cls
        return None

    # -- actions -----------------------------------------------------------------------------------

    async def submit(self) -> Any:
        """What the button does: :meth:`publish` or :meth:`request`, by :attr:`mode`."""
        if self.mode == "request":
            return await self.request()
        return await self.publish()

    async def publish(self) -> Any:
        """Publish the form's message on the subject.

        In MQTT mode it goes to MQTT subscribers of the topic, at :attr:`qos`, retained if :attr:`retain`.

        Returns:
            The message published, or ``None`` if it was not (why is in :attr:`error`).
        """
        if self.mode == "request":
            raise TypeError("this form sends requests: use `await pub.request()` (or set pub.mode)")
        built = self._build()
        if built is None:
            return None
        subject, data, headers, message = built
        if self.mode == "mqtt":
            sent = await self._send_mqtt(subject, data, self.qos, self.retain, self._inputs())
        else:
            sent = await self._send_publish(subject, data, headers, self._inputs())
        if sent:
            self.last_message = message
            return message
        return None

    async def request(self) -> Any:
        """Send the form's request and show the reply, decoded, with its round-trip time.

        Returns:
            The reply (the reply model, or the decoded value), or ``None`` if there is none (why is in
            :attr:`error`: the service's error, nobody answering, or no reply within :attr:`timeout`).
        """
        if self.mode != "request":
            raise TypeError("this form publishes: use `await pub.publish()` (or set pub.mode = 'request')")
        built = self._build()
        if built is None:
            return None
        subject, data, headers, message = built
        self.last_message = message
        return await self._send_request(subject, data, headers, self._inputs())

    async def resend(self, index: int = 0) -> Any:
        """Send history entry ``index`` (0: the newest) again, exactly as it was sent.

        Returns:
            For a publish, True if it went out; for a request, the reply (``None`` if none).
        """
        entry = self.history[index]
        if entry.mode == "mqtt":
            qos, retain = int(entry.headers.get(_MQTT_QOS, "0")), entry.headers.get(_MQTT_RETAIN) == "true"
            return await self._send_mqtt(entry.subject, entry.data, qos, retain, (entry.draft, entry.inputs))
        if entry.mode == "request":
            return await self._send_request(
                entry.subject, entry.data, entry.headers, (entry.draft, entry.inputs)
            )
        return await self._send_publish(entry.subject, entry.data, entry.headers, (entry.draft, entry.inputs))

    def _inputs(self) -> tuple[Draft | None, dict[str, Any] | None]:
        if self.free_form:
            return self.draft(), None
        return None, {name: field.raw_input() for name, field in self.fields.items()}

    def _remember(
        self, mode: str, subject: str, data: bytes, headers: dict[str, str], inputs: Any, outcome: str
    ) -> None:
        draft, raw = inputs
        when = dt.datetime.now(dt.timezone.utc)
        self.history.add(SentMessage(when, mode, subject, data, dict(headers), draft, raw, outcome))
        self.history_panel.update()

    async def _send_publish(self, subject: str, data: bytes, headers: dict[str, str], inputs: Any) -> bool:
        async def send() -> None:
            connection = await self._connection()
            await connection.publish_raw(subject, data, headers or None, confirm=True)

        where = f"on <code>{html.escape(subject)}</code> ({len(data):,} bytes)"
        return await self._published(send, ("publish", subject, data, headers, inputs), "", where)

    async def _send_mqtt(self, topic: str, data: bytes, qos: int, retain: bool, inputs: Any) -> bool:
        from fastiot.mqtt import publish_mqtt

        async def send() -> None:
            connection = await self._connection() if qos == 0 and not retain else None
            await publish_mqtt(topic, data, qos, retain, connection=connection)

        # MQTT messages have no headers: the history keeps their QoS and retain flag in their place.
        flags = {_MQTT_QOS: str(qos), _MQTT_RETAIN: "true" if retain else "false"}
        how = f"QoS {qos}{', retained' if retain else ''}"
        where = f"to MQTT on <code>{html.escape(topic)}</code> ({how}, {len(data):,} bytes)"
        return await self._published(send, ("mqtt", topic, data, flags, inputs), how, where)

    async def _published(
        self,
        send: Callable[[], Awaitable[None]],
        entry: tuple[str, str, bytes, dict[str, str], Any],
        outcome: str,
        where: str,
    ) -> bool:
        """Run ``send``, show what came of it and keep it in the history (refused ones too)."""
        mode, subject = entry[0], entry[1]
        try:
            await send()
        except PermissionDeniedError as e:
            self._show_failure(f"refused by the server: {e}")
            self._remember(*entry, "refused")
            return False
        except Exception as e:
            doing = "publishing to MQTT on" if mode == "mqtt" else "publishing on"
            self._show_failure(f"{doing} {subject} failed:\n{format_exception(e)}")
            return False
        self.sent += 1
        self.error = ""
        self._remember(*entry, outcome)
        self.output.value = f"{_OK} published #{self.sent} {where} at {dt.datetime.now():%H:%M:%S}"
        return True

    async def _send_request(self, subject: str, data: bytes, headers: dict[str, str], inputs: Any) -> Any:
        self.output.value = f"waiting for a reply on <code>{html.escape(subject)}</code> ..."
        try:
            connection = await self._connection()
            started = time.perf_counter()
            response = await connection.client.request(
                subject, data, timeout=self.timeout, headers=headers or None
            )
            took_ms = (time.perf_counter() - started) * 1e3
        except nats.errors.NoRespondersError:
            self._show_failure(
                f"no service answers requests on {subject}: start one (e.g. a %%service with "
                f"@reply(subject=...)) or check the subject"
            )
            return None
        except PermissionDeniedError as e:
            self._show_failure(f"refused by the server: {e}")
            self._remember("request", subject, data, headers, inputs, "refused")
            return None
        except asyncio.TimeoutError:  # nats.errors.TimeoutError is one too
            self._show_failure(
                f"no reply on {subject} within {self.timeout:g} s (timeout s); while a wildcard subscriber "
                "(e.g. a SubjectBrowser on '>') listens, NATS cannot tell that nobody answers"
            )
            return None
        except Exception as e:
            self._show_failure(f"the request on {subject} failed:\n{format_exception(e)}")
            return None
        reply_headers = dict(response.headers or {})
        if ERROR_HEADER in reply_headers:
            self._show_failure(f"the service answering {subject} failed: {reply_headers[ERROR_HEADER]}")
            self._remember("request", subject, data, headers, inputs, "failed")
            return None
        reply_cls = self.reply_cls if inputs[0] is None else self._reply_model(subject)
        try:
            if reply_cls is None:
                raise ValueError("no reply model")
            reply: Any = serialize_from_bin(reply_cls, response.data)
            kind = "model"
        except ValueError:  # pydantic's ValidationError is one
            # Not by the request's subject: its model is the request's, not the reply's.
            decoded = decode(response.data, headers=reply_headers)
            reply, kind = decoded.value, decoded.kind
        self.reply, self.reply_headers, self.reply_kind = reply, reply_headers, kind
        self.round_trip_ms = took_ms
        self.sent += 1
        self.error = ""
        self._remember("request", subject, data, headers, inputs, f"reply in {took_ms:.1f} ms")
        self.output.value = (
            f"{_OK} reply #{self.sent} in <b>{took_ms:.1f} ms</b> ({html.escape(kind)}, "
            f"{len(response.data):,} bytes)" + pre_html(_reply_text(reply, reply_headers), max_height="24em")
        )
        return reply

    def load(self, entry: SentMessage) -> None:
        """Put a sent message back into the form to edit it (its draft, or its model form's inputs).

        Raises:
            ValueError: The entry came from another kind of form.
        """
        if entry.draft is not None and self.free_form:
            self.set_draft(entry.draft)
        elif entry.inputs is not None and not self.free_form:
            self.set_inputs(entry.inputs)
            self.subject_field.value = entry.subject
            self.headers = format_headers(entry.headers)
        else:
            raise ValueError("this message was sent from another kind of form; send it again with Re-send")

    def set_draft(self, draft: Draft) -> None:
        """Fill the free-form editor with ``draft``."""
        if not self.free_form:
            raise ValueError("this form is a model's form; open the draft in Publisher()")
        with self.hold_trait_notifications():
            self.subject, self.payload, self.encoding = draft.subject, draft.payload, draft.encoding
            self.headers, self.mode = format_headers(draft.headers), draft.mode

    def set_inputs(self, inputs: dict[str, Any]) -> None:
        """Fill the model form's inputs as typed (``now`` stays ``now``); unknown names are skipped."""
        for name, value in inputs.items():
            if name in self.fields:
                self.fields[name].set_raw_input(value)

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until what the buttons started is done (its outcome is in :attr:`error` / :attr:`output`)."""
        await self._tasks.wait(timeout)

    async def _connection(self) -> Any:
        connection = await resolve_connection(self.connection)
        self.connection_status.attach(connection)
        return connection

    def _show_failure(self, text: str) -> None:
        self.error = text
        self.output.value = pre_html(text, color=_ERROR_COLOR)

    def _on_task_error(self, exc: BaseException, what: str) -> None:
        self._show_failure(f"{what} failed:\n{format_exception(exc)}")

    def close(self) -> None:
        """Cancel the form's tasks and stop following the connection."""
        if "connection_status" not in self.__dict__:  # __init__ failed (ipywidgets closes on __del__)
            return
        self._tasks.cancel_all()
        self.connection_status.close()
        self.copy_code.close()
        super().close()

    def __repr__(self) -> str:
        kind = "free-form" if self.free_form else self.msg_cls.__name__
        return f"Publisher({kind}, {self.mode}, {self.subject!r})"


def _topic_problem(topic: str, qos: int) -> str | None:
    """What is wrong with ``topic`` and ``qos`` for an MQTT publish, or ``None``."""
    from fastiot.mqtt import topic_to_subject

    if qos not in (0, 1):
        return f"QoS {qos}: the broker's MQTT listener supports QoS 0 and 1"
    try:
        topic_to_subject(topic)
    except InvalidTopicError as e:
        return str(e)
    return None


def _reply_text(reply: Any, headers: dict[str, str]) -> str:
    """A reply for reading: a model's JSON, data as indented JSON (depth-limited), headers below."""
    if isinstance(reply, pydantic.BaseModel):
        text = f"{type(reply).__name__} {reply.model_dump_json(indent=2)}"
    elif isinstance(reply, (dict, list)):
        text = json.dumps(limit_depth(reply), indent=2, default=to_text)
    else:
        text = to_text(reply)
    if headers:
        text += "\n\nheaders:\n" + format_headers(headers)
    return text
