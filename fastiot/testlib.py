"""Helpers for tests of FastIoT services: FastIoT's ``fastiot.testlib``, without its project layout.

:func:`populate_test_env` points ``FASTIOT_NATS_*`` at a broker; :class:`BackgroundProcess` runs a
service in a separate Python process for as long as a ``with`` block lasts. Tests written for FastIoT
that import them run unchanged.

Example:
    >>> import unittest
    >>> from fastiot.core.broker_connection import NatsBrokerConnection
    >>> from fastiot.testlib import BackgroundProcess, populate_test_env
    >>> from my_services.echo import EchoService  # doctest: +SKIP
    >>> class TestEcho(unittest.IsolatedAsyncioTestCase):  # doctest: +SKIP
    ...     async def test_echo(self):
    ...         populate_test_env()
    ...         with BackgroundProcess(EchoService):
    ...             broker = await NatsBrokerConnection.connect()
    ...             ...
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.connection
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from fastiot.core.logger import setup_logger
from fastiot.env import FASTIOT_NATS_HOST, FASTIOT_NATS_PORT, env_broker
from fastiot.exceptions import BackgroundProcessError
from fastiot.nats_server import NatsServer

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from fastiot.core.service import FastIoTService

__all__ = ["DEFAULT_START_TIMEOUT", "DEFAULT_STOP_TIMEOUT", "BackgroundProcess", "populate_test_env"]

DEFAULT_START_TIMEOUT = 60.0
"""Seconds a :class:`BackgroundProcess` may take to start its service (a fresh interpreter imports it)."""
DEFAULT_STOP_TIMEOUT = 10.0
"""Seconds a :class:`BackgroundProcess` gets to stop after SIGTERM before it is killed."""

_logger = setup_logger("testlib")
_server_lock = threading.Lock()
_server: NatsServer | None = None  # the broker populate_test_env started; it lives as long as the process


def populate_test_env(deployment_name: str | None = "") -> str:
    """Point ``FASTIOT_NATS_*`` at a broker for tests and return its URL(s).

    A broker configured in ``FASTIOT_NATS_SERVERS``, ``FASTIOT_NATS_HOST`` or ``FASTIOT_NATS_PORT`` is
    kept. Otherwise a local ``nats-server`` is started on a free loopback port (once per process; it stops
    when the process ends) and ``FASTIOT_NATS_HOST`` / ``FASTIOT_NATS_PORT`` are set to it, so
    :meth:`NatsBrokerConnection.connect` and services started later, in this process or in a
    :class:`BackgroundProcess`, find it.

    Args:
        deployment_name: FastIoT reads the settings of this deployment of its project layout. There is no
            such layout here: a name is ignored, with a warning.

    Example:
        >>> from fastiot.testlib import populate_test_env
        >>> populate_test_env()  # doctest: +SKIP
        'nats://127.0.0.1:41873'
    """
    global _server
    if deployment_name:
        _logger.warning(
            "populate_test_env(%r): fastiot-workbench has no FastIoT deployments; the name is ignored. "
            "Set FASTIOT_* variables yourself for anything but the broker",
            deployment_name,
        )
    if env_broker.is_configured:
        return ",".join(env_broker.servers)
    with _server_lock:
        if _server is None or not _server.is_running:
            _server = NatsServer().start()
            _logger.info(
                "no broker in FASTIOT_NATS_*; started nats-server at %s for this process", _server.url
            )
        os.environ[FASTIOT_NATS_HOST] = _server.host
        os.environ[FASTIOT_NATS_PORT] = str(_server.port)
        return _server.url


@atexit.register
def _stop_server() -> None:
    # On Linux the server also gets SIGTERM when this process dies without running atexit.
    global _server
    server, _server = _server, None
    if server is not None:
        server.stop()


class BackgroundProcess:
    """Run a FastIoT service in a separate Python process while a ``with`` block lasts.

    As in FastIoT, e.g. for a service that acts as the server of a test. The process runs the service's
    ``main()``, so it connects with the ``FASTIOT_NATS_*`` settings of this process (call
    :func:`populate_test_env` first); on exit it gets SIGTERM, stops gracefully and is waited for.

    FastIoT runs the module ``<package of the service>.run`` of its project layout; here the service class
    itself is run, so it only has to be importable: defined at the top level of a module, or of the
    script that is ``__main__`` (behind ``if __name__ == "__main__":``), not in a notebook cell.

    Args:
        service: The service class (a :class:`~fastiot.core.service.FastIoTService` subclass, no instance).
        startup_time: ``with`` goes on once the service has started (its subscriptions and loops run), and
            not before this many seconds have passed, as FastIoT waits for them.
        stop_time: Accepted for FastIoT compatibility; FastIoT waits this long after SIGTERM, here the
            process is waited for until it has ended.
        start_timeout: Seconds the service may take to start; then the process is killed and
            :class:`~fastiot.exceptions.BackgroundProcessError` raised.
        stop_timeout: Seconds the service gets to stop after SIGTERM before it is killed.

    Example:
        >>> from fastiot.testlib import BackgroundProcess, populate_test_env
        >>> populate_test_env()  # doctest: +SKIP
        >>> with BackgroundProcess(ExampleProducerService, startup_time=1.5):  # doctest: +SKIP
        ...     pass  # talk to the service
        >>> # here the service has stopped
    """

    def __init__(
        self,
        service: type[FastIoTService],
        startup_time: float = 0.2,
        stop_time: float = 0.05,
        *,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
    ) -> None:
        from fastiot.core.service import FastIoTService

        if not (isinstance(service, type) and issubclass(service, FastIoTService)):
            raise TypeError(
                f"BackgroundProcess needs a FastIoTService subclass (the class, without ()), got {service!r}"
            )
        self.service: type[FastIoTService] = service
        self.startup_time: float = startup_time
        self.stop_time: float = stop_time
        self.start_timeout: float = start_timeout
        self.stop_timeout: float = stop_timeout
        self.process: BaseProcess | None = None
        # The parent's end of the pipe to the child: "started", then the answers to handler_counts().
        self._control: Connection | None = None
        self._control_lock: threading.Lock = threading.Lock()

    @property
    def exitcode(self) -> int | None:
        """The exit code of the process once it has ended (0 after a graceful stop), else None."""
        return None if self.process is None else self.process.exitcode

    def _check_importable(self) -> None:
        name = f"{self.service.__module__}.{self.service.__qualname__}"
        main_has_file = getattr(sys.modules.get("__main__"), "__file__", None) is not None
        if "<locals>" in self.service.__qualname__ or (
            self.service.__module__ == "__main__" and not main_has_file
        ):
            raise BackgroundProcessError(
                f"{name} cannot be imported by a separate Python process: define it at the top level of a "
                f".py module (not inside a function or a notebook cell), or run it in this process with "
                f"`async with {self.service.__name__}(broker_connection=...)`"
            )

    def start(self) -> BackgroundProcess:
        """Start the process and wait until the service has started (see ``startup_time``).

        Raises:
            BackgroundProcessError: The process ended before the service started, or it did not start
                within ``start_timeout`` (it is killed then).
        """
        self._check_importable()
        began = time.monotonic()
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no copy of this event loop
        reader, writer = context.Pipe()
        # daemon: the process is terminated if this one exits without leaving the `with` block.
        process = context.Process(
            target=_serve, args=(self.service, writer), name=self.service.__name__, daemon=True
        )
        process.start()
        writer.close()
        self.process = process
        try:
            ready = multiprocessing.connection.wait([reader, process.sentinel], timeout=self.start_timeout)
            if reader in ready and _started(reader):
                self._control = reader  # kept for handler_counts()
            elif not ready:
                self._kill()
                raise BackgroundProcessError(
                    f"{self.service.__name__} did not start within {self.start_timeout:g} s; killed it. "
                    f"Its output is above; raise start_timeout if it needs longer"
                )
            else:
                process.join(self.stop_timeout)
                raise BackgroundProcessError(
                    f"{self.service.__name__} ended with exit code {process.exitcode} before it started; "
                    f"its output (stderr) says why"
                )
        finally:
            if self._control is not reader:
                reader.close()
        remaining = self.startup_time - (time.monotonic() - began)
        if remaining > 0:
            time.sleep(remaining)  # FastIoT's guarantee: at least startup_time has passed
        return self

    def handler_counts(self, timeout: float = 10.0) -> dict[str, dict[str, int]]:
        """Messages received and errors per ``@subscribe`` / ``@reply`` handler of the running service.

        The same counters as :meth:`fastiot.runner.ServiceRunner.handler_counts`, asked from the process.

        Args:
            timeout: Seconds to wait for the process's answer.

        Returns:
            ``{handler name: {"received": n, "errors": n}}``.

        Raises:
            BackgroundProcessError: The process is not running, or did not answer within ``timeout``.

        Example:
            >>> with BackgroundProcess(EchoService) as process:  # doctest: +SKIP
            ...     process.handler_counts()
            {'echo': {'received': 0, 'errors': 0}}
        """
        with self._control_lock:
            control = self._control
            if control is None or self.process is None or not self.process.is_alive():
                raise BackgroundProcessError(
                    f"{self.service.__name__} is not running; ask for its counters inside the `with` block"
                )
            try:
                control.send("handler_counts")
                if not control.poll(timeout):
                    raise BackgroundProcessError(
                        f"{self.service.__name__} did not report its counters within {timeout:g} s"
                    )
                counts: dict[str, dict[str, int]] = control.recv()
            except (EOFError, OSError):
                raise BackgroundProcessError(
                    f"{self.service.__name__} ended while asked for its counters"
                ) from None
            return counts

    def stop(self) -> int | None:
        """Send SIGTERM, wait for the process to end (``stop_timeout``, then kill it); its exit code."""
        with self._control_lock:
            control, self._control = self._control, None
        if control is not None:
            control.close()
        process = self.process
        if process is None:
            return None
        if process.is_alive():
            process.terminate()
            process.join(self.stop_timeout)
            if process.is_alive():
                name, timeout = self.service.__name__, self.stop_timeout
                _logger.warning("%s did not stop within %g s after SIGTERM; killing it", name, timeout)
                self._kill()
        return process.exitcode

    def _kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.join(self.stop_timeout)

    def __enter__(self) -> BackgroundProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    async def __aenter__(self) -> BackgroundProcess:
        import asyncio

        return await asyncio.to_thread(self.start)  # the event loop keeps running while the process starts

    async def __aexit__(self, *exc: Any) -> None:
        import asyncio

        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        process = self.process
        state = "not started" if process is None else f"pid {process.pid}, exit code {process.exitcode}"
        return f"BackgroundProcess({self.service.__name__}, {state})"


def _started(reader: Connection) -> bool:
    try:
        return bool(reader.recv())
    except EOFError:  # the process closed the pipe without a word: it is ending
        return False


def _serve(service: type[FastIoTService], started: Connection) -> None:  # pragma: no cover - in the child
    """The process's main: run ``service.main()`` and say so on ``started`` once the service has started."""

    class Reporting(service):  # type: ignore[valid-type, misc]
        async def __aenter__(self) -> Reporting:
            entered = await super().__aenter__()
            started.send(True)
            # A daemon thread answers the parent's handler_counts(); reading ints needs no event loop.
            threading.Thread(target=_answer_counts, args=(self, started), daemon=True).start()
            return entered  # type: ignore[no-any-return]

    # The same name as the service, for its logger and its connection name.
    Reporting.__name__, Reporting.__qualname__ = service.__name__, service.__qualname__
    Reporting.__module__ = service.__module__
    Reporting.__doc__ = service.__doc__  # its description in NATS' services API
    Reporting.main()


def _answer_counts(service: FastIoTService, control: Connection) -> None:  # pragma: no cover - in the child
    """Answer each ``"handler_counts"`` on ``control`` until the parent closes it."""
    while True:
        try:
            control.recv()
            counts = {
                name: {"received": sub.received, "errors": sub.errors}
                for name, sub in list(service.subscriptions.items())
            }
            control.send(counts)
        except (EOFError, OSError):
            return
