"""CallbackList: the one mechanism behind every ``on_*(callback, remove=False)`` of fastiot.

Modelled on ipywidgets' ``CallbackDispatcher``: registering the same callback twice keeps it once,
removing a callback that is not registered does nothing, and a callback that raises is logged and
never stops the others or the code that notifies. Unlike the dispatcher, a list knows whether its
callbacks are plain functions or coroutine functions and rejects the wrong kind when it is
registered, not when the first event arrives (as nats-py does with its callbacks).

Example:
    >>> from fastiot._callbacks import CallbackList
    >>> on_state: CallbackList[[str]] = CallbackList("state change")
    >>> seen = []
    >>> on_state.register(seen.append)
    >>> on_state("connected")
    >>> seen
    ['connected']
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any, Generic, ParamSpec

__all__ = ["CallbackList", "is_coroutine_callable"]

P = ParamSpec("P")

_logger = logging.getLogger("fastiot.callbacks")


def is_coroutine_callable(obj: Any) -> bool:
    """Whether calling ``obj`` returns a coroutine: an ``async def`` function or an object whose
    ``__call__`` is one."""
    if inspect.iscoroutinefunction(obj):
        return True
    call = getattr(obj, "__call__", None)  # noqa: B004 - async callable objects are allowed
    return call is not None and inspect.iscoroutinefunction(call)


class CallbackList(Generic[P]):
    """An ordered set of callbacks of one kind, called with the same arguments.

    Args:
        what: What the callbacks are told about, for error messages ("state change").
        is_async: True if the callbacks are ``async def`` functions, awaited by :meth:`call_async`;
            False (default) if they are plain functions, called by calling the list.
        logger: Where a failing callback is logged; default ``fastiot.callbacks``.
    """

    def __init__(self, what: str, *, is_async: bool = False, logger: logging.Logger | None = None) -> None:
        self._what: str = what
        self._is_async: bool = is_async
        self._logger: logging.Logger = logger or _logger
        self._callbacks: list[Callable[P, Any]] = []

    def register(self, callback: Callable[P, Any], remove: bool = False) -> None:
        """Add ``callback``, or remove it with ``remove=True``.

        Adding a registered callback again, or removing one that is not registered, does nothing.

        Raises:
            TypeError: ``callback`` is not callable, or is ``async def`` where plain functions are
                expected (or the other way round).
        """
        if remove:
            if callback in self._callbacks:
                self._callbacks.remove(callback)
            return
        if not callable(callback):
            raise TypeError(f"a {self._what} callback must be callable, got {type(callback).__name__}")
        if is_coroutine_callable(callback) != self._is_async:
            name = getattr(callback, "__qualname__", repr(callback))
            kind = "an async function (async def ...)" if self._is_async else "a plain function (def ...)"
            raise TypeError(f"a {self._what} callback must be {kind}, got {name}")
        if callback not in self._callbacks:
            self._callbacks.append(callback)

    def clear(self) -> None:
        """Remove every callback."""
        self._callbacks.clear()

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """Call every plain callback; one that raises is logged and the others still run."""
        for callback in list(self._callbacks):
            try:
                callback(*args, **kwargs)
            except Exception:
                self._logger.exception("%s callback %r failed", self._what, callback)

    async def call_async(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """Await every async callback in turn; one that raises is logged and the others still run."""
        for callback in list(self._callbacks):
            try:
                await callback(*args, **kwargs)
            except Exception:
                self._logger.exception("%s callback %r failed", self._what, callback)

    def __len__(self) -> int:
        return len(self._callbacks)

    def __bool__(self) -> bool:
        return bool(self._callbacks)

    def __iter__(self) -> Iterator[Callable[P, Any]]:
        return iter(list(self._callbacks))

    def __repr__(self) -> str:
        return f"<CallbackList {self._what}: {len(self._callbacks)} callbacks>"
