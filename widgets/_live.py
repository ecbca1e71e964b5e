"""LiveView: the part SubjectBrowser and MessageTable share, a throttled view over a live model.

A live model (:class:`~fastiot.subjects.SubjectIndex`, :class:`~fastiot.capture.MessageCapture`)
subscribes on the broker and tells its listeners, coalesced, that something changed. The view only
marks itself dirty then and schedules one re-render on the kernel loop, no sooner than
``refresh_interval`` seconds after the previous one. However many messages arrive, the widget
re-renders at most ``1 / refresh_interval`` times per second, and the kernel's loop spends its time on
the messages, not on drawing them.

Rates decay when the traffic stops, which no message announces: after a render that showed a
non-zero rate, one more render follows within :data:`DEFAULT_IDLE_REFRESH` seconds.
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import ipywidgets as widgets
import traitlets

from fastiot._tasks import BackgroundTasks, loop_is_running
from fastiot.core.broker_connection import BrokerConnection
from fastiot.exceptions import PermissionDeniedError

from . import _loop_bound as ui
from ._common import ConnectionStatus, close_widgets, format_exception, pre_html

__all__ = ["DEFAULT_IDLE_REFRESH", "DEFAULT_REFRESH_INTERVAL", "LiveModel", "LiveView"]

# At most 1 / DEFAULT_REFRESH_INTERVAL renders per second, however busy the broker is.
DEFAULT_REFRESH_INTERVAL = 0.5
# While the view shows a non-zero rate, it re-renders this often even without news, so rates decay.
DEFAULT_IDLE_REFRESH = 1.0

_logger = logging.getLogger("fastiot_widgets")


class LiveModel(Protocol):
    """What a live view needs of its model (MessageCapture and SubjectIndex have it)."""

    @property
    def is_running(self) -> bool: ...

    @property
    def is_paused(self) -> bool: ...

    @property
    def connection(self) -> Any: ...

    @property
    def error(self) -> PermissionDeniedError | None: ...

    def on_refused(self, callback: Callable[[PermissionDeniedError], None], remove: bool = False) -> None: ...

    async def start(self) -> Any: ...

    async def stop(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def clear(self) -> None: ...


class LiveView(widgets.VBox):
    """A VBox over a live model: start / stop / pause / resume / clear, the connection state, and
    re-renders throttled to ``refresh_interval``.

    Subclasses build their child widgets, call ``super().__init__`` with them, register
    :meth:`_on_model_news` as the model's listener in :meth:`_listen` and draw in :meth:`_render`.
    """

    running = traitlets.Bool(False, help="The model is subscribed on the broker and collecting.")
    paused = traitlets.Bool(False, help="The view stands still (Pause) until resume.")
    error = traitlets.Unicode("", help="Why starting or rendering failed last; '' if nothing failed.")
    renders = traitlets.Int(0, help="How many times the view was re-rendered (the refresh rate, for tests).")
    refresh_interval = traitlets.Float(
        DEFAULT_REFRESH_INTERVAL, help="The least seconds between two re-renders, however busy the broker is."
    )

    # Whether Pause pauses the model too. A plot keeps collecting while its view stands still.
    _pause_model: ClassVar[bool] = True

    follow_button: widgets.ToggleButton | None = None
    """"Follow" on a view made by a :class:`~fastiot_widgets.Timeline` (off: it keeps what it shows
    while the cursor moves; on: it shows the cursor's state again); None on a view of live traffic."""

    def __init__(
        self,
        model: LiveModel,
        *,
        owns_model: bool,
        connection: BrokerConnection | None,
        children: list[widgets.Widget],
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
        autostart: bool = True,
        **kwargs: Any,
    ) -> None:
        self._model: LiveModel = model
        self._owns_model: bool = owns_model
        self._connection: BrokerConnection | None = connection
        # Click-started actions and the start, each kept until done; their failures land in `error`.
        self._tasks: BackgroundTasks = BackgroundTasks(self._on_task_error)
        self._start_task: asyncio.Task[Any] | None = None
        self._render_handle: asyncio.TimerHandle | None = None
        self._render_due: float = 0.0
        self._last_render: float = -1e9
        self._dirty: bool = True
        self._shows_traffic: bool = False
        self._listening: bool = False
        self._closed: bool = False

        self.connection_status = ConnectionStatus()
        self.pause_button = ui.Button(
            description="Pause",
            icon="pause",
            tooltip="Freeze the view (arriving messages are still counted)",
            layout={"width": "auto"},
        )
        self.resume_button = ui.Button(
            description="Resume",
            icon="play",
            tooltip="Follow the messages again",
            layout={"width": "auto"},
        )
        self.clear_button = ui.Button(
            description="Clear", icon="trash", tooltip="Forget everything collected", layout={"width": "auto"}
        )
        self.error_view = widgets.HTML()
        self.pause_button.on_click(lambda _b: self.pause())
        self.resume_button.on_click(lambda _b: self.resume())
        self.clear_button.on_click(lambda _b: self.clear())

        super().__init__(children=children, **kwargs)
        if refresh_interval < 0:
            raise ValueError(f"refresh_interval must be >= 0 seconds, got {refresh_interval}")
        self.refresh_interval = refresh_interval
        self.paused = model.is_paused
        self._listen(self._on_model_news, remove=False)
        model.on_refused(self._on_model_refused)
        self._listening = True
        self._update_buttons()
        if model.connection is not None:
            self.connection_status.attach(model.connection)
        if not autostart:
            return  # a view of data that is there already (a DataFrame), or started by its owner
        if not loop_is_running():
            return  # a plain script: `await view.start()` inside asyncio.run(...) starts it
        self._start_task = self._tasks.spawn(self._start_model(), what="start")

    # -- for subclasses ----------------------------------------------------------------------------

    def _listen(self, callback: Any, remove: bool) -> None:
        """Register (or remove) ``callback`` as the model's change listener, throttled."""
        raise NotImplementedError

    def _render(self) -> None:
        """Draw the model's current state into the child widgets."""
        raise NotImplementedError

    def _set_shows_traffic(self, shows: bool) -> None:
        """Tell the throttle whether the last render showed a non-zero rate (that must decay)."""
        self._shows_traffic = shows

    # -- life cycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start collecting (subscribe on the broker); done by the constructor in a notebook.

        Raises:
            fastiot.exceptions.BrokerUnavailableError: No broker answers (also shown in the widget).
        """
        task = self._start_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            await asyncio.shield(task)
            return
        await self._start_model()

    async def _start_model(self) -> None:
        try:
            if not self._model.is_running:
                await self._model.start()
        except PermissionDeniedError as e:  # connected, but not allowed: say so in red, not "disconnected"
            self.running = False
            self._show_refusal(e)
            raise
        except Exception as e:
            self.connection_status.show_unavailable(f"{type(e).__name__}: {e}")
            raise
        if self._closed:  # closed while connecting: do not keep a subscription nobody looks at
            if self._owns_model:
                await self._model.stop()
            return
        if self._model.connection is not None:
            self.connection_status.attach(self._model.connection)
        self.running = self._model.is_running
        self.error = ""
        self.error_view.value = ""
        self._request_render(now=True)

    async def stop(self) -> None:
        """Stop collecting (unsubscribe); what was collected stays shown. :meth:`start` goes on."""
        await self._model.stop()
        self.running = self._model.is_running
        self._request_render(now=True)

    def pause(self) -> None:
        """Freeze the view until :meth:`resume` (and pause the model, if :attr:`_pause_model`)."""
        self._set_paused(True)

    def resume(self) -> None:
        """Follow the model again after :meth:`pause`."""
        self._set_paused(False)

    def _set_paused(self, paused: bool) -> None:
        if self._pause_model and paused:
            self._model.pause()
        elif self._pause_model:
            self._model.resume()
        self.paused = paused
        self._update_buttons()
        self._request_render(now=True)

    def clear(self) -> None:
        """Forget what was collected; counting starts again from zero."""
        self._model.clear()
        self._request_render(now=True)

    @traitlets.observe("refresh_interval")
    def _on_refresh_interval(self, _change: Any) -> None:
        # The model throttles its listener calls to the interval it was registered with.
        if self._listening:
            self._listen(self._on_model_news, remove=True)
            self._listen(self._on_model_news, remove=False)

    def _update_buttons(self) -> None:
        self.pause_button.disabled = self.paused
        self.resume_button.disabled = not self.paused

    async def aclose(self) -> None:
        """:meth:`close`, and wait until the model (if the view made it) has unsubscribed."""
        self._close_view()
        if self._owns_model:
            await self._model.stop()
        await self._tasks.wait()
        super().close()
        self._close_widgets()

    def close(self) -> None:
        """Stop the view's tasks and re-renders, and stop the model if the view made it."""
        if "connection_status" not in self.__dict__:  # __init__ failed (ipywidgets closes on __del__)
            return
        if not self._closed:
            self._close_view()
            if self._owns_model and self._model.is_running:
                # Paused first, so the subscription costs nothing until the unsubscribe has gone out.
                self._model.pause()
                # Without a running loop (interpreter exit) nothing is delivered anymore either.
                if loop_is_running():
                    self._tasks.spawn(self._model.stop(), what="stop")
        super().close()
        self._close_widgets()

    def _close_widgets(self) -> None:
        """Close the view's own widgets: its tree and those kept aside (a copy-as-code box, say)."""
        if self.__dict__.get("_widgets_closed"):
            return
        self.__dict__["_widgets_closed"] = True
        close_widgets(self, *(v for v in self.__dict__.values() if isinstance(v, widgets.Widget)))

    def _close_view(self) -> None:
        self._closed = True
        if self._listening:
            self._listening = False
            try:
                self._listen(self._on_model_news, remove=True)
            except ValueError:
                pass
            self._model.on_refused(self._on_model_refused, remove=True)
        if self._render_handle is not None:
            self._render_handle.cancel()
            self._render_handle = None
        task = self._start_task
        if task is not None and not task.done():
            task.cancel()
        self.connection_status.close()

    @property
    def is_render_scheduled(self) -> bool:
        """Whether a re-render is pending on the loop."""
        return self._render_handle is not None

    # -- throttled rendering -----------------------------------------------------------------------

    def _on_model_news(self, _news: Any) -> None:
        # Runs on the loop, already coalesced by the model; only mark and schedule, never draw here.
        self._dirty = True
        self._request_render()

    def _request_render(self, *, now: bool = False, delay: float | None = None) -> None:
        """Schedule a render: at once if ``now``, else ``refresh_interval`` after the last one."""
        if self._closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.refresh()  # no running loop (a plain script): draw right away
            return
        self._dirty = True
        current = loop.time()
        if delay is None:
            interval = 0.0 if now else max(self.refresh_interval, 0.0)
            delay = max(0.0, self._last_render + interval - current)
        due = current + delay
        if self._render_handle is not None:
            if self._render_due <= due:
                return
            self._render_handle.cancel()
        self._render_due = due
        self._render_handle = loop.call_at(due, self._scheduled_render)

    def _scheduled_render(self) -> None:
        self._render_handle = None
        if self._closed:
            return
        self.refresh()
        if self._shows_traffic and self._render_handle is None:
            # Nothing may arrive anymore; render once more later so rates fall to zero.
            self._request_render(delay=max(DEFAULT_IDLE_REFRESH, self.refresh_interval))

    def refresh(self) -> None:
        """Re-render now (the view does this by itself, throttled, while messages arrive)."""
        try:
            self._last_render = asyncio.get_running_loop().time()
        except RuntimeError:
            self._last_render = time.monotonic()
        self._dirty = False
        try:
            self._render()
        except Exception as e:  # a drawing bug must not stop the live view; show it instead
            _logger.exception("rendering %s failed", type(self).__name__)
            self._show_error(f"rendering failed:\n{format_exception(e)}")
        self.renders += 1

    def _on_task_error(self, exc: BaseException, what: str) -> None:
        if isinstance(exc, PermissionDeniedError):
            self._show_refusal(exc)  # already said as it is
            return
        self._show_error(f"{what} failed: {type(exc).__name__}: {exc}")

    def _on_model_refused(self, err: PermissionDeniedError) -> None:
        self.running = False
        self._show_refusal(err)

    def _show_refusal(self, err: PermissionDeniedError) -> None:
        self._show_error(f"refused by the server: {err}")

    def _show_error(self, text: str) -> None:
        self.error = text
        self.error_view.value = pre_html(text, color="#c62828", max_height="12em")


def summary_html(parts: list[str]) -> str:
    """Counters joined by middle dots, in a muted small font."""
    return (
        "<span style='font-size:90%;color:#424242'>"
        + " &middot; ".join(html.escape(p) if not p.startswith("<") else p for p in parts)
        + "</span>"
    )
