"""Pieces every fastiot widget shares: the connection-state view and click-started background tasks.

A widget never blocks a cell: a button click (which ipykernel delivers on the kernel's loop thread)
only schedules a coroutine as a task on that loop. :class:`BackgroundTasks` keeps a reference to each
task until it is done (the loop itself holds tasks only weakly) and hands every failure to the widget,
which shows it; nothing is dropped silently.

Example:
    >>> from fastiot_widgets._common import ConnectionStatus
    >>> status = ConnectionStatus()
    >>> status.state
    'disconnected'
"""

from __future__ import annotations

import asyncio
import html
import logging
import traceback
from collections.abc import Callable, Coroutine
from typing import Any

import ipywidgets as widgets
import traitlets

from fastiot.core.broker_connection import BrokerConnection

__all__ = [
    "CONNECTION_STATES",
    "BackgroundTasks",
    "ConnectionStatus",
    "ErrorCallback",
    "event_loop",
    "follow_connection",
    "format_exception",
    "plural",
    "pre_html",
    "resolve_connection",
]

# What the view shows; the connection's own "closed" state is shown as "disconnected".
CONNECTION_STATES = ("connected", "reconnecting", "disconnected")

_STATE_COLORS = {"connected": "#2e7d32", "reconnecting": "#ef6c00", "disconnected": "#c62828"}

# Called with the exception and what was being done ("start", "publish", ...).
ErrorCallback = Callable[[BaseException, str], None]

_logger = logging.getLogger("fastiot_widgets")


def event_loop() -> asyncio.AbstractEventLoop:
    """The loop to run widget work on: the running one (the kernel's, when called from a click).

    Raises:
        RuntimeError: There is no usable event loop (a plain script outside ``asyncio.run``).
    """
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    try:
        return asyncio.get_event_loop()
    except RuntimeError as e:
        raise RuntimeError(
            "fastiot widgets run their work on an asyncio loop; use them in a Jupyter kernel, or call "
            "their async methods (e.g. `await ctl.start()`) inside asyncio.run(...)"
        ) from e


def format_exception(exc: BaseException) -> str:
    """The full traceback text of ``exc``."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def plural(n: int, word: str, words: str | None = None) -> str:
    """``n`` and ``word``, in the plural unless ``n`` is 1: ``1 row``, ``2 rows``, ``1,000 rows``.

    Example:
        >>> plural(1, "row"), plural(2, "row"), plural(3, "entry", "entries")
        ('1 row', '2 rows', '3 entries')
    """
    return f"{n:,} {word if n == 1 else (words or word + 's')}"


def pre_html(text: str, *, color: str | None = None, max_height: str = "16em") -> str:
    """``text`` escaped into a scrolling ``<pre>`` block (empty text gives an empty string)."""
    if not text:
        return ""
    style = f"margin:0;max-height:{max_height};overflow:auto;white-space:pre-wrap;font-size:90%"
    if color:
        style += f";color:{color}"
    return f'<pre style="{style}">{html.escape(text)}</pre>'


async def resolve_connection(connection: BrokerConnection | None) -> BrokerConnection:
    """``connection`` itself, or the kernel-wide workbench connection when it is ``None``."""
    if connection is not None:
        return connection
    from fastiot import workbench

    return await workbench.connection()


class BackgroundTasks:
    """The tasks a widget started (mostly from button clicks), each kept until it is done.

    Args:
        on_error: Called with the exception and the task's ``what`` when a task fails, so the widget
            can show it. Cancellation is not a failure.
    """

    def __init__(self, on_error: ErrorCallback) -> None:
        self._on_error: ErrorCallback = on_error
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], *, what: str) -> asyncio.Task[Any]:
        """Run ``coro`` as a task on the kernel loop without waiting for it.

        Args:
            coro: The work, e.g. ``control.start()``.
            what: A few words for error messages, e.g. ``"start"``.
        """
        try:
            loop = event_loop()
        except RuntimeError:
            coro.close()
            raise
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(t, what))
        return task

    def _done(self, task: asyncio.Task[Any], what: str) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        try:
            self._on_error(exc, what)
        except Exception:  # the error view itself failed: the log is the last place left to say so
            _logger.exception("could not show the error of %s: %r", what, exc)

    @property
    def pending(self) -> int:
        """How many tasks are not done yet."""
        return len(self._tasks)

    async def wait(self, timeout: float | None = 10.0) -> None:
        """Wait until every task started so far (and any they start) is done.

        Raises:
            asyncio.TimeoutError: Some task is still running after ``timeout`` seconds.
        """

        async def drain() -> None:
            while self._tasks:
                current = asyncio.current_task()
                tasks = {t for t in self._tasks if t is not current}
                if not tasks:
                    return
                await asyncio.wait(tasks)

        await asyncio.wait_for(drain(), timeout)

    def cancel_all(self) -> None:
        """Cancel every task that is still running."""
        for task in list(self._tasks):
            task.cancel()


class ConnectionStatus(widgets.HTML):
    """A light and a word for the broker connection: connected, reconnecting or disconnected.

    It follows :attr:`NatsBrokerConnection.state` through ``on_state_change``. Give it a
    connection, or call :meth:`attach` later (widgets with ``connection=None`` attach it to the
    workbench connection once that exists).

    Example:
        >>> status = ConnectionStatus()            # doctest: +SKIP
        >>> status.attach(await workbench.connection())  # doctest: +SKIP
        >>> status.state                           # doctest: +SKIP
        'connected'
    """

    state = traitlets.Enum(
        CONNECTION_STATES, default_value="disconnected", help="The broker connection's state as shown."
    )
    detail = traitlets.Unicode(
        "not connected yet", help="The server URL when connected, else what is known about why not."
    )

    def __init__(self, connection: BrokerConnection | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.connection: BrokerConnection | None = None
        self._render()
        if connection is not None:
            self.attach(connection)

    def attach(self, connection: BrokerConnection) -> None:
        """Follow ``connection`` (and stop following the previous one)."""
        if connection is self.connection:
            return
        self.detach()
        self.connection = connection
        on_state_change = getattr(connection, "on_state_change", None)
        if on_state_change is not None:
            on_state_change(self._on_state_change)
        self._update()

    def detach(self) -> None:
        """Stop following the connection."""
        connection, self.connection = self.connection, None
        on_state_change = getattr(connection, "on_state_change", None)
        if on_state_change is not None:
            try:
                on_state_change(self._on_state_change, remove=True)
            except ValueError:  # not registered (anymore)
                pass

    def show_unavailable(self, reason: str) -> None:
        """Show ``disconnected`` with ``reason`` (e.g. why connecting failed)."""
        self.detach()
        self.state = "disconnected"
        self.detail = reason
        self._render()

    def _on_state_change(self, _state: str) -> None:
        self._update()

    def _update(self) -> None:
        connection = self.connection
        if connection is None:
            return
        raw = getattr(connection, "state", None)
        if raw is None:  # a connection without states, e.g. BrokerConnectionDummy
            raw = "connected" if connection.is_connected else "disconnected"
        if raw == "connected":
            url = getattr(connection, "connected_url", None)
            self.detail = url or type(connection).__name__
        elif raw == "reconnecting":
            self.detail = "lost the broker; reconnecting"
        elif raw == "closed":
            self.detail = "connection closed"
        else:
            self.detail = "not connected"
        self.state = raw if raw in CONNECTION_STATES else "disconnected"
        self._render()

    def _render(self) -> None:
        color = _STATE_COLORS[self.state]
        self.value = (
            f'<span title="{html.escape(self.detail)}"><span style="color:{color}">&#9679;</span> '
            f'{self.state} <span style="color:#757575">{html.escape(self.detail)}</span></span>'
        )

    def close(self) -> None:
        self.detach()
        super().close()


def follow_connection(
    status: ConnectionStatus, connection: BrokerConnection | None, tasks: BackgroundTasks
) -> None:
    """Point ``status`` at ``connection``, or at the workbench connection when it is ``None``.

    The workbench connection is fetched in the background (a cell is never blocked); if that fails,
    ``status`` says why. Without a running loop nothing is fetched: the widget attaches the
    connection when it first uses it.
    """
    if connection is not None:
        status.attach(connection)
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return

    async def attach_workbench() -> None:
        try:
            status.attach(await resolve_connection(None))
        except Exception as e:  # shown in the status itself; using the widget shows it again
            status.show_unavailable(f"{type(e).__name__}: {e}")

    tasks.spawn(attach_workbench(), what="connect to the broker")
