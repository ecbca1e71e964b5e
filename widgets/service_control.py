"""ServiceControl: start, stop and watch a FastIoTService from a notebook.

A thin view over :class:`fastiot.runner.ServiceRunner`, which owns the service's life cycle; this
widget renders the runner's status, handler counters, log lines and crash traceback, and turns
button clicks into runner calls scheduled on the kernel loop.

Example:
    >>> from fastiot_widgets import ServiceControl
    >>> ctl = ServiceControl(MyService)     # doctest: +SKIP
    >>> ctl                                  # doctest: +SKIP
    >>> await ctl.start()                    # or click Start
    >>> ctl.status, ctl.handler_counts       # doctest: +SKIP
    ('running', {'on_thing': {'received': 12, 'errors': 0}})
    >>> await ctl.stop()                     # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import html
import re
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import ipywidgets as widgets
import traitlets

from fastiot._tasks import BackgroundTasks, loop_is_running
from fastiot.core.broker_connection import BrokerConnection
from fastiot.core.service import FastIoTService
from fastiot.runner import (
    DEFAULT_START_TIMEOUT,
    DEFAULT_STOP_TIMEOUT,
    ServiceRunner,
    ServiceStartError,
    ServiceStatus,
)

from . import _loop_bound as ui
from ._common import ConnectionStatus, follow_connection, format_exception, plural, pre_html
from .errors import ServiceCellError

__all__ = [
    "DEFAULT_MAX_SHOWN_LOG_LINES",
    "DEFAULT_REFRESH_INTERVAL",
    "ServiceControl",
]

# Counters and log are re-rendered at most this often while the service runs, however busy it is.
DEFAULT_REFRESH_INTERVAL = 0.25
DEFAULT_MAX_SHOWN_LOG_LINES = 200

_STATUS_COLORS = {
    ServiceStatus.STOPPED: "#757575",
    ServiceStatus.STARTING: "#ef6c00",
    ServiceStatus.RUNNING: "#2e7d32",
    ServiceStatus.CRASHED: "#c62828",
    ServiceStatus.REPLACED: "#9e9e9e",
}
_ACTIVE = (ServiceStatus.STARTING, ServiceStatus.RUNNING)


class ServiceControl(widgets.VBox):
    """A status light, start / stop / restart buttons, handler counters, log and traceback of a service.

    Args:
        service_cls_or_instance: A FastIoTService subclass (a fresh instance at each start), an
            instance, or a :class:`~fastiot.runner.ServiceRunner` to view.
        connection: The broker connection; ``None`` means the workbench connection.
        service_kwargs: Passed to the service class when it is instantiated.

    The runner (the headless model) is :attr:`runner`. Buttons never block the cell: a click
    schedules the action on the kernel loop, and a failure shows up in the widget (``error``).
    From code, ``await ctl.start()`` / ``await ctl.stop()`` / ``await ctl.restart()`` wait for the
    action and raise its error.

    A control whose service a newer ``%%service`` cell defines shows "replaced by a newer cell" and
    its buttons are disabled: the outdated class can never run beside the new one.
    """

    name = traitlets.Unicode("", help="The service's name, shown beside the status light.")
    status = traitlets.UseEnum(
        ServiceStatus,
        default_value=ServiceStatus.STOPPED,
        help="The service's status (a ServiceStatus): stopped, starting, running, crashed or replaced.",
    )
    error = traitlets.Unicode(
        "", help="The traceback of the crash, or the error of the last action that failed; '' if none."
    )
    log = traitlets.Unicode(
        "",
        help="The log as shown: the newest max_log_lines lines, after a note of how many older ones are not.",
    )
    handler_counts = traitlets.Dict(
        help="Messages received and errors per @subscribe / @reply handler, as last rendered."
    )
    busy = traitlets.Bool(False, help="An action (start, stop, restart) is in progress.")
    refresh_interval = traitlets.Float(
        DEFAULT_REFRESH_INTERVAL,
        help="Seconds between re-renders of counters and log while the service runs.",
    )
    max_log_lines = traitlets.Int(
        DEFAULT_MAX_SHOWN_LOG_LINES, help="How many of the newest log lines are shown."
    )
    renders = traitlets.Int(
        0, help="How many times counters and log were rendered (the refresh rate, for tests)."
    )

    def __init__(
        self,
        service_cls_or_instance: type[FastIoTService] | FastIoTService | ServiceRunner,
        connection: BrokerConnection | None = None,
        **service_kwargs: Any,
    ) -> None:
        if isinstance(service_cls_or_instance, ServiceRunner):
            if connection is not None or service_kwargs:
                raise TypeError(
                    "give connection and service_kwargs to the ServiceRunner, not to ServiceControl"
                )
            runner = service_cls_or_instance
        else:
            # The log is shown in this widget; printing it on stderr too would show every line twice.
            runner = ServiceRunner(service_cls_or_instance, connection, echo_log=False, **service_kwargs)
        self.runner: ServiceRunner = runner
        # Click-started actions (wait_idle waits for them), and the refresh task that lives as long as
        # the service runs (which wait_idle must not wait for).
        self._tasks: BackgroundTasks = BackgroundTasks(self._on_task_error)
        self._refresher: BackgroundTasks = BackgroundTasks(self._on_task_error)
        self._refresh_task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._log_dirty: bool = True
        self._action_error: str = ""

        self.status_light = widgets.HTML()
        self.connection_status = ConnectionStatus()
        self.start_button = ui.Button(description="Start", icon="play", tooltip=f"Start {runner.name}")
        self.stop_button = ui.Button(description="Stop", icon="stop", tooltip=f"Stop {runner.name}")
        self.restart_button = ui.Button(
            description="Restart", icon="refresh", tooltip=f"Stop {runner.name} and start a fresh instance"
        )
        for button in (self.start_button, self.stop_button, self.restart_button):
            button.layout = widgets.Layout(width="auto")
        self.counters_view = widgets.HTML()
        self.log_view = widgets.HTML()
        self.error_view = widgets.HTML()
        # Shown once a %%service cell gives the control an exporter (a class alone has no cell to export).
        self.export_button = ui.Button(
            description="Export",
            icon="download",
            tooltip=f"Write {runner.name} as a module with a test beside it (exports folder)",
            layout=widgets.Layout(width="auto", display="none"),
        )
        self.export_view = widgets.HTML()
        self._exporter: Callable[[], Awaitable[Any]] | None = None
        self.export_button.on_click(lambda _b: self._click(self.export, "export"))

        self.start_button.on_click(lambda _b: self._click(self.start, "start"))
        self.stop_button.on_click(lambda _b: self._click(self.stop, "stop"))
        self.restart_button.on_click(lambda _b: self._click(self.restart, "restart"))

        super().__init__(
            children=[
                widgets.HBox(
                    [
                        self.status_light,
                        self.start_button,
                        self.stop_button,
                        self.restart_button,
                        self.export_button,
                    ],
                    layout=widgets.Layout(align_items="center"),
                ),
                self.connection_status,
                self.counters_view,
                self.log_view,
                self.error_view,
                self.export_view,
            ]
        )
        runner.on_status_change(self._on_status_change)
        runner.on_log(self._on_log_line)
        follow_connection(self.connection_status, runner.connection, self._tasks)
        self.name = runner.name
        self.status = runner.status
        self.refresh()
        self._render_status()
        if runner.is_running:
            self._start_refreshing()

    # -- actions -----------------------------------------------------------------------------------

    async def start(self, timeout: float = DEFAULT_START_TIMEOUT) -> None:
        """Start the service and wait until it runs.

        Raises:
            ServiceStartError: It crashed while starting (the widget shows the traceback).
            asyncio.TimeoutError: It did not finish starting within ``timeout`` seconds.
        """
        await self._act(lambda: self.runner.start(timeout))

    async def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop the service and wait until it has stopped."""
        await self._act(lambda: self.runner.stop(timeout))

    async def restart(self) -> None:
        """Stop the service (if it runs) and start a fresh instance."""
        await self._act(self.runner.restart)

    def set_exporter(self, exporter: Callable[[], Awaitable[Any]] | None) -> None:
        """Show the "Export" button; a click awaits ``exporter()`` and shows what it returns (or its error).

        ``%%service`` gives each control one that writes the cell's service to the exports folder.
        """
        self._exporter = exporter
        self.export_button.layout.display = None if exporter is not None else "none"

    async def export(self) -> Any:
        """Run the exporter (the "Export" button) and show its result.

        Raises:
            ServiceCellError: The control has no exporter (it was not made by ``%%service``).
        """
        if self._exporter is None:
            raise ServiceCellError(
                f"{self.runner.name} has no cell to export; the controls of %%service cells do"
            )
        try:
            result = await self._exporter()
        except Exception as e:
            self.export_view.value = pre_html(f"export failed: {e}", color="#c62828")
            raise
        self.export_view.value = pre_html(str(result))
        return result

    async def wait_for_status(self, status: ServiceStatus | str, timeout: float = 10.0) -> None:
        """Wait until the service reaches ``status``; see :meth:`ServiceRunner.wait_for_status`."""
        await self.runner.wait_for_status(status, timeout)

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until the actions started by clicks so far are done (their errors are in ``error``)."""
        await self._tasks.wait(timeout)

    async def _act(self, action: Callable[[], Awaitable[None]]) -> None:
        # One action at a time, in click order: a Stop clicked during a start waits for the start.
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            self.busy = True
            self._action_error = ""
            self._render_status()
            try:
                await action()
            except ServiceStartError:
                raise  # the runner holds the traceback; the status render shows it
            except Exception as e:
                self._action_error = format_exception(e)
                raise
            finally:
                self.busy = False
                self._attach_service_connection()
                self.refresh()
                self._render_status()

    def _click(self, action: Callable[[], Awaitable[None]], what: str) -> None:
        async def run() -> None:
            try:
                await action()
            except Exception:
                pass  # _act has put it into the widget (error / the crash traceback): shown, not lost

        self._tasks.spawn(run(), what=what)

    def _on_task_error(self, exc: BaseException, what: str) -> None:
        self._action_error = f"{what} failed:\n{format_exception(exc)}"
        self._render_status()

    def _attach_service_connection(self) -> None:
        service = self.runner.service
        connection = service.broker_connection if service is not None else None
        if connection is not None:
            self.connection_status.attach(connection)

    # -- model -> view -----------------------------------------------------------------------------

    def _on_status_change(self, status: ServiceStatus) -> None:
        self.status = status
        if status in _ACTIVE:
            self._attach_service_connection()
            self._start_refreshing()
        else:
            self._stop_refreshing()
        self.refresh()
        self._render_status()

    def _on_log_line(self, _line: str) -> None:
        # May come from any thread that logs; only mark, the refresh task renders on the loop.
        self._log_dirty = True

    def _start_refreshing(self) -> None:
        if self._refresh_task is not None and not self._refresh_task.done():
            return
        if not loop_is_running():
            return
        self._refresh_task = self._refresher.spawn(self._refresh_periodically(), what="refresh")

    def _stop_refreshing(self) -> None:
        task, self._refresh_task = self._refresh_task, None
        if task is not None:
            task.cancel()

    async def _refresh_periodically(self) -> None:
        while True:
            await asyncio.sleep(max(self.refresh_interval, 0.05))
            self.refresh()

    @property
    def is_refreshing(self) -> bool:
        """True while the periodic refresh task runs (only while the service starts or runs)."""
        return self._refresh_task is not None and not self._refresh_task.done()

    def refresh(self) -> None:
        """Render the handler counters and the log now, if they changed."""
        counts = self.runner.handler_counts()
        changed = False
        if counts != self.handler_counts:
            self.handler_counts = counts
            self.counters_view.value = self._counters_html(counts)
            changed = True
        if self._log_dirty:
            self._log_dirty = False
            self.log = self._shown_log()
            self.log_view.value = pre_html(self.log, max_height="12em")
            changed = True
        if changed:
            self.renders += 1

    def _counters_html(self, counts: dict[str, dict[str, int]]) -> str:
        if not counts:
            return ""
        rows = "".join(
            f"<tr><td style='padding:0 1em 0 0'><code>{html.escape(name)}</code></td>"
            f"<td style='text-align:right;padding:0 1em 0 0'>{c.get('received', 0)}</td>"
            f"<td style='text-align:right;color:{'#c62828' if c.get('errors') else 'inherit'}'>"
            f"{c.get('errors', 0)}</td></tr>"
            for name, c in counts.items()
        )
        return (
            "<table style='font-size:90%'><tr><th style='text-align:left'>handler</th>"
            "<th style='text-align:right;padding:0 1em 0 0'>received</th><th>errors</th></tr>"
            f"{rows}</table>"
        )

    def _shown_log(self) -> str:
        lines = list(self.runner.log_lines)
        shown = lines[-self.max_log_lines :] if self.max_log_lines > 0 else []
        hidden = len(lines) - len(shown) + self.runner.log_lines_dropped
        text = "\n".join(shown)
        if hidden:
            text = f"({plural(hidden, 'older line')} not shown)\n{text}"
        return text

    def _render_status(self) -> None:
        status = self.status
        crashed = status == ServiceStatus.CRASHED
        self.error = _cell_names(self.runner.error) if crashed and self.runner.error else self._action_error
        color = _STATUS_COLORS[status]
        self.status_light.value = (
            f"<span style='font-size:120%;color:{color}'>&#9679;</span> "
            f"<b>{html.escape(self.name)}</b> "
            f"<span style='color:{color}'>{html.escape(status.description)}</span>"
        )
        replaced = status == ServiceStatus.REPLACED
        self.start_button.disabled = self.busy or replaced or status in _ACTIVE
        self.stop_button.disabled = self.busy or status not in _ACTIVE
        self.restart_button.disabled = self.busy or replaced or status == ServiceStatus.STARTING
        if replaced:
            for button in (self.start_button, self.restart_button):
                button.tooltip = "A newer cell defines this service; use its control"
        self.error_view.value = pre_html(self.error, color="#c62828", max_height="20em")

    def close(self) -> None:
        """Stop following the runner and cancel the widget's tasks; the service itself keeps running."""
        if "connection_status" not in self.__dict__:  # __init__ failed (ipywidgets closes on __del__)
            return
        self._stop_refreshing()
        self._tasks.cancel_all()
        self._refresher.cancel_all()
        self.runner.on_status_change(self._on_status_change, remove=True)  # closing twice is fine
        self.runner.on_log(self._on_log_line, remove=True)
        self.connection_status.close()
        super().close()

    def __repr__(self) -> str:
        return f"ServiceControl({self.runner.name}, {self.status})"


_FILE_LINE = re.compile(r'^( *)File "([^"]+)", line (\d+)', re.MULTILINE)


def _cell_names(text: str) -> str:
    """A traceback's ``File "/tmp/ipykernel_1/123.py", line 5`` as IPython names a notebook cell's code:
    ``Cell In[3], line 5`` (the numbering the notebook shows); other files stay as they are."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    name_of = getattr(getattr(shell, "compile", None), "format_code_name", None)
    if name_of is None:  # no IPython, or one too old to name cells
        return text

    def named(match: re.Match[str]) -> str:
        found = name_of(match.group(2))
        if not found:
            return match.group(0)
        return f"{match.group(1)}{found[0]} {found[1]}, line {match.group(3)}"

    return _FILE_LINE.sub(named, text)
