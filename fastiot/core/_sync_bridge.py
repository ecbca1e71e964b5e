"""The sync bridge: call a broker connection's async API from synchronous code, on any thread.

:class:`SyncBridge` is a base of :class:`fastiot.core.broker_connection.BrokerConnection`; its methods
(``run_threadsafe``, ``publish_sync``, ``request_sync``, ...) are documented there by the seed.

Example:
    >>> def from_a_worker_thread(broker, subject, msg):
    ...     broker.publish_sync(subject, msg, timeout=5.0)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any

from fastiot.exceptions import SyncCallOnLoopThreadError

__all__ = ["SyncBridge", "make_reentrant"]


def make_reentrant(loop: asyncio.AbstractEventLoop) -> bool:
    """Make ``loop`` re-entrant (nest-asyncio2), so a blocking call can run it on its own thread.

    nest-asyncio2 patches the loop's *class*, so this is done only when a blocking call on the loop's
    thread really needs it (or by ``%%service``), never on import or connect.

    Returns:
        True if the loop is (now) re-entrant; False for a loop class that cannot be patched (e.g. uvloop).
    """
    if not isinstance(loop, asyncio.BaseEventLoop):  # e.g. uvloop: cannot be patched
        return False
    import nest_asyncio2  # only here: importing it patches nothing, but most programs never need it

    nest_asyncio2.apply(loop)  # patches once; a second call for the same loop does nothing
    return True


class SyncBridge:
    """Runs coroutines on the connection's event loop for callers on other threads or in sync code.

    Args:
        kwargs: Passed on to the next class in the MRO (cooperative ``__init__``).

    Attributes:
        allow_sync_calls_on_loop_thread: If True, a blocking call made on the loop's own thread runs
            the coroutine to completion right there; the first such call makes the loop re-entrant
            (:func:`make_reentrant`). The workbench's connection sets it. If False (default) such a
            call raises :class:`SyncCallOnLoopThreadError` instead of deadlocking.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._loop_mutex: threading.RLock = threading.RLock()
        self.allow_sync_calls_on_loop_thread: bool = False
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None

    def _set_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._loop_mutex:
            self._loop = loop

    def _on_loop_thread(self) -> bool:
        loop = self._loop
        if loop is None or not loop.is_running():
            return False
        try:
            return asyncio.get_running_loop() is loop
        except RuntimeError:
            return False

    def run_threadsafe_nowait(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        """Schedule a coroutine on the broker's event loop from any thread and return its future."""
        with self._loop_mutex:
            if self._loop is None:
                coro.close()
                raise RuntimeError(
                    "this connection has no event loop: create it inside a running asyncio loop "
                    "(e.g. with `await NatsBrokerConnection.connect()`)"
                )
            return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def run_threadsafe(self, coro: Coroutine[Any, Any, Any], timeout: float = 0.0) -> Any:
        """Run a coroutine on the broker's event loop and wait for its result; callable from any thread.

        Args:
            coro: e.g. ``broker.publish(...)``.
            timeout: Seconds to wait; 0 waits until it is done.

        On the loop's own thread (e.g. a Jupyter cell) blocking would deadlock, so: if
        :attr:`allow_sync_calls_on_loop_thread` is set, the loop is made re-entrant (once) and the
        coroutine runs to completion right here; otherwise :class:`SyncCallOnLoopThreadError` says to
        ``await`` instead.

        Raises:
            concurrent.futures.TimeoutError: The result was not ready within ``timeout``.
            SyncCallOnLoopThreadError: Called on the loop's thread without the opt-in.
        """
        if self._on_loop_thread():
            loop = self._loop
            assert loop is not None
            if not self.allow_sync_calls_on_loop_thread:
                name = getattr(coro, "__qualname__", "the coroutine")
                coro.close()
                raise SyncCallOnLoopThreadError(
                    f"{name} was called synchronously on the event loop's own thread, where waiting would "
                    f"deadlock. Use `await` on the async method instead, or, in a notebook, the connection "
                    f"of `await fastiot.workbench.connection()` (it allows blocking calls and makes the "
                    f"loop re-entrant for them)."
                )
            if not make_reentrant(loop):
                name = getattr(coro, "__qualname__", "the coroutine")
                coro.close()
                raise SyncCallOnLoopThreadError(
                    f"{name} was called synchronously on the event loop's own thread, and this loop "
                    f"({type(loop).__name__}) cannot be made re-entrant; use `await` on the async method"
                )
            task = loop.create_task(coro)
            try:
                return loop.run_until_complete(asyncio.wait_for(task, timeout) if timeout else task)
            except asyncio.TimeoutError as e:
                if timeout and task.cancelled():  # this wait ran out, not the coroutine's own timeout
                    raise concurrent.futures.TimeoutError(f"no result within {timeout} s") from e
                raise
        future = self.run_threadsafe_nowait(coro=coro)
        return future.result(timeout=timeout if timeout else None)
