"""Pieces every fastiot widget shares: the connection-state view and small text helpers.

A widget never blocks a cell: a button click (which ipykernel delivers on the kernel's loop thread)
only schedules a coroutine as a task on that loop, kept by a :class:`fastiot._tasks.BackgroundTasks`
that hands every failure to the widget, which shows it; nothing is dropped silently.

Example:
    >>> from fastiot_widgets._common import ConnectionStatus
    >>> status = ConnectionStatus()
    >>> status.state
    'disconnected'
"""

from __future__ import annotations

import html
import pathlib
import traceback
from typing import Any, TypeVar

import ipywidgets as widgets
import traitlets

from fastiot import workbench
from fastiot._tasks import BackgroundTasks, loop_is_running
from fastiot._words import plural  # re-exported: the widgets' counts read as the CLI's
from fastiot.core.broker_connection import BrokerConnection, ConnectionState, NatsBrokerConnection

__all__ = [
    "CONNECTION_STATES",
    "ConnectionStatus",
    "close_widgets",
    "follow_connection",
    "format_exception",
    "front_end_file",
    "plural",
    "pre_html",
    "resolve_connection",
]

# What the view shows; the connection's own "closed" state is shown as "disconnected".
CONNECTION_STATES = ("connected", "reconnecting", "disconnected")

_STATE_COLORS = {"connected": "#2e7d32", "reconnecting": "#ef6c00", "disconnected": "#c62828"}


def format_exception(exc: BaseException) -> str:
    """The full traceback text of ``exc``."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def pre_html(text: str, *, color: str | None = None, max_height: str = "16em") -> str:
    """``text`` escaped into a scrolling ``<pre>`` block (empty text gives an empty string)."""
    if not text:
        return ""
    style = f"margin:0;max-height:{max_height};overflow:auto;white-space:pre-wrap;font-size:90%"
    if color:
        style += f";color:{color}"
    return f'<pre style="{style}">{html.escape(text)}</pre>'


AnyConnection = TypeVar("AnyConnection", bound=BrokerConnection)


async def resolve_connection(connection: AnyConnection | None) -> AnyConnection | NatsBrokerConnection:
    """``connection`` itself, or the workbench's shared connection (a NATS one) when it is ``None``.

    The rule of :func:`fastiot.workbench.use_connection`; a widget is a view in a notebook that keeps
    the shared connection for as long as it is shown, so it holds it until ``workbench.shutdown()``
    (as a notebook kernel does anyway). Typed so that a widget that needs a
    :class:`NatsBrokerConnection` (for JetStream) and takes only that gets one back.
    """
    if connection is not None:
        return connection
    return await workbench.connection()


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
        connection.on_state_change(self._on_state_change)
        self._update()

    def detach(self) -> None:
        """Stop following the connection."""
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.on_state_change(self._on_state_change, remove=True)

    def show_unavailable(self, reason: str) -> None:
        """Show ``disconnected`` with ``reason`` (e.g. why connecting failed)."""
        self.detach()
        self.state = "disconnected"
        self.detail = reason
        self._render()

    def _on_state_change(self, _state: ConnectionState) -> None:
        self._update()

    def _update(self) -> None:
        connection = self.connection
        if connection is None:
            return
        state = connection.state
        if state == ConnectionState.CONNECTED:
            self.detail = connection.connected_url or type(connection).__name__
        elif state == ConnectionState.RECONNECTING:
            self.detail = "lost the broker; reconnecting"
        elif state == ConnectionState.CLOSED:
            self.detail = "connection closed"
        else:
            self.detail = "not connected"
        self.state = state.value if state.value in CONNECTION_STATES else "disconnected"
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


def front_end_file(name: str) -> str:
    """The text of a file next to this module (an anywidget's ``_esm`` or ``_css``).

    Given as text, not as a ``Path``: for a ``Path`` anywidget watches the file and ties every instance
    of the class to the watcher with a strong callback (to reload the code in place), so no closed
    widget, and nothing it refers to (a table's 100,000 rows, say), could ever be freed.
    """
    return (pathlib.Path(__file__).parent / name).read_text(encoding="utf-8")


def close_widgets(*roots: Any) -> None:
    """Close every widget in the trees of ``roots`` (children, layouts, styles, a chart's marks...).

    ipywidgets keeps each widget in its registry until the widget itself is closed, and closing a box
    does not close what is in it: a closed view's buttons, whose callbacks hold the view, kept the view
    and its model (10,000 subjects' statistics, say) alive for the life of the kernel.
    """
    seen: set[int] = set()
    stack = [root for root in roots if isinstance(root, widgets.Widget)]
    found: list[widgets.Widget] = []
    while stack:
        widget = stack.pop()
        if id(widget) in seen:
            continue
        seen.add(id(widget))
        found.append(widget)
        for name in widget.keys:
            value = getattr(widget, name, None)
            if isinstance(value, dict):
                value = list(value.values())
            values = value if isinstance(value, (list, tuple)) else [value]
            stack.extend(v for v in values if isinstance(v, widgets.Widget))
    for widget in found:
        if widget.comm is not None:  # closed already: nothing to do (its children were walked all the same)
            widget.close()


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
    if not loop_is_running():
        return

    async def attach_workbench() -> None:
        try:
            status.attach(await resolve_connection(None))
        except Exception as e:  # shown in the status itself; using the widget shows it again
            status.show_unavailable(f"{type(e).__name__}: {e}")

    tasks.spawn(attach_workbench(), what="connect to the broker")
