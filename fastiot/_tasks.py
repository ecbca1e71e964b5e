"""BackgroundTasks: the one way fastiot keeps a task it does not await right away.

The event loop holds tasks only weakly, so a task nobody references can vanish mid-run. Whoever
starts one in the background (a service's ``run_task``, a signal handler, a widget's button click)
puts it into a :class:`BackgroundTasks`, which keeps it until it is done, hands its failure to an
error callback (nothing is dropped silently) and cancels what is left when its owner stops.

Example:
    >>> import asyncio
    >>> from fastiot._tasks import BackgroundTasks
    >>> async def main():
    ...     tasks = BackgroundTasks()
    ...     tasks.spawn(asyncio.sleep(0.01), what="nap")
    ...     await tasks.wait(timeout=1.0)
    ...     return tasks.pending
    >>> asyncio.run(main())
    0
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = [
    "DEFAULT_CANCEL_TIMEOUT",
    "BackgroundTasks",
    "TaskErrorCallback",
    "loop_is_running",
    "running_loop",
]

# How long cancel() waits for cancelled tasks to finish their clean-up.
DEFAULT_CANCEL_TIMEOUT = 5.0

# Called with the exception of a failed task and what it was doing ("start", "publish", ...).
TaskErrorCallback = Callable[[BaseException, str], None]

_logger = logging.getLogger("fastiot.tasks")


class BackgroundTasks:
    """Tasks started without being awaited, each kept until it is done.

    Args:
        on_error: Called with the exception and the task's ``what`` when a task fails (cancellation is
            not a failure). Without it, the failure is logged.
    """

    def __init__(self, on_error: TaskErrorCallback | None = None) -> None:
        self._on_error: TaskErrorCallback | None = on_error
        self._tasks: dict[asyncio.Task[Any], str] = {}

    def spawn(self, coro: Coroutine[Any, Any, Any], *, what: str = "") -> asyncio.Task[Any]:
        """Run ``coro`` as a task on the running loop, without waiting for it.

        Args:
            coro: The work, e.g. ``control.start()``.
            what: A few words for error messages, e.g. ``"start"``; default the coroutine's name.

        Raises:
            RuntimeError: No asyncio loop is running here (e.g. a plain script outside ``asyncio.run``).
        """
        what = what or getattr(coro, "__qualname__", "task")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            coro.close()
            raise RuntimeError(
                f"{what} runs as a task on an asyncio loop, and none is running here; use it in a Jupyter "
                f"kernel, or call the async methods (e.g. `await ctl.start()`) inside asyncio.run(...)"
            ) from None
        task = loop.create_task(coro, name=what)
        self._tasks[task] = what
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        what = self._tasks.pop(task, "task")
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if self._on_error is None:
            _logger.error("%s failed", what, exc_info=exc)
            return
        try:
            self._on_error(exc, what)
        except Exception:  # the error view itself failed: the log is the last place left to say so
            _logger.exception("could not report the error of %s: %r", what, exc)

    @property
    def pending(self) -> int:
        """How many tasks are not done yet."""
        return len(self._tasks)

    def tasks(self) -> list[asyncio.Task[Any]]:
        """The tasks that are not done yet, except the one calling (a task may stop its owner)."""
        current = asyncio.current_task() if loop_is_running() else None
        return [task for task in self._tasks if task is not current]

    async def wait(self, timeout: float | None = 10.0) -> None:
        """Wait until every task started so far (and any they start) is done.

        Raises:
            asyncio.TimeoutError: Some task is still running after ``timeout`` seconds.
        """

        async def drain() -> None:
            while tasks := self.tasks():
                await asyncio.wait(tasks)

        await asyncio.wait_for(drain(), timeout)

    def cancel_all(self) -> None:
        """Cancel every task that is still running (without waiting for them)."""
        for task in self.tasks():
            task.cancel()

    async def cancel(self, timeout: float = DEFAULT_CANCEL_TIMEOUT) -> list[asyncio.Task[Any]]:
        """Cancel every task and wait (at most ``timeout`` s) until they have finished.

        Returns:
            The tasks that still had not finished after ``timeout`` (they ignore cancellation).
        """
        tasks = self.tasks()
        for task in tasks:
            task.cancel()
        if not tasks:
            return []
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        return list(pending)

    def __len__(self) -> int:
        return len(self._tasks)

    def __repr__(self) -> str:
        return f"<BackgroundTasks: {len(self._tasks)} pending>"


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The asyncio event loop this thread is running right now, or None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def loop_is_running() -> bool:
    """Whether this thread is running an asyncio event loop right now."""
    return running_loop() is not None
