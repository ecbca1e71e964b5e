"""ServiceDirectory: the services on the broker, discovered again and again (the ServiceBrowser's model).

Example:
    >>> from fastiot.services import ServiceDirectory
    >>> directory = ServiceDirectory(interval=2.0)
    >>> await directory.start()  # doctest: +SKIP
    >>> [(s.name, s.requests) for s in directory.services]  # doctest: +SKIP
    [('Doubler', 3)]
    >>> await directory.stop()  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from fastiot import workbench
from fastiot._callbacks import CallbackList
from fastiot.core.broker_connection import BrokerConnection
from fastiot.services.discovery import DEFAULT_DISCOVER_TIMEOUT, DiscoveredService, discover
from fastiot.services.examples import example_payload
from fastiot.workbench import ConnectionLease

__all__ = ["DEFAULT_REFRESH_INTERVAL", "ServiceDirectory", "example_request"]

DEFAULT_REFRESH_INTERVAL = 2.0
"""Seconds between two discoveries of a running :class:`ServiceDirectory`."""

_logger = logging.getLogger("fastiot.services")

ChangeCallback = Callable[[list[DiscoveredService]], None]


def example_request(service: DiscoveredService, endpoint: str) -> Any:
    """An example request for one endpoint of ``service``, made from its request schema.

    Args:
        service: A discovered service.
        endpoint: The endpoint's name (a ``@reply`` handler's name).

    Returns:
        A JSON-compatible value matching the request schema ({} when the service sent none).

    Raises:
        KeyError: The service has no such endpoint.

    Example:
        >>> example_request(doubler, "double")  # doctest: +SKIP
        {'value': 0, 'note': 'example'}
    """
    for candidate in service.endpoints:
        if candidate.name == endpoint:
            schema = candidate.request_schema
            return example_payload(schema) if schema else {}
    raise KeyError(
        f"{service.name} has no endpoint {endpoint!r}; it has {[e.name for e in service.endpoints]}"
    )


class ServiceDirectory:
    """The services on the broker, refreshed every ``interval`` seconds by a task it owns.

    Args:
        connection: The connection to ask on; default the workbench's (see ``use_connection``).
        interval: Seconds between two discoveries.
        timeout: Seconds each discovery gathers answers (less than ``interval``).

    Attributes:
        services: The services of the latest discovery, sorted by name and id.
        error: Why the latest discovery failed ("" if it did not).
        refreshes: How many discoveries finished.
    """

    def __init__(
        self,
        *,
        connection: BrokerConnection | None = None,
        interval: float = DEFAULT_REFRESH_INTERVAL,
        timeout: float = DEFAULT_DISCOVER_TIMEOUT / 2,
    ) -> None:
        """Set the directory up; nothing is asked before :meth:`start` or :meth:`refresh`.

        Raises:
            ValueError: ``interval`` or ``timeout`` is not > 0.
        """
        if not timeout > 0:
            raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        if not interval > 0:
            raise ValueError(f"interval must be a number of seconds > 0, got {interval!r}")
        self.connection: BrokerConnection | None = connection
        self.interval: float = interval
        self.timeout: float = timeout
        self.services: list[DiscoveredService] = []
        self.error: str = ""
        self.refreshes: int = 0
        self._lease: ConnectionLease[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event = asyncio.Event()
        self._callbacks: CallbackList[[list[DiscoveredService]]] = CallbackList("services change")

    @property
    def is_running(self) -> bool:
        """Whether it refreshes periodically."""
        return self._task is not None and not self._task.done()

    def on_change(self, callback: ChangeCallback, remove: bool = False) -> None:
        """Call ``callback(services)`` after each discovery (or remove it with ``remove=True``)."""
        self._callbacks.register(callback, remove=remove)

    def find(self, name: str, service_id: str) -> DiscoveredService:
        """The service ``name`` with id ``service_id`` from the latest discovery.

        Raises:
            KeyError: It was not seen in the latest discovery.
        """
        for service in self.services:
            if (service.name, service.id) == (name, service_id):
                return service
        raise KeyError(f"no service {name} with id {service_id} answered the latest discovery")

    async def refresh(self) -> list[DiscoveredService]:
        """Discover the services now; the result replaces :attr:`services`.

        Returns:
            The services found.
        """
        connection = self._lease.connection if self._lease is not None else self.connection
        try:
            services = await discover(timeout=self.timeout, connection=connection)
        except Exception as e:
            self.error = f"{type(e).__name__}: {e}"
            raise
        self.services, self.error = services, ""
        self.refreshes += 1
        self._callbacks(services)
        return services

    async def start(self) -> None:
        """Discover now, then again every :attr:`interval` seconds until :meth:`stop`.

        Raises:
            BrokerUnavailableError: No connection given and the workbench's cannot connect.
        """
        if self.is_running:
            return
        self._lease = await workbench.use_connection(self.connection, owner=self)
        workbench.register(self)  # which_services() reads what a running directory has seen
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ServiceDirectory refresh")

    def refresh_soon(self) -> None:
        """Make a running directory discover now instead of at the end of its interval."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:  # kept in .error; the next round may succeed (e.g. after a reconnect)
                _logger.debug("discovering the services failed", exc_info=True)
                self._callbacks(self.services)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except asyncio.TimeoutError:
                pass

    async def stop(self) -> None:
        """Stop refreshing (waits for the task to end) and let the connection go."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        workbench.unregister(self)
        lease, self._lease = self._lease, None
        if lease is not None:
            await lease.release()

    def __repr__(self) -> str:
        """Running or not, and how many services it saw."""
        state = "running" if self.is_running else "stopped"
        return f"<ServiceDirectory {state}, {len(self.services)} services>"
