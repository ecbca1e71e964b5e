"""ServiceRunner: start, stop and watch a FastIoTService on the running loop (a notebook's kernel loop).

The headless model behind the ServiceControl widget and the ``%%service`` magic.

Example:
    >>> from fastiot.runner import ServiceRunner
    >>> runner = ServiceRunner(MyService)          # doctest: +SKIP
    >>> await runner.start()                       # doctest: +SKIP
    >>> runner.status, runner.handler_counts()     # doctest: +SKIP
    ('running', {'on_thing': {'received': 12, 'errors': 0}})
    >>> await runner.stop()                        # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import collections
import logging
import traceback
from collections.abc import Callable
from typing import Any

from fastiot.core.broker_connection import BrokerConnection
from fastiot.core.service import FastIoTService
from fastiot.exceptions import ServiceStartError

__all__ = [
    "DEFAULT_MAX_LOG_LINES",
    "DEFAULT_START_TIMEOUT",
    "DEFAULT_STOP_TIMEOUT",
    "SERVICE_STATUSES",
    "ServiceRunner",
    "ServiceStartError",
]

DEFAULT_MAX_LOG_LINES = 500
DEFAULT_START_TIMEOUT = 15.0
DEFAULT_STOP_TIMEOUT = 15.0
SERVICE_STATUSES = ("stopped", "starting", "running", "crashed")

StatusCallback = Callable[[str], None]


class _LogBuffer(logging.Handler):
    def __init__(self, lines: collections.deque[str], on_line: Callable[[str], None]) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        self._lines = lines
        self._on_line = on_line

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a broken log call must not break the service
            line = str(record.msg)
        self._lines.append(line)
        self._on_line(line)


class ServiceRunner:
    """Runs one FastIoTService as a task on the running loop and reports its state.

    Args:
        service_cls_or_instance: A FastIoTService subclass (a new instance is made at each start)
            or an instance.
        connection: The broker connection; ``None`` means the workbench connection.
        max_log_lines: How many of the service's log lines to keep (older ones are dropped and counted).
        echo_log: Also pass the service's log lines on to the ``fastiot`` console handler. A view that
            shows :attr:`log_lines` itself (ServiceControl) turns this off, so a notebook does not print
            each line twice, once of them on stderr.
        service_kwargs: Passed to the class constructor.

    ``status`` is one of ``stopped``, ``starting``, ``running`` or ``crashed``; ``error`` holds the
    traceback text of a crash.
    """

    def __init__(
        self,
        service_cls_or_instance: type[FastIoTService] | FastIoTService,
        connection: BrokerConnection | None = None,
        *,
        max_log_lines: int = DEFAULT_MAX_LOG_LINES,
        echo_log: bool = True,
        **service_kwargs: Any,
    ) -> None:
        if isinstance(service_cls_or_instance, FastIoTService):
            if service_kwargs:
                raise TypeError("service_kwargs only apply when a class is given, not an instance")
            self.service_cls: type[FastIoTService] = type(service_cls_or_instance)
            self.service: FastIoTService | None = service_cls_or_instance
            self._given_instance: bool = True
        elif isinstance(service_cls_or_instance, type) and issubclass(
            service_cls_or_instance, FastIoTService
        ):
            self.service_cls = service_cls_or_instance
            self.service = None
            self._given_instance = False
        else:
            raise TypeError(
                f"ServiceRunner needs a FastIoTService subclass or instance, got {service_cls_or_instance!r}"
            )
        if max_log_lines < 1:
            raise ValueError("max_log_lines must be at least 1")
        self.connection: BrokerConnection | None = connection
        self.service_kwargs: dict[str, Any] = service_kwargs
        self.echo_log: bool = echo_log
        self.status: str = "stopped"
        self.error: str | None = None
        self.log_lines: collections.deque[str] = collections.deque(maxlen=max_log_lines)
        self.log_lines_dropped: int = 0
        self.starts: int = 0
        self._task: asyncio.Task[None] | None = None
        self._started: asyncio.Event | None = None
        self._status_callbacks: list[StatusCallback] = []
        self._log_callbacks: list[Callable[[str], None]] = []
        self._log_handler: _LogBuffer | None = None
        self._reached_running: bool = False

    @property
    def name(self) -> str:
        return self.service_cls.__name__

    def on_status_change(self, callback: StatusCallback, remove: bool = False) -> None:
        """Call ``callback(status)`` whenever the status changes."""
        if remove:
            self._status_callbacks.remove(callback)
        else:
            self._status_callbacks.append(callback)

    def on_log(self, callback: Callable[[str], None], remove: bool = False) -> None:
        """Call ``callback(line)`` for each log line of the service."""
        if remove:
            self._log_callbacks.remove(callback)
        else:
            self._log_callbacks.append(callback)

    def _set_status(self, status: str) -> None:
        if status == self.status:
            return
        self.status = status
        for callback in list(self._status_callbacks):
            try:
                callback(status)
            except Exception:
                logging.getLogger("fastiot.runner").exception("status callback failed")

    def _on_log_line(self, line: str) -> None:
        if len(self.log_lines) == self.log_lines.maxlen:
            self.log_lines_dropped += 1
        for callback in list(self._log_callbacks):
            try:
                callback(line)
            except Exception:
                logging.getLogger("fastiot.runner").exception("log callback failed")

    def handler_counts(self) -> dict[str, dict[str, int]]:
        """Messages received and errors per ``@subscribe`` / ``@reply`` handler of the running service."""
        if self.service is None:
            return {}
        return {
            name: {"received": getattr(sub, "received", 0), "errors": getattr(sub, "errors", 0)}
            for name, sub in self.service.subscriptions.items()
        }

    @property
    def is_running(self) -> bool:
        return self.status in ("starting", "running")

    async def start(self, timeout: float = DEFAULT_START_TIMEOUT) -> None:
        """Start the service and wait until it runs (its subscriptions and loops are up).

        Raises:
            ServiceStartError: It crashed while starting (``status`` is then ``crashed``).
            asyncio.TimeoutError: It did not finish starting within ``timeout`` seconds.
        """
        if self.is_running:
            return
        connection = self.connection
        if connection is None:
            from fastiot import workbench

            connection = await workbench.connection()
        if not self._given_instance:
            # A fresh instance at each start, so a restart begins from a clean state.
            self.service = self.service_cls(broker_connection=connection, **self.service_kwargs)
        elif self.service is not None and self.service.broker_connection is None:
            self.service.broker_connection = connection
        self.starts += 1
        self.error = None
        self._attach_log()
        self._started = asyncio.Event()
        self._reached_running = False
        self._set_status("starting")
        assert self.service is not None
        self._task = asyncio.get_running_loop().create_task(self._run(self.service, self._started))
        try:
            await asyncio.wait_for(asyncio.shield(self._started.wait()), timeout)
        except asyncio.TimeoutError:
            await self.stop()
            raise
        if self.status == "crashed" and not self._reached_running:
            error = self.error or ""
            cause = next((line for line in reversed(error.splitlines()) if line.strip()), "unknown error")
            raise ServiceStartError(f"{self.name} crashed while starting: {cause.strip()}", error)
        from fastiot import workbench

        workbench.register(self)

    async def _run(self, service: FastIoTService, started: asyncio.Event) -> None:
        try:
            async with service:
                self._reached_running = True
                self._set_status("running")
                started.set()
                await service.wait_for_shutdown()
            if service.shutdown_exception is not None:
                exc = service.shutdown_exception
                self.error = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                self._set_status("crashed")
            else:
                self._set_status("stopped")
        except asyncio.CancelledError:
            self._set_status("stopped")
            raise
        except Exception as exc:
            self.error = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            service._logger.error("%s crashed: %s: %s", self.name, type(exc).__name__, exc)
            self._set_status("crashed")
        finally:
            started.set()
            # Detach from the class's logger, or every hot reload would leave one more handler behind.
            if self._log_handler is not None and self._log_handler in service._logger.handlers:
                service._logger.removeHandler(self._log_handler)
                service._logger.propagate = True

    def _attach_log(self) -> None:
        if self._log_handler is None:
            self._log_handler = _LogBuffer(self.log_lines, self._on_log_line)
        assert self.service is not None
        logger = self.service._logger
        if self._log_handler not in logger.handlers:
            logger.addHandler(self._log_handler)
        logger.propagate = self.echo_log

    async def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Ask the service to shut down and wait (at most ``timeout`` s, then cancel) until it has."""
        from fastiot import workbench

        workbench.unregister(self)
        task, self._task = self._task, None
        if task is None:
            return
        if self.service is not None:
            await self.service.request_shutdown("stopped from the workbench")
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            task.cancel()
            await asyncio.wait({task}, timeout=timeout)
        if self.status != "crashed":
            self._set_status("stopped")

    async def restart(self) -> None:
        """Stop the service (if running) and start it again."""
        await self.stop()
        await self.start()

    async def wait_for_status(self, status: str, timeout: float = 10.0) -> None:
        """Wait until ``status`` is reached (e.g. ``"crashed"`` in a test).

        Raises:
            asyncio.TimeoutError: Not reached within ``timeout`` seconds.
        """
        if status not in SERVICE_STATUSES:
            raise ValueError(f"status must be one of {SERVICE_STATUSES}, got {status!r}")
        reached = asyncio.Event()

        def check(new: str) -> None:
            if new == status:
                reached.set()

        self.on_status_change(check)
        try:
            if self.status != status:
                await asyncio.wait_for(reached.wait(), timeout)
        finally:
            self.on_status_change(check, remove=True)

    def __repr__(self) -> str:
        return f"ServiceRunner({self.name}, {self.status})"
