"""CallbackList: the one mechanism behind every ``on_*(callback, remove=False)`` of fastiot.

Modelled on ipywidgets' ``CallbackDispatcher``: registering the same callback twice keeps it once,
removing a callback that is not registered does nothing, and a callback that raises is logged and
never stops the others or the code that notifies. Unlike the dispatcher, a list knows whether its
callbacks are plain functions or coroutine functions and rejects the wrong kind when it is
registered, not when the first event arrives (as nats-py does with its callbacks).
:class:`StatefulCallbackList` keeps, by the same rules, one state object beside each callback (a
throttled listener's last call and the news it has not heard yet).

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
from typing import Any, Generic, ParamSpec, TypeVar

__all__ = ["CallbackList", "StatefulCallbackList", "is_coroutine_callable"]

P = ParamSpec("P")
S = TypeVar("S")

_logger = logging.getLogger("fastiot.callbacks")


def is_coroutine_callable(obj: Any) -> bool:
    """Whether calling ``obj`` returns a coroutine.

    An ``async def`` function does, and so does an object whose ``__call__`` is one.
    """
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
        hint: Added to the error for a callback of the wrong kind: why this kind, what to do instead.
    """

    def __init__(
        self, what: str, *, is_async: bool = False, logger: logging.Logger | None = None, hint: str = ""
    ) -> None:
        self._what: str = what
        self._is_async: bool = is_async
        self._logger: logging.Logger = logger or _logger
        self._hint: str = hint
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
        self.check(callback)
        if callback not in self._callbacks:
            self._callbacks.append(callback)

    def check(self, callback: object) -> None:
        """Raise the error :meth:`register` would raise for ``callback``; do nothing if it would accept it.

        Raises:
            TypeError: ``callback`` is not callable, or is of the wrong kind (sync or async).
        """
        if not callable(callback):
            raise TypeError(f"a {self._what} callback must be callable, got {type(callback).__name__}")
        if is_coroutine_callable(callback) != self._is_async:
            name = getattr(callback, "__qualname__", repr(callback))
            kind = "an async function (async def ...)" if self._is_async else "a plain function (def ...)"
            hint = f": {self._hint}" if self._hint else ""
            raise TypeError(f"a {self._what} callback must be {kind}, got {name}{hint}")

    def clear(self) -> None:
        """Remove every callback."""
        self._callbacks.clear()

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """Call every plain callback; one that raises is logged and the others still run."""
        for callback in list(self._callbacks):
            self.call_one(callback, *args, **kwargs)

    def call_one(self, callback: Callable[P, Any], *args: P.args, **kwargs: P.kwargs) -> None:
        """Call one plain callback (say, a throttled listener that is due); if it raises, it is logged."""
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

    def __contains__(self, callback: object) -> bool:
        return callback in self._callbacks

    def __bool__(self) -> bool:
        return bool(self._callbacks)

    def __iter__(self) -> Iterator[Callable[P, Any]]:
        return iter(list(self._callbacks))

    def __repr__(self) -> str:
        return f"<CallbackList {self._what}: {len(self._callbacks)} callbacks>"


class StatefulCallbackList(CallbackList[P], Generic[P, S]):
    """A :class:`CallbackList` that keeps one state object beside each callback.

    The rules are the list's: a callback registered again keeps its place and its state, removing
    one that is not registered does nothing, the wrong kind is rejected when registered.

    Args:
        what: As for :class:`CallbackList`.
        new_state: Makes the state of a newly registered callback, given the callback.
        is_async: As for :class:`CallbackList`.
        logger: As for :class:`CallbackList`.
        hint: As for :class:`CallbackList`.

    Example:
        >>> from fastiot._callbacks import StatefulCallbackList
        >>> heard: StatefulCallbackList[[int], list[int]] = StatefulCallbackList("count", lambda cb: [])
        >>> heard.register(print)
        >>> heard.state(print).append(3)
        >>> heard.register(print)  # again: same place, same state
        >>> heard.states()
        [[3]]
    """

    def __init__(
        self,
        what: str,
        new_state: Callable[[Callable[P, Any]], S],
        *,
        is_async: bool = False,
        logger: logging.Logger | None = None,
        hint: str = "",
    ) -> None:
        super().__init__(what, is_async=is_async, logger=logger, hint=hint)
        self._new_state: Callable[[Callable[P, Any]], S] = new_state
        self._states: list[S] = []  # the state of self._callbacks[i] is self._states[i]

    def register(self, callback: Callable[P, Any], remove: bool = False) -> None:
        """As :meth:`CallbackList.register`; a new callback gets a state from ``new_state``."""
        index = self._index(callback)
        if remove:
            if index is not None:
                del self._callbacks[index]
                del self._states[index]
            return
        self.check(callback)
        if index is None:
            self._callbacks.append(callback)
            self._states.append(self._new_state(callback))

    def state(self, callback: Callable[P, Any]) -> S:
        """The state kept beside ``callback``.

        Raises:
            KeyError: ``callback`` is not registered.
        """
        index = self._index(callback)
        if index is None:
            raise KeyError(f"no {self._what} callback {callback!r} is registered")
        return self._states[index]

    def states(self) -> list[S]:
        """The states of the callbacks in the order they were registered (a copy of the list)."""
        return list(self._states)

    def clear(self) -> None:
        """Remove every callback and its state."""
        super().clear()
        self._states.clear()

    def _index(self, callback: object) -> int | None:
        # Compared with ==, as list.remove does: bound methods of one object compare equal.
        for index, known in enumerate(self._callbacks):
            if known == callback:
                return index
        return None
