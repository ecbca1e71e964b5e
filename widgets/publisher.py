"""Publisher: a form, generated from a pydantic model, that publishes a message or sends a request.

Numbers become number inputs, strings text inputs, booleans checkboxes, enums and ``Literal`` a
dropdown, datetimes a text input that says ``now`` (the time of publishing) or takes an ISO date, and
everything else (``Any``, dicts, lists, nested models) a JSON text area. The subject is prefilled
from the model's ``get_subject()``; a :class:`~fastiot.msg.thing.Thing`'s subject follows its
``machine`` and ``name`` fields. For a :class:`~fastiot.core.data_models.FastIoTRequest` (or a
:class:`~fastiot.core.data_models.ReplySubject`) the button sends a request and the reply, or the
error, appears below the form.

Mistakes (a missing field, bad JSON, a wrong subject, nobody answering) are shown next to the form
and never raised into the cell.

Example:
    >>> from fastiot.msg.thing import Thing
    >>> from fastiot_widgets import Publisher
    >>> pub = Publisher(Thing)                  # doctest: +SKIP
    >>> pub                                     # doctest: +SKIP
    >>> pub.values = {"machine": "press_1", "name": "temp", "value": 21.5}  # doctest: +SKIP
    >>> await pub.publish()                     # or click Publish  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import html
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Union

import ipywidgets as widgets
import nats.errors
import pydantic
import traitlets
from pydantic_core import PydanticUndefined

from fastiot._tasks import BackgroundTasks
from fastiot.core.broker_connection import BrokerConnection
from fastiot.core.data_models import FastIoTRequest, ReplySubject, Subject
from fastiot.core.time import get_time_now
from fastiot.exceptions import FormError, ReplyHandlerError

from ._common import (
    ConnectionStatus,
    follow_connection,
    format_exception,
    pre_html,
    resolve_connection,
)

__all__ = ["DEFAULT_REQUEST_TIMEOUT", "FormError", "Publisher"]

# Interactive requests should fail fast; FASTIOT_NATS_DEFAULT_TIMEOUT (30 s) is meant for services.
DEFAULT_REQUEST_TIMEOUT = 5.0
_NOW = "now"
_DESCRIPTION_STYLE = {"description_width": "10em"}
_ERROR_COLOR = "#c62828"


class _NoChoice:
    """The dropdown entry of an optional enum field that means ``None``."""

    def __repr__(self) -> str:
        return "(none)"


_NO_CHOICE = _NoChoice()


def _is_class(annotation: Any) -> bool:
    """A plain class, not a generic alias: Python 3.10 says ``isinstance(list[str], type)`` is True."""
    return isinstance(annotation, type) and typing.get_origin(annotation) is None


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None`` / ``Optional[X]``, else ``(annotation, False)``."""
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) < len(typing.get_args(annotation)) and len(args) == 1:
            return args[0], True
    return annotation, False


@dataclass
class _Field:
    """One form input and how its value converts to and from the model's field value."""

    name: str
    kind: str  # bool, int, float, str, choice, datetime, text, json
    widget: widgets.ValueWidget
    optional: bool

    def get(self) -> Any:
        """The field value for the model; ``PydanticUndefined`` leaves the field out.

        Raises:
            ValueError: The input cannot be converted (the message says what to type).
        """
        value = self.widget.value
        if self.kind == "choice":
            return None if value is _NO_CHOICE else value
        if self.kind in ("bool", "int", "float", "str"):
            return value
        text = str(value).strip()
        if not text:
            # Left empty: None if the field may be None, else left out (its default, or "Field required").
            return None if self.optional else PydanticUndefined
        if self.kind == "datetime":
            return get_time_now() if text.lower() == _NOW else text
        if self.kind == "json":
            try:
                return json.loads(text)
            except json.JSONDecodeError as e:
                raise ValueError(
                    f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno}); write strings in double "
                    f'quotes, e.g. "on", numbers as 21.5, lists as [1, 2] and objects as {{"a": 1}}'
                ) from None
        return text  # kind "text": pydantic parses the string (lax mode), e.g. "3" for an int | None

    def set(self, value: Any) -> None:
        """Show ``value`` (a field value of the model) in the input.

        Raises:
            ValueError: ``value`` does not fit the input.
        """
        try:
            if self.kind == "choice":
                self.widget.value = _NO_CHOICE if value is None and self.optional else value
            elif self.kind in ("bool", "int", "float", "str"):
                self.widget.value = value
            elif value is None:
                self.widget.value = ""
            elif self.kind == "datetime":
                self.widget.value = (
                    value.isoformat() if isinstance(value, (dt.datetime, dt.date)) else str(value)
                )
            elif self.kind == "json":
                if isinstance(value, pydantic.BaseModel):
                    value = value.model_dump(mode="json")
                self.widget.value = json.dumps(value, default=str)
            else:
                self.widget.value = str(value)
        except traitlets.TraitError as e:
            raise ValueError(f"{self.name}: {value!r} does not fit this input ({e})") from None


def _field_for(name: str, info: Any) -> _Field:
    """The form input for one pydantic field."""
    annotation, optional = _unwrap_optional(info.annotation)
    has_default = info.default is not PydanticUndefined or info.default_factory is not None
    default: Any = PydanticUndefined
    if info.default is not PydanticUndefined:
        default = info.default
    tooltip = f"{name}: {getattr(info.annotation, '__name__', None) or info.annotation}"
    if info.description:
        tooltip += f" ({info.description})"
    if not has_default:
        tooltip += " (required)"
    common: dict[str, Any] = {"description": name, "tooltip": tooltip, "style": _DESCRIPTION_STYLE}
    layout = widgets.Layout(width="32em")

    kind: str
    widget: widgets.ValueWidget
    choices: list[tuple[str, Any]] | None = None
    if typing.get_origin(annotation) is Literal:
        choices = [(str(v), v) for v in typing.get_args(annotation)]
    elif _is_class(annotation) and issubclass(annotation, enum.Enum):
        choices = [(member.name, member) for member in annotation]
    if choices is not None:
        kind = "choice"
        if optional:
            choices.insert(0, ("(none)", _NO_CHOICE))
        widget = widgets.Dropdown(options=choices, layout=layout, **common)
    elif annotation is bool and not optional:
        kind = "bool"
        widget = widgets.Checkbox(value=False, indent=False, **common)
    elif annotation is int and not optional:
        kind = "int"
        widget = widgets.IntText(value=0, layout=layout, **common)
    elif annotation is float and not optional:
        kind = "float"
        widget = widgets.FloatText(value=0.0, layout=layout, **common)
    elif annotation is str and not optional:
        kind = "str"
        widget = widgets.Text(value="", layout=layout, **common)
    elif _is_class(annotation) and issubclass(annotation, dt.datetime):
        kind = "datetime"
        # "now" is resolved when the message is sent, so a message published later is not stale.
        widget = widgets.Text(
            value=_NOW, placeholder="now, or e.g. 2024-01-31T12:00:00Z", layout=layout, **common
        )
    elif _is_class(annotation) and annotation in (int, float, bool, dt.date, dt.time, dt.timedelta):
        kind = "text"  # an optional scalar: empty means None, anything else pydantic parses
        widget = widgets.Text(
            value="", placeholder="empty for None" if optional else "", layout=layout, **common
        )
    elif (
        _is_class(annotation)
        and not issubclass(annotation, (pydantic.BaseModel, dict, list, tuple, set, frozenset))
        and annotation is not typing.Any
    ):
        kind = "text"  # UUID, Decimal, Path and friends parse from their text form
        widget = widgets.Text(
            value="", placeholder="empty for None" if optional else "", layout=layout, **common
        )
    else:
        kind = "json"
        widget = widgets.Textarea(
            value="",
            placeholder='JSON, e.g. 21.5, "on", [1, 2] or {"a": 1}',
            layout=widgets.Layout(width="32em", height="3.2em"),
            **common,
        )
    field = _Field(name=name, kind=kind, widget=widget, optional=optional)
    if default is not PydanticUndefined:
        field.set(default)
    return field


class Publisher(widgets.VBox):
    """A form that publishes a message, or sends a request and shows the reply.

    Args:
        model_cls_or_subject: A :class:`FastIoTPublish` model (publish mode), a :class:`FastIoTRequest`
            model (request mode), a :class:`Subject` or :class:`ReplySubject`, or a subject name (its
            messages are plain dicts, typed as JSON).
        connection: The broker connection; ``None`` means the workbench connection.

    From code: set :attr:`values`, then ``await pub.publish()`` or ``await pub.request()``; or click
    :attr:`publish_button`. Failures never raise: they are in :attr:`error` and shown below the form.
    """

    mode = traitlets.Enum(("publish", "request"), default_value="publish", help="What the button does.")
    subject = traitlets.Unicode("", help="The subject the message is published or the request is sent on.")
    error = traitlets.Unicode("", help="Why the last publish or request failed; '' after a success.")
    sent = traitlets.Int(0, help="Messages published, or requests answered, through this form.")
    timeout = traitlets.Float(DEFAULT_REQUEST_TIMEOUT, help="Seconds a request waits for its reply.")

    def __init__(
        self,
        model_cls_or_subject: type[pydantic.BaseModel] | Subject | str,
        connection: BrokerConnection | None = None,
    ) -> None:
        self.connection: BrokerConnection | None = connection
        self.reply: Any = None
        """The last reply received (request mode)."""
        self.last_message: Any = None
        """The last message published or sent as a request."""
        self._tasks: BackgroundTasks = BackgroundTasks(self._on_task_error)
        self._subject_auto: bool = True
        self._setting_subject: bool = False
        self._subject_tokens: list[str] = []
        self._subject_base: Callable[[str], Subject] | None = None

        target = model_cls_or_subject
        if isinstance(target, str):
            target = Subject(name=target, msg_cls=dict)
        mode = "publish"
        reply_cls: Any = None
        initial_subject = ""
        if isinstance(target, Subject):
            msg_cls = target.msg_cls
            initial_subject = target.name
            if isinstance(target, ReplySubject):
                mode, reply_cls = "request", target.reply_cls
        elif isinstance(target, type) and issubclass(target, FastIoTRequest):
            msg_cls, mode = target, "request"
            reply_subject = target.get_reply_subject()  # raises, saying what to add, without _reply_cls
            reply_cls, initial_subject = reply_subject.reply_cls, reply_subject.name
        elif isinstance(target, type) and issubclass(target, pydantic.BaseModel):
            msg_cls = target
            get_subject = getattr(target, "get_subject", None)
            if get_subject is not None:  # any other pydantic model is published on a subject one types
                try:
                    initial_subject = get_subject().name
                except (ValueError, TypeError):
                    # A hierarchical subject like Thing's: it needs a name, made from the form's fields.
                    self._subject_base = get_subject
                    self._subject_tokens = [t for t in ("machine", "name") if t in target.model_fields]
        else:
            raise TypeError(
                "Publisher needs a pydantic model class (e.g. Thing or a FastIoTRequest), a Subject or "
                f"ReplySubject, or a subject name; got {model_cls_or_subject!r}"
            )
        self.msg_cls: Any = msg_cls
        self.reply_cls: Any = reply_cls

        if isinstance(msg_cls, type) and issubclass(msg_cls, pydantic.BaseModel):
            self.fields: dict[str, _Field] = {
                name: _field_for(name, info) for name, info in msg_cls.model_fields.items()
            }
        else:  # a dict subject: the whole message is one JSON object
            message = _Field(
                name="message",
                kind="json",
                widget=widgets.Textarea(
                    value="{}",
                    description="message",
                    placeholder='a JSON object, e.g. {"a": 1}',
                    style=_DESCRIPTION_STYLE,
                    layout=widgets.Layout(width="32em", height="5em"),
                ),
                optional=False,
            )
            self.fields = {"message": message}

        self.subject_field = widgets.Text(
            value=initial_subject,
            description="subject",
            tooltip="Edit to publish elsewhere; clear it to go back to the model's subject",
            style=_DESCRIPTION_STYLE,
            layout=widgets.Layout(width="32em"),
        )
        self.publish_button = widgets.Button(
            description="Send request" if mode == "request" else "Publish",
            icon="paper-plane",
            button_style="primary",
        )
        self.timeout_field = widgets.BoundedFloatText(
            value=self.timeout,
            min=0.01,
            max=3600.0,
            step=0.5,
            description="timeout s",
            style=_DESCRIPTION_STYLE,
            layout=widgets.Layout(width="16em"),
        )
        self.connection_status = ConnectionStatus()
        self.field_errors = widgets.HTML()
        """Validation errors, shown next to the form."""
        self.output = widgets.HTML()
        """The reply, the error, or what was published."""

        self.mode = mode
        traitlets.link((self.timeout_field, "value"), (self, "timeout"))
        self.subject_field.observe(self._on_subject_edit, names="value")
        for token in self._subject_tokens:
            self.fields[token].widget.observe(lambda _change: self._update_auto_subject(), names="value")
        self.publish_button.on_click(lambda _b: self._tasks.spawn(self.submit(), what=self.mode))

        controls: list[widgets.Widget] = [self.publish_button]
        if mode == "request":
            controls.append(self.timeout_field)
        title = getattr(msg_cls, "__name__", "message")
        super().__init__(
            children=[
                widgets.HTML(f"<b>{html.escape(title)}</b> &middot; {mode}"),
                self.connection_status,
                self.subject_field,
                *(f.widget for f in self.fields.values()),
                widgets.HBox(controls),
                self.field_errors,
                self.output,
            ]
        )
        self._update_auto_subject()
        self.subject = self.subject_field.value
        follow_connection(self.connection_status, connection, self._tasks)

    # -- subject -----------------------------------------------------------------------------------

    def _auto_subject(self) -> str | None:
        if self._subject_base is None:
            return None
        parts = []
        for token in self._subject_tokens:
            value = str(self.fields[token].widget.value).strip()
            ok = value and not any(c in value for c in " \t*>") and ".." not in value
            parts.append(value.strip(".") if ok else f"<{token}>")
        try:
            return self._subject_base(".".join(parts) or "<name>").name
        except (ValueError, TypeError):
            return None

    def _update_auto_subject(self) -> None:
        if not self._subject_auto:
            return
        auto = self._auto_subject()
        if auto is not None:
            self._setting_subject = True
            try:
                self.subject_field.value = auto
            finally:
                self._setting_subject = False

    def _on_subject_edit(self, change: dict[str, Any]) -> None:
        if not self._setting_subject:
            new = change["new"].strip()
            # Typing a subject of one's own stops the automatic one; clearing the field brings it back.
            self._subject_auto = not new or new == self._auto_subject()
            if not new:
                self._update_auto_subject()
        self.subject = self.subject_field.value

    @traitlets.observe("subject")
    def _subject_changed(self, change: dict[str, Any]) -> None:
        if self.subject_field.value != change["new"]:
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
        """The message the form describes.

        Raises:
            FormError: An input cannot be converted.
            pydantic.ValidationError: The values do not make a valid model.
            TypeError: A dict subject's input is not a JSON object.
        """
        values = self.values
        if not (isinstance(self.msg_cls, type) and issubclass(self.msg_cls, pydantic.BaseModel)):
            message = values.get("message", {})
            if not isinstance(message, dict):
                raise FormError(
                    {"message": f'must be a JSON object like {{"a": 1}}, got {type(message).__name__}'}
                )
            return message
        return self.msg_cls(**values)

    def _build(self) -> tuple[Subject, Any] | None:
        """The subject and message, or None after showing what is wrong next to the form."""
        problems: list[str] = []
        message: Any = None
        try:
            message = self.build_message()
        except FormError as e:
            problems += [f"{name}: {problem}" for name, problem in e.errors.items()]
        except pydantic.ValidationError as e:
            for err in e.errors():
                where = ".".join(str(part) for part in err["loc"]) or "message"
                problems.append(f"{where}: {err['msg']}")
        subject_name = self.subject_field.value.strip()
        subject: Subject | None = None
        tokens = subject_name.split(".")
        if not subject_name:
            problems.append("subject: give the subject to send on, e.g. v1.my_model")
        elif "*" in tokens or ">" in tokens:
            problems.append(f"subject: {subject_name!r} is a wildcard; messages go to one concrete subject")
        elif "<" in subject_name:
            missing = ", ".join(self._subject_tokens) or "the placeholders"
            problems.append(f"subject: fill in {missing} (the subject is {subject_name!r})")
        else:
            try:
                if self.mode == "request":
                    subject = ReplySubject(name=subject_name, msg_cls=self.msg_cls, reply_cls=self.reply_cls)
                else:
                    subject = Subject(name=subject_name, msg_cls=self.msg_cls)
            except pydantic.ValidationError as e:
                problems.append(f"subject: {e.errors()[0]['msg']}")
        if problems or subject is None:
            self._show_problems(problems)
            return None
        self.field_errors.value = ""
        return subject, message

    def _show_problems(self, problems: list[str]) -> None:
        self.error = "\n".join(problems)
        self.field_errors.value = pre_html(self.error, color=_ERROR_COLOR)
        self.output.value = ""

    # -- actions -----------------------------------------------------------------------------------

    async def submit(self) -> Any:
        """What the button does: :meth:`publish` or :meth:`request`, by :attr:`mode`."""
        if self.mode == "request":
            return await self.request()
        return await self.publish()

    async def publish(self) -> Any:
        """Publish the form's message on the subject.

        Returns:
            The message published, or ``None`` if it was not (why is in :attr:`error`).
        """
        if self.mode == "request":
            raise TypeError(
                "this form sends requests (its model is a FastIoTRequest): use `await pub.request()`"
            )
        built = self._build()
        if built is None:
            return None
        subject, message = built
        try:
            connection = await self._connection()
            await connection.publish(subject, message)
        except Exception as e:
            self._show_failure(f"publishing on {subject.name} failed:\n{format_exception(e)}")
            return None
        self.last_message = message
        self.sent += 1
        self.error = ""
        self.output.value = (
            f"<span style='color:#2e7d32'>&#10003;</span> published #{self.sent} on "
            f"<code>{html.escape(subject.name)}</code> at {get_time_now():%H:%M:%S}"
        )
        return message

    async def request(self) -> Any:
        """Send the form's request and show the reply.

        Returns:
            The reply, or ``None`` if there is none (why is in :attr:`error`: the service's error,
            nobody answering, or no reply within :attr:`timeout`).
        """
        if self.mode != "request":
            raise TypeError("this form publishes (its model is no FastIoTRequest): use `await pub.publish()`")
        built = self._build()
        if built is None:
            return None
        subject, message = built
        assert isinstance(subject, ReplySubject)
        self.output.value = f"waiting for a reply on <code>{html.escape(subject.name)}</code> ..."
        try:
            connection = await self._connection()
            reply = await connection.request(subject, message, timeout=self.timeout)
        except ReplyHandlerError as e:
            self._show_failure(f"the service answering {subject.name} failed: {e.remote_error}")
            return None
        except nats.errors.NoRespondersError:
            self._show_failure(
                f"no service answers requests on {subject.name}: start one (e.g. a %%service with "
                f"@reply(subject=...)) or check the subject"
            )
            return None
        except asyncio.TimeoutError:  # nats.errors.TimeoutError is one too
            self._show_failure(f"no reply on {subject.name} within {self.timeout:g} s (timeout s)")
            return None
        except Exception as e:
            self._show_failure(f"the request on {subject.name} failed:\n{format_exception(e)}")
            return None
        self.last_message = message
        self.reply = reply
        self.sent += 1
        self.error = ""
        if isinstance(reply, pydantic.BaseModel):
            text = f"{type(reply).__name__} {reply.model_dump_json(indent=2)}"
        else:
            text = json.dumps(reply, indent=2, default=str)
        self.output.value = (
            f"<span style='color:#2e7d32'>&#10003;</span> reply #{self.sent} at {get_time_now():%H:%M:%S}"
            + pre_html(text, max_height="24em")
        )
        return reply

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until what the button started is done (its outcome is in :attr:`error` / :attr:`output`)."""
        await self._tasks.wait(timeout)

    async def _connection(self) -> BrokerConnection:
        connection = await resolve_connection(self.connection)
        self.connection_status.attach(connection)
        return connection

    def _show_failure(self, text: str) -> None:
        self.error = text
        self.output.value = pre_html(text, color=_ERROR_COLOR)

    def _on_task_error(self, exc: BaseException, what: str) -> None:
        self.error = f"{what} failed:\n{format_exception(exc)}"
        self.output.value = pre_html(self.error, color=_ERROR_COLOR)

    def close(self) -> None:
        """Cancel the form's tasks and stop following the connection."""
        if "connection_status" not in self.__dict__:  # __init__ failed (ipywidgets closes on __del__)
            return
        self._tasks.cancel_all()
        self.connection_status.close()
        super().close()

    def __repr__(self) -> str:
        return f"Publisher({getattr(self.msg_cls, '__name__', self.msg_cls)}, {self.mode}, {self.subject!r})"
