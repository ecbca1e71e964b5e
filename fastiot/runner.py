"""ServiceRunner: start, stop and watch a FastIoTService on the running loop (a notebook's kernel loop).

The headless model behind the ServiceControl widget and the ``%%service`` magic.

Example:
    >>> from fastiot.runner import ServiceRunner
    >>> runner = ServiceRunner(MyService)          # doctest: +SKIP
    >>> await runner.start()                       # doctest: +SKIP
    >>> runner.status, runner.handler_counts()     # doctest: +SKIP
    (<ServiceStatus.RUNNING: 'running'>, {'on_thing': {'received': 12, 'errors': 0}})
    >>> await runner.stop()                        # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import logging
import os
import traceback
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from fastiot import workbench
from fastiot._callbacks import CallbackList
from fastiot.core.broker_connection import BrokerConnection
from fastiot.core.permissions import Refusal, RefusalWatch
from fastiot.core.service import FastIoTService
from fastiot.core.service_discovery import ServiceRegistration
from fastiot.exceptions import PermissionDeniedError, ServiceReplacedError, ServiceStartError
from fastiot.workbench import ConnectionLease, use_connection

__all__ = [
    "DEFAULT_MAX_LOG_LINES",
    "DEFAULT_START_TIMEOUT",
    "DEFAULT_STOP_TIMEOUT",
    "LOG_LINE_FORMAT",
    "SERVICE_STATUSES",
    "ServiceEnvironment",
    "ServiceRunner",
    "ServiceStartError",
    "ServiceStatus",
]

DEFAULT_MAX_LOG_LINES = 500
DEFAULT_START_TIMEOUT = 15.0
DEFAULT_STOP_TIMEOUT = 15.0
# The one format of a line in a service's log, whichever logger wrote it (the service, or the
# subscription reporting a handler's error).
LOG_LINE_FORMAT = "%(asctime)s %(levelname)s %(message)s"
LOG_LINE_DATE_FORMAT = "%H:%M:%S"

# Where subscriptions report a failing handler; its lines in a runner's task belong to that service.
_SUBSCRIPTION_LOGGER = "fastiot.broker"


def _folders(module_file: str) -> tuple[str, Path]:
    """The folder of a module's file, as written and resolved (frames name files either way)."""
    return os.path.dirname(os.path.abspath(module_file)), Path(module_file).resolve().parent


# The folders of the code that runs a service (fastiot's, asyncio's): a crash is shown from below them.
_OWN_CODE = tuple(
    {os.path.join(str(folder), "") for module in (__file__, asyncio.__file__) for folder in _folders(module)}
)


def _crash_text(exc: BaseException) -> str:
    """The traceback of a service's crash from the service's own code on.

    The runner's and FastIoT's frames that called into it (and asyncio's) are left out, as IPython leaves
    out its own. A crash with no frame of the service's own keeps every frame.
    """
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_OWN_CODE):
        tb = tb.tb_next
    if tb is None:  # no frame of the service's own: the whole story
        tb = exc.__traceback__
    return "".join(traceback.format_exception(type(exc), exc, tb))


class ServiceStatus(str, Enum):
    """Where a :class:`ServiceRunner` is in its life cycle; compares equal to its value (``"running"``)."""

    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    CRASHED = "crashed"
    REPLACED = "replaced"
    """A newer ``%%service`` cell defines the service now; this runner cannot start any more."""

    @property
    def description(self) -> str:
        """What a person is shown: the value, or "replaced by a newer cell"."""
        return "replaced by a newer cell" if self is ServiceStatus.REPLACED else self.value

    def __str__(self) -> str:
        return self.value


SERVICE_STATUSES: tuple[str, ...] = tuple(status.value for status in ServiceStatus)

StatusCallback = Callable[[ServiceStatus], None]
LogCallback = Callable[[str], None]


class ServiceEnvironment(Protocol):
    """Where a service runs instead of on the given connection.

    Set up at each start, torn down at its end however it ends. :class:`fastiot.history.ReplayBroker` (a
    private broker fed from a recording, ``%%service --replay``) is one.
    """

    async def open(self) -> BrokerConnection:
        """Set up; return the connection the service gets."""
        ...

    async def service_started(self) -> None:
        """The service's subscriptions are in place (e.g. start feeding it)."""
        ...

    async def close(self) -> None:
        """Tear down (the service has ended)."""
        ...


# The runner whose service the current task works for. Tasks inherit it from the task that created
# them, so a service's handler and loop tasks (and nats-py's subscription tasks) all carry it.
_current_runner: contextvars.ContextVar[ServiceRunner | None] = contextvars.ContextVar(
    "fastiot_service_runner", default=None
)


class _RouteToRunner(logging.Filter):
    """Hands each record logged on behalf of a runner's service to that runner.

    A filter on the loggers a service writes to: the record goes into the runner's log, and on to the
    logger's handlers (the console, and the root logger's) only if the runner echoes its log. Records
    logged outside any runner pass unchanged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        runner = _current_runner.get()
        if runner is None:
            return True
        runner.add_log_record(record)
        return runner.echo_log


_ROUTE_TO_RUNNER = _RouteToRunner()  # stateless: one instance is installed on every logger


def _route_to_runners(logger: logging.Logger) -> None:
    if _ROUTE_TO_RUNNER not in logger.filters:
        logger.addFilter(_ROUTE_TO_RUNNER)


class ServiceRunner:
    """Runs one FastIoTService as a task on the running loop and reports its state.

    Args:
        service_cls_or_instance: A FastIoTService subclass (a new instance is made at each start)
            or an instance.
        connection: The broker connection; ``None`` uses the workbench's shared one while the service runs
            (the rule of :func:`fastiot.workbench.use_connection`).
        max_log_lines: How many of the service's log lines to keep (older ones are dropped and counted).
        echo_log: Also pass the service's log lines on to the console (and the root logger). A view that
            shows :attr:`log_lines` itself (ServiceControl) turns this off, so a notebook does not show
            each line twice, once of them as red stderr text in a cell.
        environment: Where the service runs instead (set up at each start, torn down when it ends), e.g.
            a private broker fed from a recording; give it or ``connection``, not both.
        service_kwargs: Passed to the class constructor.

    :attr:`status` is a :class:`ServiceStatus`; :attr:`error` holds the traceback text of a crash.
    The service's log holds what it logs and the errors of its handlers, wherever they happen (its
    tasks, the subscriptions' tasks, and this runner's start and stop), in one format.
    """

    def __init__(
        self,
        service_cls_or_instance: type[FastIoTService] | FastIoTService,
        connection: BrokerConnection | None = None,
        *,
        max_log_lines: int = DEFAULT_MAX_LOG_LINES,
        echo_log: bool = True,
        environment: ServiceEnvironment | None = None,
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
        if environment is not None and connection is not None:
            raise TypeError("give a ServiceRunner a connection or an environment, not both")
        self.connection: BrokerConnection | None = connection
        self.service_kwargs: dict[str, Any] = service_kwargs
        self.echo_log: bool = echo_log
        self.environment: ServiceEnvironment | None = environment
        self.status: ServiceStatus = ServiceStatus.STOPPED
        self.error: str | None = None
        self.log_lines: collections.deque[str] = collections.deque(maxlen=max_log_lines)
        self.log_lines_dropped: int = 0
        self.starts: int = 0
        self.refused_publishes: int = 0
        """Publishes on the service's connection that the server refused (no permission), while it ran."""
        self._task: asyncio.Task[None] | None = None
        self._started: asyncio.Event | None = None
        self._status_callbacks: CallbackList[[ServiceStatus]] = CallbackList(
            "service status", logger=logging.getLogger("fastiot.runner")
        )
        self._log_callbacks: CallbackList[[str]] = CallbackList(
            "service log", logger=logging.getLogger("fastiot.runner")
        )
        self._formatter: logging.Formatter = logging.Formatter(LOG_LINE_FORMAT, LOG_LINE_DATE_FORMAT)
        self._reached_running: bool = False

    @property
    def name(self) -> str:
        """The service's class name."""
        return self.service_cls.__name__

    def on_status_change(self, callback: StatusCallback, remove: bool = False) -> None:
        """Call ``callback(status)`` whenever the status changes (or stop with ``remove=True``)."""
        self._status_callbacks.register(callback, remove=remove)

    def on_log(self, callback: LogCallback, remove: bool = False) -> None:
        """Call ``callback(line)`` for each log line of the service (from whichever thread logs it)."""
        self._log_callbacks.register(callback, remove=remove)

    def _set_status(self, status: ServiceStatus) -> None:
        if status == self.status or self.status is ServiceStatus.REPLACED:
            return
        self.status = status
        self._status_callbacks(status)

    def add_log_record(self, record: logging.LogRecord) -> None:
        """Add ``record`` to :attr:`log_lines` as a formatted line and pass the line to the log callbacks."""
        try:
            line = self._formatter.format(record)
        except Exception:  # a broken log call must not break the service
            line = str(record.msg)
        if len(self.log_lines) == self.log_lines.maxlen:
            self.log_lines_dropped += 1
        self.log_lines.append(line)
        self._log_callbacks(line)

    @contextlib.contextmanager
    def _on_behalf(self) -> Iterator[None]:
        """What the service logs inside this block goes to this runner's log (e.g. "stop requested")."""
        token = _current_runner.set(self)
        try:
            yield
        finally:
            _current_runner.reset(token)

    def handler_counts(self) -> dict[str, dict[str, int]]:
        """Messages received and errors per ``@subscribe`` / ``@reply`` handler of the running service."""
        if self.service is None:
            return {}
        return {
            name: {"received": sub.received, "errors": sub.errors}
            for name, sub in self.service.subscriptions.items()
        }

    @property
    def registration(self) -> ServiceRegistration | None:
        """How the service answers NATS' services API; its ``error`` says why it is not discoverable.

        None while no service ran. Example: ``runner.registration.error`` is a ``PermissionDeniedError``
        when the user may not subscribe to ``$SRV.>``: the service runs, but ``nats micro ls`` misses it.
        """
        return None if self.service is None else self.service.registration

    @property
    def is_running(self) -> bool:
        """True while the service starts or runs."""
        return self.status in (ServiceStatus.STARTING, ServiceStatus.RUNNING)

    @property
    def is_replaced(self) -> bool:
        """True once :meth:`retire` was called: a newer definition took over and this one cannot start."""
        return self.status is ServiceStatus.REPLACED

    async def start(self, timeout: float = DEFAULT_START_TIMEOUT) -> None:
        """Start the service and wait until it runs.

        Its subscriptions are known to the server (a message published from anywhere after this returns
        reaches it) and its loops are up.

        Raises:
            ServiceStartError: It crashed while starting (``status`` is then ``crashed``).
            ServiceReplacedError: The runner was retired (a newer cell defines the service).
            asyncio.TimeoutError: It did not finish starting within ``timeout`` seconds.
        """
        if self.is_replaced:
            raise ServiceReplacedError(
                f"{self.name} was replaced by a newer cell; use the control of the newest %%service cell "
                f"that defines it, or run this cell again"
            )
        if self.is_running:
            return
        lease: ConnectionLease[Any] | None = None
        if self.environment is not None:
            connection: BrokerConnection | None = await self.environment.open()
        elif self._given_instance and self.service is not None and self.service.broker_connection is not None:
            connection = self.service.broker_connection  # an instance that brought its own
        else:
            lease = await use_connection(self.connection)
            connection = lease.connection
        try:
            with self._on_behalf():
                if not self._given_instance:
                    # A fresh instance at each start, so a restart begins from a clean state.
                    self.service = self.service_cls(broker_connection=connection, **self.service_kwargs)
                elif self.service is not None and (
                    self.service.broker_connection is None or self.environment is not None
                ):
                    self.service.broker_connection = connection
        except BaseException:
            if self.environment is not None:
                await self._close_environment()
            if lease is not None:
                await lease.release()
            raise
        assert self.service is not None
        _route_to_runners(self.service.service_logger)
        _route_to_runners(logging.getLogger(_SUBSCRIPTION_LOGGER))
        self.starts += 1
        self.error = None
        self._started = asyncio.Event()
        self._reached_running = False
        self._set_status(ServiceStatus.STARTING)
        self._task = asyncio.get_running_loop().create_task(self._run(self.service, self._started, lease))
        try:
            await asyncio.wait_for(asyncio.shield(self._started.wait()), timeout)
        except asyncio.TimeoutError:
            await self.stop()
            raise
        if self.status == ServiceStatus.CRASHED and not self._reached_running:
            error = self.error or ""
            cause = next((line for line in reversed(error.splitlines()) if line.strip()), "unknown error")
            raise ServiceStartError(f"{self.name} crashed while starting: {cause.strip()}", error)
        workbench.register(self)

    def _on_refusal(self, refusal: Refusal) -> None:
        # In the connection's read loop, outside the service's context: put the line in its log here.
        if refusal.operation != "publish" or self.service is None:
            return
        self.refused_publishes += 1
        self.add_log_record(
            self.service.service_logger.makeRecord(
                self.service.service_logger.name,
                logging.ERROR,
                __file__,
                0,
                "%s",
                (PermissionDeniedError(refusal.subject, "publish"),),
                None,
            )
        )

    async def _run(
        self, service: FastIoTService, started: asyncio.Event, lease: ConnectionLease[Any] | None
    ) -> None:
        _current_runner.set(self)  # this task's own context: every task it starts inherits it
        refusals = getattr(service.broker_connection, "refusals", None)
        if isinstance(refusals, RefusalWatch):
            refusals.on_refusal(self._on_refusal)
        try:
            async with service:
                if self.environment is not None:
                    await self.environment.service_started()
                self._reached_running = True
                self._set_status(ServiceStatus.RUNNING)
                started.set()
                await service.wait_for_shutdown()
            if service.shutdown_exception is not None:
                exc = service.shutdown_exception
                self.error = _crash_text(exc)
                self._set_status(ServiceStatus.CRASHED)
            else:
                self._set_status(ServiceStatus.STOPPED)
        except asyncio.CancelledError:
            self._set_status(ServiceStatus.STOPPED)
            raise
        except Exception as exc:
            self.error = _crash_text(exc)
            service.service_logger.error("%s crashed: %s: %s", self.name, type(exc).__name__, exc)
            self._set_status(ServiceStatus.CRASHED)
        finally:
            if isinstance(refusals, RefusalWatch):
                refusals.on_refusal(self._on_refusal, remove=True)
            if self.environment is not None:
                await self._close_environment()
            if lease is not None:
                await lease.release()  # the service has ended: in a script its shared connection may close
            started.set()

    async def _close_environment(self) -> None:
        assert self.environment is not None
        try:
            await self.environment.close()
        except Exception:  # the service has ended either way; its log says what was left behind
            logging.getLogger("fastiot.runner").exception("closing the environment of %s failed", self.name)

    async def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Ask the service to shut down and wait (at most ``timeout`` s, then cancel) until it has."""
        workbench.unregister(self)
        task, self._task = self._task, None
        if task is None:
            return
        if self.service is not None:
            with self._on_behalf():
                await self.service.request_shutdown("stopped from the workbench")
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            task.cancel()
            await asyncio.wait({task}, timeout=timeout)
        if self.status != ServiceStatus.CRASHED:
            self._set_status(ServiceStatus.STOPPED)

    async def restart(self) -> None:
        """Stop the service (if running) and start it again."""
        await self.stop()
        await self.start()

    async def retire(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop the service for good: a newer definition replaces it (status ``replaced``).

        Called by ``%%service`` on the runners of earlier runs of a cell, so an outdated class can
        never run beside the new one; :meth:`start` then raises :class:`ServiceReplacedError`.
        """
        await self.stop(timeout)
        self._set_status(ServiceStatus.REPLACED)

    async def wait_for_status(self, status: ServiceStatus | str, timeout: float = 10.0) -> None:
        """Wait until ``status`` is reached (e.g. ``"crashed"`` in a test).

        Raises:
            ValueError: ``status`` is not one of :data:`SERVICE_STATUSES`.
            asyncio.TimeoutError: Not reached within ``timeout`` seconds.
        """
        try:
            wanted = ServiceStatus(status)
        except ValueError:
            raise ValueError(f"status must be one of {SERVICE_STATUSES}, got {status!r}") from None
        reached = asyncio.Event()

        def check(new: ServiceStatus) -> None:
            if new == wanted:
                reached.set()

        self.on_status_change(check)
        try:
            if self.status != wanted:
                await asyncio.wait_for(reached.wait(), timeout)
        finally:
            self.on_status_change(check, remove=True)

    def __repr__(self) -> str:
        return f"ServiceRunner({self.name}, {self.status})"
