"""Data models sent over the broker: pydantic v2 models that know their subject.

Example:
    >>> from fastiot.core.data_models import FastIoTPublish
    >>> class MachineState(FastIoTPublish):
    ...     machine: str
    ...     running: bool
    >>> MachineState.get_subject().name
    'v1.machine_state'
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Any, ClassVar, Union

from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from pydantic_core import PydanticUndefined

from fastiot.core.subject_helper import (
    HIERARCHY,
    MSG_FORMAT_VERSION,
    WILDCARD_SAME_LEVEL,
    camel_to_snake,
    check_subject,
)
from fastiot.core.time import ensure_tzinfo
from fastiot.env import env_broker
from fastiot.exceptions import SubjectHierarchyError

__all__ = [
    "HIERARCHY",
    "MSG_FORMAT_VERSION",
    "WILDCARD_SAME_LEVEL",
    "FastIoTData",
    "FastIoTPublish",
    "FastIoTRequest",
    "FastIoTResponse",
    "Msg",
    "MsgCls",
    "MsgClsPub",
    "MsgClsReq",
    "MsgClsResp",
    "MsgPub",
    "MsgReq",
    "MsgResp",
    "ReplySubject",
    "Subject",
    "model_generation",
]


# Field types that never hold a datetime, so set_timezones need not look at them.
_NEVER_DATETIME: frozenset[Any] = frozenset((str, int, float, bool, bytes))
# Values that are surely no datetime and no container, e.g. the float in an ``Any`` field: one set lookup.
_PLAIN_VALUE_TYPES: frozenset[type] = frozenset((float, int, str, bool, bytes, type(None)))
_UTC = timezone.utc
# FastIoT's settings of a model class. FastIoT code may annotate them (`_reply_cls: Type[R] = R`), which
# pydantic v1 (FastIoT's) left as class attributes and pydantic v2 turns into per-instance private ones,
# invisible to the classmethods that read them. They are put back as class attributes.
_CLASS_SETTINGS = ("_handles_hierarchical_subjects", "_reply_cls")
# Counts the FastIoTData subclasses defined so far: who maps subjects to models (fastiot.payloads)
# rebuilds its map when this changes, instead of walking every subclass on every lookup.
_model_generation = 0


def model_generation() -> int:
    """A number that changes whenever a new :class:`FastIoTData` subclass is defined (e.g. in a cell)."""
    return _model_generation


class FastIoTData(BaseModel):
    """Base model of everything sent between services.

    The subject is made from the class name: ``MySpecialModel`` publishes on ``v1.my_special_model``.
    Every datetime field is normalized to timezone-aware UTC (naive values are taken as UTC).
    Any pydantic model works as long as its fields serialize with msgpack (plain Python types,
    datetimes, nested models).

    Example:
        >>> from fastiot.core import FastIoTPublish
        >>> class Command(FastIoTPublish):
        ...     _handles_hierarchical_subjects = False  # one destination: no `*` or `>`
        ...     action: str
        >>> Command.get_subject().name
        'v1.command'
    """

    _handles_hierarchical_subjects: ClassVar[bool | None] = None
    """Whether subjects of this model have a hierarchy below the model's own subject (FastIoT's meaning).

    ``False``: no hierarchy; :meth:`FastIoTPublish.get_subject` refuses ``*`` and ``>``, e.g. for control
    messages meant for one destination. ``True``: a name is required, as for :class:`fastiot.msg.thing.Thing`
    (``Thing.get_subject("press_1.temperature")``). ``None`` (the default): no check.
    """

    @classmethod
    def _get_subject_name(cls, name: str = "") -> str:
        """``v1.<class name in snake_case>[.name]`` without spaces, checked against the hierarchy setting.

        Raises:
            SubjectHierarchyError: (a ``RuntimeError``) if the subject does not fit
                ``_handles_hierarchical_subjects``.
        """
        model = camel_to_snake(cls.__name__)
        subject_name = f"{MSG_FORMAT_VERSION}.{model}.{name}" if name else f"{MSG_FORMAT_VERSION}.{model}"
        # As in FastIoT: "a machine.a sensor" becomes "amachine.asensor", as spaces are invalid in subjects.
        subject_name = subject_name.replace(" ", "")
        hierarchical = cls._handles_hierarchical_subjects
        if hierarchical is False and (HIERARCHY in subject_name or WILDCARD_SAME_LEVEL in subject_name):
            raise SubjectHierarchyError(
                f"subject {subject_name!r} has a wildcard, but {cls.__name__} sets "
                f"_handles_hierarchical_subjects = False: its subjects have no hierarchy. "
                f"Use {cls.__name__}.get_subject() or a plain name without '*' and '>'"
            )
        if hierarchical is True and not name:
            raise SubjectHierarchyError(
                f"{cls.__name__} subjects are hierarchical: give a name, "
                f"e.g. {cls.__name__}.get_subject('my_sensor') for {subject_name}.my_sensor, "
                f"or {cls.__name__}.get_subject('>') to subscribe to all of them"
            )
        return subject_name

    # The fields that may hold a datetime: all but those declared str, int, float, bool or bytes.
    # Found once per class, so each validation looks at these only (for Thing: value and timestamp).
    _fastiot_datetime_fields: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        global _model_generation
        super().__pydantic_init_subclass__(**kwargs)
        _model_generation += 1
        for name in _CLASS_SETTINGS:
            private = cls.__private_attributes__.pop(name, None)  # this class's own dict, not its base's
            if private is not None and private.default is not PydanticUndefined:
                setattr(cls, name, private.default)
        cls._fastiot_datetime_fields = tuple(
            name for name, field in cls.model_fields.items() if field.annotation not in _NEVER_DATETIME
        )

    @model_validator(mode="after")
    def set_timezones(self) -> FastIoTData:
        """Convert every datetime field to UTC (naive datetimes are taken as UTC).

        This includes datetimes inside list, tuple and dict fields, e.g. ``list[datetime]``.
        """
        # Runs for every message built or received: the common case (a UTC datetime) makes no call.
        values = self.__dict__
        for key in self._fastiot_datetime_fields:
            value = values[key]
            kind = type(value)
            if kind is datetime:
                if value.tzinfo is not _UTC:
                    values[key] = ensure_tzinfo(value)
            elif kind not in _PLAIN_VALUE_TYPES and isinstance(value, (datetime, list, tuple, dict)):
                values[key] = _to_utc(value)
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        # Keep the UTC guarantee for assignments after construction too.
        super().__setattr__(name, _to_utc(value))


_CONTAINERS = frozenset((list, tuple, dict))


def _may_hold_datetimes(items: Any) -> bool:
    # set(map(type, ...)) runs in C: a list of 1000 floats is cleared in ~10 us, with no Python loop.
    kinds = set(map(type, items))
    return not kinds.isdisjoint(_CONTAINERS) or any(issubclass(kind, datetime) for kind in kinds)


def _to_utc(value: Any) -> Any:
    """``ensure_tzinfo`` for a value and for the datetimes in its lists, tuples and dicts.

    A container without a datetime to change is returned as it is (the same object).
    """
    # Exact types only: subclasses (a namedtuple, a defaultdict) keep their type untouched.
    kind = type(value)
    if kind is list or kind is tuple:
        if not _may_hold_datetimes(value):
            return value
        items = [_to_utc(v) for v in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return items if kind is list else tuple(items)
    if kind is dict:
        if not _may_hold_datetimes(value.values()):
            return value
        converted = {k: _to_utc(v) for k, v in value.items()}
        if all(converted[k] is v for k, v in value.items()):
            return value
        return converted
    return ensure_tzinfo(value)


# Runtime aliases with FastIoT's names, kept importable on Python 3.10 (hence Union).
Msg = Union[FastIoTData, dict]  # type: ignore[type-arg]  # noqa: UP007 - FastIoT's very alias
MsgCls = type[Msg]


class FastIoTPublish(FastIoTData):
    """Base model for data that is published (fire and forget).

    Example:
        >>> class Temperature(FastIoTPublish):
        ...     celsius: float
        >>> Temperature.get_subject("oven_1").name
        'v1.temperature.oven_1'
    """

    @classmethod
    def get_subject(cls, name: str = "") -> Subject:
        """The subject this model is published on.

        Args:
            name: An optional hierarchy below the model's subject, e.g. ``"my_sensor"`` gives
                ``v1.my_model.my_sensor``; ``"*"`` or ``">"`` subscribe to all of them. Spaces are removed.

        Raises:
            SubjectHierarchyError: (a ``RuntimeError``) if ``name`` does not fit the model's
                ``_handles_hierarchical_subjects``: a wildcard where it is ``False``, no name where it is
                ``True``.
        """
        return Subject(name=cls._get_subject_name(name=name), msg_cls=cls)


MsgPub = Union[FastIoTPublish, dict]  # type: ignore[type-arg]  # noqa: UP007 - FastIoT's very alias
MsgClsPub = type[MsgPub]


class FastIoTResponse(FastIoTData):
    """Base model of an answer to a :class:`FastIoTRequest`."""

    @classmethod
    def get_subject(cls, name: str = "") -> Subject:
        """Refused: a response has no subject of its own (use the request's ``get_reply_subject()``)."""
        raise NotImplementedError(
            f"{cls.__name__} is a response; it is sent to a requester's inbox and has no subject of its own. "
            f"Use the request model's get_reply_subject() instead."
        )


MsgResp = Union[FastIoTResponse, dict]  # type: ignore[type-arg]  # noqa: UP007 - FastIoT's very alias
MsgClsResp = type[MsgResp]


class FastIoTRequest(FastIoTData):
    """Base model of a request. Set ``_reply_cls`` to the response model.

    Example:
        >>> class StatusReply(FastIoTResponse):
        ...     ok: bool
        >>> class StatusRequest(FastIoTRequest):
        ...     _reply_cls = StatusReply
        >>> StatusRequest.get_reply_subject("press_1").name
        'v1.status_request.press_1'
    """

    _reply_cls: ClassVar[type[FastIoTData] | type[dict[str, Any]] | None] = None

    @classmethod
    def get_reply_subject(cls, name: str = "") -> ReplySubject:
        """The subject requests of this model are sent on, with the reply model attached."""
        if cls._reply_cls is None:
            raise TypeError(
                f"{cls.__name__} has no reply class: add `_reply_cls = MyResponse` to the class body"
            )
        return ReplySubject(name=cls._get_subject_name(name=name), msg_cls=cls, reply_cls=cls._reply_cls)


MsgReq = Union[FastIoTRequest, dict]  # type: ignore[type-arg]  # noqa: UP007 - FastIoT's very alias
MsgClsReq = type[MsgReq]


def _check_msg_cls(value: Any) -> type:
    if isinstance(value, type) and (issubclass(value, BaseModel) or issubclass(value, dict)):
        return value
    raise TypeError(
        f"msg_cls must be a pydantic model class (e.g. a FastIoTData subclass) or dict, got {value!r}"
    )


class Subject(BaseModel):
    """A subject to publish or subscribe to, and the model its messages decode to.

    Example:
        >>> Subject(name="v1.thing.>", msg_cls=dict).name
        'v1.thing.>'
    """

    model_config = ConfigDict(frozen=True)

    name: str
    """The NATS subject, e.g. ``v1.thing.press_1.temp`` or a wildcard pattern ``v1.thing.>``."""
    msg_cls: Any
    """The model messages are decoded to: a pydantic model class or ``dict``."""

    @field_validator("name")
    @classmethod
    def _check_name(cls, v: str) -> str:
        # The one check of every API (an InvalidSubjectError, a ValueError, which pydantic reports).
        # Tabs and line breaks too: nats-py refuses them only when publishing, with a vaguer message.
        # Wildcards are checked where the name is used (subscribe or publish): FastIoT's sanitized names
        # (`MyModel.*x`) stay Subjects.
        return check_subject(v, wildcards=None)

    @field_validator("msg_cls")
    @classmethod
    def _check_msg_cls_field(cls, v: Any) -> type:
        return _check_msg_cls(v)


class ReplySubject(Subject):
    """A request subject that also knows the model of its reply."""

    reply_cls: Any
    """The model replies decode to: a pydantic model class or ``dict``."""

    @field_validator("reply_cls")
    @classmethod
    def _check_reply_cls(cls, v: Any) -> type:
        return _check_msg_cls(v)

    def make_generic_reply_inbox(self) -> Subject:
        """A fresh, unique inbox subject for one reply."""
        prefix = env_broker.inbox_prefix or "_INBOX"  # a locked-down account may only receive on its own
        return Subject(name=f"{prefix}.{secrets.token_hex(11)}", msg_cls=self.reply_cls)

    def get_reply_inbox(self, reply_to: str) -> Subject:
        """The subject to send a reply to, given a request's ``reply_to`` inbox."""
        return Subject(name=reply_to, msg_cls=self.reply_cls)
