"""The form the Publisher builds from a pydantic model: one input per field, converted both ways.

Numbers become number inputs, strings text inputs, booleans checkboxes, enums and ``Literal`` a
dropdown, datetimes a text input that says ``now`` (the time of sending) or takes an ISO date, and
everything else (``Any``, dicts, lists, nested models) a JSON text area.

Example:
    >>> from fastiot.msg.thing import Thing
    >>> fields = form_fields(Thing)
    >>> fields["timestamp"].widget.value
    'now'
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Union

import ipywidgets as widgets
import pydantic
import traitlets
from pydantic_core import PydanticUndefined

from fastiot.core.data_models import FastIoTPublish, FastIoTRequest, ReplySubject, Subject
from fastiot.core.time import get_time_now
from fastiot.exceptions import SubjectHierarchyError

from . import _loop_bound as ui

__all__ = [
    "DESCRIPTION_STYLE",
    "FormField",
    "FormTarget",
    "SubjectFollower",
    "form_fields",
    "form_target",
    "message_field",
]

NOW = "now"
DESCRIPTION_STYLE = {"description_width": "10em"}


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
class FormField:
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
            return get_time_now() if text.lower() == NOW else text
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

    def raw_input(self) -> Any:
        """The input as typed, JSON-able (a dropdown's label): what a template keeps, ``now`` included."""
        if self.kind == "choice":
            return self.widget.label
        return self.widget.value

    def set_raw_input(self, value: Any) -> None:
        """Put back what :meth:`raw_input` returned.

        Raises:
            ValueError: ``value`` does not fit the input (e.g. a dropdown label that no longer exists).
        """
        try:
            if self.kind == "choice":
                self.widget.label = value
            else:
                self.widget.value = value
        except traitlets.TraitError as e:
            raise ValueError(f"{self.name}: {value!r} does not fit this input ({e})") from None


def _field_for(name: str, info: Any) -> FormField:
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
    common: dict[str, Any] = {"description": name, "tooltip": tooltip, "style": DESCRIPTION_STYLE}
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
        widget = ui.Dropdown(options=choices, layout=layout, **common)
    elif annotation is bool and not optional:
        kind = "bool"
        widget = ui.Checkbox(value=False, indent=False, **common)
    elif annotation is int and not optional:
        kind = "int"
        widget = ui.IntText(value=0, layout=layout, **common)
    elif annotation is float and not optional:
        kind = "float"
        widget = ui.FloatText(value=0.0, layout=layout, **common)
    elif annotation is str and not optional:
        kind = "str"
        widget = ui.Text(value="", layout=layout, **common)
    elif _is_class(annotation) and issubclass(annotation, dt.datetime):
        kind = "datetime"
        # "now" is resolved when the message is sent, so a message published later is not stale.
        widget = ui.Text(value=NOW, placeholder="now, or e.g. 2024-01-31T12:00:00Z", layout=layout, **common)
    elif _is_class(annotation) and annotation in (int, float, bool, dt.date, dt.time, dt.timedelta):
        kind = "text"  # an optional scalar: empty means None, anything else pydantic parses
        widget = ui.Text(value="", placeholder="empty for None" if optional else "", layout=layout, **common)
    elif (
        _is_class(annotation)
        and not issubclass(annotation, (pydantic.BaseModel, dict, list, tuple, set, frozenset))
        and annotation is not typing.Any
    ):
        kind = "text"  # UUID, Decimal, Path and friends parse from their text form
        widget = ui.Text(value="", placeholder="empty for None" if optional else "", layout=layout, **common)
    else:
        kind = "json"
        widget = ui.Textarea(
            value="",
            placeholder='JSON, e.g. 21.5, "on", [1, 2] or {"a": 1}',
            layout=widgets.Layout(width="32em", height="3.2em"),
            **common,
        )
    field = FormField(name=name, kind=kind, widget=widget, optional=optional)
    if default is not PydanticUndefined:
        field.set(default)
    return field


def form_fields(model: type[pydantic.BaseModel]) -> dict[str, FormField]:
    """One input per field of ``model``, in the model's field order, defaults filled in."""
    return {name: _field_for(name, info) for name, info in model.model_fields.items()}


def message_field() -> FormField:
    """The one input of a form for plain dict messages: the whole message as a JSON object."""
    return FormField(
        name="message",
        kind="json",
        widget=ui.Textarea(
            value="{}",
            description="message",
            placeholder='a JSON object, e.g. {"a": 1}',
            style=DESCRIPTION_STYLE,
            layout=widgets.Layout(width="32em", height="5em"),
        ),
        optional=False,
    )


@dataclass
class FormTarget:
    """What a Publisher was given, resolved: the message class (``None``: free-form), its mode, the
    reply class of a request, the initial subject, and for a hierarchical subject (a Thing's) how to
    make it from the form's fields."""

    msg_cls: Any
    mode: str
    reply_cls: Any = None
    subject: str = ""
    subject_base: Callable[[str], Subject] | None = None
    subject_tokens: list[str] = field(default_factory=list)


def form_target(target: Any) -> FormTarget:
    """Resolve a Publisher's first argument (a model class, a Subject, a subject name or ``None``).

    Raises:
        TypeError: ``target`` is none of those, or a request model without ``_reply_cls``.
    """
    if target is None:
        return FormTarget(None, "publish")
    if isinstance(target, str):
        return FormTarget(None, "publish", subject=target)
    if isinstance(target, Subject):
        if isinstance(target, ReplySubject):
            return FormTarget(target.msg_cls, "request", target.reply_cls, target.name)
        return FormTarget(target.msg_cls, "publish", subject=target.name)
    if isinstance(target, type) and issubclass(target, FastIoTRequest):
        reply_subject = target.get_reply_subject()  # raises, saying what to add, without _reply_cls
        return FormTarget(target, "request", reply_subject.reply_cls, reply_subject.name)
    if isinstance(target, type) and issubclass(target, FastIoTPublish):
        try:
            return FormTarget(target, "publish", subject=target.get_subject().name)
        except (ValueError, TypeError, SubjectHierarchyError):
            # A hierarchical subject like Thing's: it needs a name, made from the form's fields.
            tokens: list[str] = [t for t in ("machine", "name") if t in target.model_fields]
            return FormTarget(target, "publish", subject_base=target.get_subject, subject_tokens=tokens)
    if isinstance(target, type) and issubclass(target, pydantic.BaseModel):
        # Any other pydantic model (a response too: it has no subject of its own) is published on a
        # subject one types.
        return FormTarget(target, "publish")
    raise TypeError(
        "Publisher needs a pydantic model class (e.g. Thing or a FastIoTRequest), a Subject or "
        f"ReplySubject, a subject name, or nothing (free-form); got {target!r}"
    )


class SubjectFollower:
    """Keeps a subject input on the subject the model makes from the form's ``machine`` and ``name``
    inputs (``v1.thing.<machine>.<name>``) until a person types a subject of their own; clearing the
    input brings the automatic subject back."""

    def __init__(self, subject_field: widgets.Text, fields: dict[str, FormField], target: FormTarget) -> None:
        self._field: widgets.Text = subject_field
        self._fields: dict[str, FormField] = fields
        self._base: Callable[[str], Subject] | None = target.subject_base
        self.tokens: list[str] = list(target.subject_tokens)
        self._auto: bool = True
        self._setting: bool = False
        subject_field.observe(self._on_edit, names="value")
        for token in self.tokens:
            fields[token].widget.observe(lambda _change: self.update(), names="value")
        self.update()

    def auto_subject(self) -> str | None:
        """The subject the model makes from the inputs now (``<name>`` where one is missing)."""
        if self._base is None:
            return None
        parts = []
        for token in self.tokens:
            value = str(self._fields[token].widget.value).strip()
            ok = value and not any(c in value for c in " \t*>") and ".." not in value
            parts.append(value.strip(".") if ok else f"<{token}>")
        try:
            return self._base(".".join(parts) or "<name>").name
        except (ValueError, TypeError, SubjectHierarchyError):
            return None

    def update(self) -> None:
        """Put the automatic subject into the input, unless a person typed their own."""
        auto = self.auto_subject() if self._auto else None
        if auto is not None:
            self._setting = True
            try:
                self._field.value = auto
            finally:
                self._setting = False

    def _on_edit(self, change: dict[str, Any]) -> None:
        if self._setting:
            return
        new = change["new"].strip()
        self._auto = not new or new == self.auto_subject()
        if not new:
            self.update()
