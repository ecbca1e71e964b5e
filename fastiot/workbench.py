"""The notebook runtime.

One shared broker connection on the running asyncio loop, and THE rule for which connection an API
uses when it is given none.

In a Jupyter cell (ipykernel runs cells on a running asyncio loop)::

    from fastiot import workbench
    broker = await workbench.connection()        # created once, reused by every cell and widget
    broker.publish_sync(subject, msg)            # blocking calls complete instead of deadlocking

Which connection, when none is given (:func:`use_connection`, called by every API that takes
``connection=``): the workbench's shared connection on the running loop, opened on first use. In a
notebook kernel, and once :func:`connection` was called, it stays open until :func:`shutdown`; in a
plain script it closes when the last call or object using it is done, so nothing is left open.

Blocking calls on the loop's own thread are an opt-in: the shared connection allows them, and the
first such call makes the loop re-entrant (nest-asyncio2). Importing this module, or connecting,
patches nothing.

With no broker configured (none of FASTIOT_NATS_SERVERS / _HOST / _PORT set) and nothing listening on
localhost:4222, the kernel joins this user's shared broker (:mod:`fastiot.shared_broker`: a real
nats-server, JetStream on, with a password made for its start), starting it if no other kernel did,
and the ``FASTIOT_NATS_HOST`` / ``_PORT`` / ``_USER`` / ``_PASSWORD`` variables are set, so services
started later find it. A configured but unreachable server raises :class:`BrokerUnavailableError`
naming its URL: a different broker is never started silently. The shared broker stops once no kernel
(and no client) has used it for a while, even if the kernels were killed.
It keeps a rolling history of every non-system subject (:mod:`fastiot.history.rolling`;
``FASTIOT_HISTORY=off`` turns it off), which :func:`history` opens.

Everything that keeps running between cells (captures, subject indexes, services) registers here;
``await workbench.shutdown()`` stops all of it and the broker it started, and so does the end of the
kernel process.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import sys
from collections.abc import Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from fastiot import shared_broker
from fastiot.core._sync_bridge import make_reentrant
from fastiot.core.broker_api import BrokerConnection
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.logger import setup_logger
from fastiot.env import FASTIOT_MQTT_PORT, env_broker, mqtt_port
from fastiot.nats_server import accepts_connections
from fastiot.shared_broker import SharedBroker

if TYPE_CHECKING:
    from fastiot.history import Recording

__all__ = [
    "DEFAULT_LOCAL_URL",
    "DEFAULT_STOP_TIMEOUT",
    "ConnectionLease",
    "Stoppable",
    "broker_url",
    "connection",
    "current_connection",
    "enable_nested_loop",
    "ensure_broker",
    "history",
    "in_notebook",
    "register",
    "registered",
    "shutdown",
    "started_server",
    "unregister",
    "use_connection",
]

DEFAULT_LOCAL_URL = "nats://localhost:4222"
DEFAULT_STOP_TIMEOUT = 10.0

_logger: logging.Logger = setup_logger("workbench")


class Stoppable(Protocol):
    """Anything the workbench owns: it keeps running between cells until ``await stop()``."""

    async def stop(self) -> Any:
        """Stop it (release what it holds); the workbench awaits this at shutdown."""


class _Workbench:
    """The one kernel-wide state (the only global mutable state of fastiot)."""

    def __init__(self) -> None:
        self.connection: NatsBrokerConnection | None = None
        # Leases of the shared connection not yet released, and whether it stays open without them
        # (in a notebook kernel, or once connection() was called).
        self.users: int = 0
        self.kept: bool = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.lock: asyncio.Lock | None = None
        self.server: SharedBroker | None = None
        self.env_set: dict[str, str | None] = {}
        self.owned: list[Stoppable] = []


_wb = _Workbench()


def enable_nested_loop(loop: asyncio.AbstractEventLoop | None = None) -> bool:
    """Make ``loop`` (default: the running one) re-entrant, so blocking calls can run on its thread.

    A Jupyter cell runs on the kernel's running loop, where blocking on that loop would deadlock;
    nest-asyncio2 lets the call run the loop until it completes instead. The shared connection's first
    blocking call on the loop's thread does this by itself; ``%%service`` calls it.

    Returns:
        True if the loop is (now) re-entrant; False without a running loop or for a loop class that
        cannot be patched (e.g. uvloop).

    Example:
        >>> workbench.enable_nested_loop()  # doctest: +SKIP
        True
    """
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
    return make_reentrant(loop)


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (there the shared connection lives as long as the kernel).

    Example:
        >>> workbench.in_notebook()  # in a plain script  # doctest: +SKIP
        False
    """
    ipython = sys.modules.get("IPython")  # never imported here: a script without IPython has no kernel
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def broker_url() -> str:
    """The URL(s) the workbench connects to, comma separated."""
    return ",".join(env_broker.servers)


async def ensure_broker() -> str:
    """Make sure there is a broker to connect to and return its URL(s).

    Configured servers are used as they are. With nothing configured, a server already on
    localhost:4222 is used; otherwise a local nats-server is started (once per kernel).
    """
    if env_broker.is_configured:
        return broker_url()
    if _wb.server is not None and _wb.server.is_running:
        return _wb.server.url
    if await asyncio.to_thread(accepts_connections, "localhost", 4222):
        return DEFAULT_LOCAL_URL
    server = await asyncio.to_thread(shared_broker.join)
    _wb.server = server
    for name, value in server.nats_env().items():
        _wb.env_set.setdefault(name, os.environ.get(name))
        os.environ[name] = value
    _logger.info(
        "no NATS server at localhost:4222 and FASTIOT_NATS_HOST is not set; using this user's local one "
        "at %s, started on demand and shared by this user's kernels (FASTIOT_NATS_HOST/PORT/USER/PASSWORD "
        "now point to it)",
        server.url,
    )
    if server.mqtt_port is None and mqtt_port() is not None:
        _logger.warning(
            "%s asks for an MQTT listener, but this user's shared broker at %s was started without one by "
            "another kernel; it gets one when it starts again (after every kernel left it)",
            FASTIOT_MQTT_PORT,
            server.url,
        )
    # Its rolling history is kept by the shared broker's own supervisor, which outlives this kernel.
    return server.url


async def history() -> Recording:
    """The rolling history of the broker the workbench started: every non-system subject, lately.

    Raises:
        RecordingNotFoundError: The broker keeps none (the workbench did not start it, or
            ``FASTIOT_HISTORY=off``); the message says how to get one.

    Example:
        >>> from datetime import timedelta
        >>> history = await workbench.history()  # doctest: +SKIP
        >>> last_2_min = await history.to_dataframe(start=timedelta(minutes=2))  # doctest: +SKIP
    """
    from fastiot.history.rolling import open_history

    return await open_history(await connection())


def started_server() -> SharedBroker | None:
    """The shared nats-server this kernel joined (or started) on demand, if it did."""
    return _wb.server


async def connection() -> NatsBrokerConnection:
    """The shared broker connection on the running loop, kept open until :func:`shutdown`.

    Created on first use, reused by every cell, widget and service, and created again if it was
    closed. Starts a local broker when none is configured (see the module docs). It allows blocking
    calls (``publish_sync``, ``request_sync``, ``run_threadsafe``) on the loop's thread, as a Jupyter
    cell needs; the first one makes the loop re-entrant. In a plain script, call this once to have every
    API share the connection until ``await workbench.shutdown()``.

    Raises:
        BrokerUnavailableError: A configured server is unreachable (the message names its URL).
        BrokerAuthenticationError: The server rejected the configured credentials.

    Example:
        >>> broker = await workbench.connection()  # doctest: +SKIP
    """
    return await _shared(keep=True)


async def _shared(*, keep: bool) -> NatsBrokerConnection:
    """The shared connection of the running loop; ``keep`` keeps it open, else it counts one more user."""
    loop = asyncio.get_running_loop()
    if _wb.loop is not loop or _wb.lock is None:
        # A new loop (a new kernel, asyncio.run() or test): the old connection belonged to the old loop.
        _wb.loop, _wb.lock, _wb.connection = loop, asyncio.Lock(), None
    async with _wb.lock:
        current = _wb.connection
        if current is None or current.state == "closed" or current.client.is_closed:
            url = await ensure_broker()
            current = await NatsBrokerConnection.connect(servers=url, name="fastiot-workbench")
            # The opt-in of this one connection; the loop is made re-entrant by the first blocking call.
            current.allow_sync_calls_on_loop_thread = True
            _wb.connection, _wb.users, _wb.kept = current, 0, False
        if keep or in_notebook():
            _wb.kept = True
        else:
            _wb.users += 1
        return current


async def _let_go(shared: NatsBrokerConnection) -> None:
    """One user fewer of ``shared``; the last one closes it unless it is kept."""
    lock = _wb.lock
    if lock is None or _wb.loop is not asyncio.get_running_loop():
        return  # the loop it belonged to is gone, and the connection with it
    async with lock:
        if _wb.connection is not shared:
            return  # closed by shutdown() (or replaced after a close) meanwhile
        _wb.users = max(0, _wb.users - 1)
        if _wb.users or _wb.kept:
            return
        _wb.connection = None
        try:
            await asyncio.wait_for(shared.close(), DEFAULT_STOP_TIMEOUT)
        except Exception:
            _logger.exception("closing the shared connection failed")


AnyConnection = TypeVar("AnyConnection", bound=BrokerConnection)


class ConnectionLease(Generic[AnyConnection]):
    """A connection one call or object uses (from :func:`use_connection`) until :meth:`release`.

    ``async with`` releases it at the end of the block. Releasing the given connection does nothing;
    releasing the shared one lets it close when nothing else uses it (in a plain script).

    Args:
        connection: The connection to use.
        is_shared: Whether it is the workbench's shared connection.
        owner: What uses it: registered with the workbench while it holds the shared connection, so
            :func:`shutdown` stops it; None for a single call.

    Attributes:
        connection: The connection to use.
        is_shared: Whether it is the workbench's shared connection (no connection was given).
    """

    def __init__(self, connection: AnyConnection, *, is_shared: bool, owner: Stoppable | None) -> None:
        self.connection: AnyConnection = connection
        self.is_shared: bool = is_shared
        self._owner: Stoppable | None = owner
        self._released: bool = False

    async def release(self) -> None:
        """Done with the connection (a second call does nothing); the owner is no longer the workbench's."""
        if self._released:
            return
        self._released = True
        if self._owner is not None:
            unregister(self._owner)
        if self.is_shared:
            assert isinstance(self.connection, NatsBrokerConnection)
            await _let_go(self.connection)

    async def __aenter__(self) -> AnyConnection:
        return self.connection

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()


class _Using(Generic[AnyConnection]):
    """What :func:`use_connection` returns: ``await`` it for a lease, ``async with`` it for a connection."""

    def __init__(self, connection: AnyConnection | None, owner: Stoppable | None) -> None:
        self._connection = connection
        self._owner = owner
        self._lease: ConnectionLease[Any] | None = None

    async def _acquire(self) -> ConnectionLease[Any]:
        if self._connection is not None:
            return ConnectionLease(self._connection, is_shared=False, owner=None)
        shared = await _shared(keep=False)
        if self._owner is not None:
            register(self._owner)
        return ConnectionLease(shared, is_shared=True, owner=self._owner)

    def __await__(self) -> Generator[Any, None, ConnectionLease[Any]]:
        return self._acquire().__await__()

    async def __aenter__(self) -> Any:
        self._lease = await self._acquire()
        return self._lease.connection

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            await lease.release()


def use_connection(
    connection: AnyConnection | None = None, *, owner: Stoppable | None = None
) -> _Using[AnyConnection]:
    """THE rule for the connection an API uses: ``connection`` if given, else the shared one.

    Every API that takes ``connection=`` calls this. Without a connection it is the workbench's
    shared connection on the running loop (:func:`connection`'s), opened on first use. In a notebook
    kernel (and once :func:`connection` was called) the shared connection stays open for the next
    cell; in a plain script the last user's release closes it, so a script leaves nothing open.

    ``async with use_connection(connection) as broker:`` uses it for a block; ``lease = await
    use_connection(connection, owner=self)`` holds it until ``await lease.release()``. ``owner``, an
    object that keeps running between calls, is stopped by :func:`shutdown` until then.

    Raises:
        BrokerUnavailableError: A configured server is unreachable (the message names its URL).

    Example:
        >>> async with workbench.use_connection(None) as broker:  # doctest: +SKIP
        ...     await broker.publish_raw("v1.hello", b"hi")
    """
    return _Using(connection, owner)


def current_connection() -> NatsBrokerConnection | None:
    """The kernel-wide connection if :func:`connection` made one that is still open; never connects.

    Example:
        >>> broker = await workbench.connection()  # doctest: +SKIP
        >>> workbench.current_connection() is broker  # doctest: +SKIP
        True
    """
    current = _wb.connection
    if current is None or current.state == "closed" or current.client.is_closed:
        return None
    return current


def register(obj: Stoppable) -> None:
    """Let the workbench own ``obj`` (it has ``async stop()``): :func:`shutdown` stops it."""
    if obj not in _wb.owned:
        _wb.owned.append(obj)


def unregister(obj: Stoppable) -> None:
    """Forget ``obj`` (call it from ``obj.stop()``)."""
    if obj in _wb.owned:
        _wb.owned.remove(obj)


def registered() -> list[Stoppable]:
    """What the workbench owns right now (running captures, indexes, services)."""
    return list(_wb.owned)


async def shutdown(timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
    """Stop everything the workbench owns, close its connection and stop the broker it started.

    Each object gets ``timeout`` seconds to stop; one that fails is logged and the rest still stop.
    """
    for obj in reversed(list(_wb.owned)):
        try:
            await asyncio.wait_for(obj.stop(), timeout)
        except Exception:
            _logger.exception("stopping %r failed", obj)
        unregister(obj)
    if _wb.connection is not None:
        shared, _wb.connection, _wb.users, _wb.kept = _wb.connection, None, 0, False
        try:
            await asyncio.wait_for(shared.close(), timeout)
        except Exception:
            _logger.exception("closing the workbench connection failed")
    await asyncio.to_thread(_stop_server)


def _stop_server() -> None:
    server, _wb.server = _wb.server, None
    if server is not None:
        shared_broker.leave()  # it stops once no kernel (and no client) uses it any more
        _logger.info("left the shared local NATS server at %s", server.url)
    for name, previous in _wb.env_set.items():
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous
    _wb.env_set.clear()


@atexit.register
def _shutdown_at_exit() -> None:
    # The kernel is exiting: the loop no longer runs, so only the shared broker needs telling.
    # (If the kernel is killed outright, the broker's supervisor sees its process gone.)
    _stop_server()
