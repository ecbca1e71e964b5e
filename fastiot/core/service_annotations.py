"""Decorators that declare what a :class:`FastIoTService` does: ``@subscribe``, ``@reply`` and ``@loop``.

Example:
    >>> from fastiot.core import FastIoTService, subscribe, loop
    >>> from fastiot.msg.thing import Thing
    >>> class Printer(FastIoTService):
    ...     @subscribe(subject=Thing.get_subject(">"))
    ...     async def on_thing(self, subject_name: str, thing: Thing) -> None:
    ...         print(subject_name, thing.value)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from fastiot.core.broker_connection import callback_arity
from fastiot.core.data_models import ReplySubject, Subject

__all__ = ["loop", "reply", "subscribe"]

F = TypeVar("F", bound=Callable[..., Any])

# The marks the decorators put on a method (the seed's attribute names). Only this module writes and
# reads them, through the functions below.
_SUBJECT_MARK = "_fastiot_subject"
_REPLY_SUBJECT_MARK = "_fastiot_reply_subject"
_LOOP_MARK = "_fastiot_is_loop"


def subscribed_subject(fn: object) -> Subject | None:
    """The subject ``@subscribe`` gave ``fn``; ``None`` if ``fn`` is no ``@subscribe`` method.

    Example:
        >>> subscribed_subject(print) is None
        True
    """
    subject = getattr(fn, _SUBJECT_MARK, None)
    return subject if isinstance(subject, Subject) else None


def replied_subject(fn: object) -> ReplySubject | None:
    """The subject ``@reply`` gave ``fn``; ``None`` if ``fn`` is no ``@reply`` method.

    Example:
        >>> replied_subject(print) is None
        True
    """
    subject = getattr(fn, _REPLY_SUBJECT_MARK, None)
    return subject if isinstance(subject, ReplySubject) else None


def is_loop(fn: object) -> bool:
    """Whether ``fn`` is a ``@loop`` method.

    Example:
        >>> is_loop(print)
        False
    """
    return getattr(fn, _LOOP_MARK, False) is True


def subscribe(subject: Subject) -> Callable[[F], F]:
    """Subscribe the decorated method to ``subject``.

    The method is ``async def m(self, msg)`` or ``async def m(self, subject_name, msg)``.

    Raises:
        TypeError: At decoration time, if ``subject`` is not a Subject or the method has another shape.
    """
    if not isinstance(subject, Subject):
        raise TypeError(
            f"@subscribe needs a Subject, e.g. @subscribe(subject=Thing.get_subject('>')), got {subject!r}"
        )

    def decorator(fn: F) -> F:
        callback_arity(fn, what="@subscribe method", skip_self=True)
        setattr(fn, _SUBJECT_MARK, subject)
        return fn

    return decorator


def reply(subject: ReplySubject) -> Callable[[F], F]:
    """Answer requests on ``subject`` with what the decorated method returns.

    The method is ``async def m(self, request)`` or ``async def m(self, subject_name, request)`` and
    returns a message of ``subject.reply_cls``.

    Raises:
        TypeError: At decoration time, if ``subject`` is not a ReplySubject or the method has another shape.
    """
    if not isinstance(subject, ReplySubject):
        raise TypeError(
            f"@reply needs a ReplySubject, e.g. @reply(subject=MyRequest.get_reply_subject()), "
            f"got {subject!r}"
        )

    def decorator(fn: F) -> F:
        callback_arity(fn, what="@reply method", skip_self=True)
        setattr(fn, _REPLY_SUBJECT_MARK, subject)
        return fn

    return decorator


def loop(fn: F) -> F:
    """Run the decorated method again and again while the service runs.

    The method is ``async def m(self)`` and returns an awaitable (typically ``asyncio.sleep(x)``) that is
    awaited before the next run. A shutdown interrupts that awaitable, never the method itself.

    Example:
        >>> import asyncio
        >>> class Heartbeat(FastIoTService):  # doctest: +SKIP
        ...     @loop
        ...     async def beat(self):
        ...         self._logger.info("alive")
        ...         return asyncio.sleep(10.0)
    """
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(
            f"@loop method {getattr(fn, '__qualname__', fn)!r} must be an async function (async def)"
        )
    params = [p for p in inspect.signature(fn).parameters.values() if p.default is p.empty]
    if len(params) > 1:
        raise TypeError(
            f"@loop method {fn.__qualname__} must take only self, its signature is {inspect.signature(fn)}"
        )
    setattr(fn, _LOOP_MARK, True)
    return fn
