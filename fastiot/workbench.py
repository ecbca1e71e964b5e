"""The notebook runtime: one kernel-wide broker connection on the kernel's own asyncio loop.

In a Jupyter cell (ipykernel runs cells on a running asyncio loop)::

    from fastiot import workbench
    broker = await workbench.connection()        # created once, reused by every cell and widget
    broker.publish_sync(subject, msg)            # blocking calls complete instead of deadlocking

Blocking calls on the loop's own thread are an opt-in: :func:`connection` makes the kernel's loop
re-entrant (nest-asyncio2) and allows them on the kernel-wide connection. Importing this module
changes nothing by itself.

With no broker configured (none of FASTIOT_NATS_SERVERS / _HOST / _PORT set) and nothing listening on
localhost:4222, a real nats-server (JetStream on) is started for the kernel's lifetime and the
``FASTIOT_NATS_HOST`` / ``FASTIOT_NATS_PORT`` variables are set, so services started later find it.
A configured but unreachable server raises :class:`BrokerUnavailableError` naming its URL: a
different broker is never started silently. The broker started here lives as long as the process
(whichever thread or ``asyncio.run()`` started it) and never longer, even if the process is killed.
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
from typing import TYPE_CHECKING, Any, Protocol

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.logger import setup_logger
from fastiot.env import FASTIOT_NATS_HOST, FASTIOT_NATS_PORT, env_broker
from fastiot.nats_server import NatsServer, accepts_connections

if TYPE_CHECKING:
    from fastiot.history import Recording

__all__ = [
    "DEFAULT_LOCAL_URL",
    "DEFAULT_STOP_TIMEOUT",
    "Stoppable",
    "broker_url",
    "connection",
    "enable_nested_loop",
    "ensure_broker",
    "history",
    "register",
    "registered",
    "shutdown",
    "started_server",
    "unregister",
]

DEFAULT_LOCAL_URL = "nats://localhost:4222"
DEFAULT_STOP_TIMEOUT = 10.0

_logger: logging.Logger = setup_logger("workbench")


class Stoppable(Protocol):
    """Anything the workbench owns: it keeps running between cells until ``await stop()``."""

    async def stop(self) -> Any: ...


class _Workbench:
    """The one kernel-wide state (the only global mutable state of fastiot)."""

    def __init__(self) -> None:
        self.connection: NatsBrokerConnection | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.lock: asyncio.Lock | None = None
        self.server: NatsServer | None = None
        self.env_set: dict[str, str | None] = {}
        self.owned: list[Stoppable] = []


_wb = _Workbench()


def enable_nested_loop(loop: asyncio.AbstractEventLoop | None = None) -> bool:
    """Make ``loop`` (default: the running one) re-entrant, so blocking calls can run on its thread.

    A Jupyter cell runs on the kernel's running loop, where blocking on that loop would deadlock;
    nest-asyncio2 lets the call run the loop until it completes instead. :func:`connection` calls this
    for the kernel's loop; nothing else does.

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
    if not isinstance(loop, asyncio.BaseEventLoop):  # e.g. uvloop: cannot be patched
        return False
    import nest_asyncio2

    nest_asyncio2.apply(loop)  # patches once; a second call for the same loop does nothing
    return True


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
    server = NatsServer(jetstream=True)
    await asyncio.to_thread(server.start)  # forked by nats_server's long-lived thread, not this one
    _wb.server = server
    for name, value in ((FASTIOT_NATS_HOST, server.host), (FASTIOT_NATS_PORT, str(server.port))):
        _wb.env_set.setdefault(name, os.environ.get(name))
        os.environ[name] = value
    _logger.info(
        "no NATS server at localhost:4222 and FASTIOT_NATS_HOST is not set; started a local one at %s "
        "for this kernel (FASTIOT_NATS_HOST/PORT now point to it)",
        server.url,
    )
    from fastiot.history.rolling_cli import KeeperProcess  # history code only where a broker is started

    keeper = await KeeperProcess.start(server.url)
    if keeper is not None:
        register(keeper)  # shutdown() stops it before the server
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


def started_server() -> NatsServer | None:
    """The nats-server the workbench started for this kernel, if it started one."""
    return _wb.server


async def connection() -> NatsBrokerConnection:
    """The kernel-wide broker connection on the running loop.

    Created on first use, reused by every cell, widget and service, and created again if it was
    closed. Starts a local broker when none is configured (see the module docs). Makes the running
    loop re-entrant and allows blocking calls (``publish_sync``, ``request_sync``, ``run_threadsafe``)
    on its thread for this connection, as a Jupyter cell needs.

    Raises:
        BrokerUnavailableError: A configured server is unreachable (the message names its URL).
        BrokerAuthenticationError: The server rejected the configured credentials.

    Example:
        >>> broker = await workbench.connection()  # doctest: +SKIP
    """
    loop = asyncio.get_running_loop()
    nested = enable_nested_loop(loop)
    if _wb.loop is not loop or _wb.lock is None:
        # A new loop (a new kernel or test): the old connection belonged to the old loop.
        _wb.loop, _wb.lock, _wb.connection = loop, asyncio.Lock(), None
    async with _wb.lock:
        current = _wb.connection
        if current is not None and current.state != "closed" and not current.client.is_closed:
            return current
        url = await ensure_broker()
        connection = await NatsBrokerConnection.connect(servers=url, name="fastiot-workbench")
        # The opt-in of this one connection: only a re-entrant loop can serve a blocking call on its thread.
        connection.allow_sync_calls_on_loop_thread = nested
        _wb.connection = connection
        return connection


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
        try:
            await asyncio.wait_for(_wb.connection.close(), timeout)
        except Exception:
            _logger.exception("closing the workbench connection failed")
        _wb.connection = None
    await asyncio.to_thread(_stop_server)


def _stop_server() -> None:
    server, _wb.server = _wb.server, None
    if server is not None:
        server.stop()
        _logger.info("stopped the local NATS server at %s", server.url)
    for name, previous in _wb.env_set.items():
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous
    _wb.env_set.clear()


@atexit.register
def _shutdown_at_exit() -> None:
    # The kernel is exiting: the loop no longer runs, so only the broker process needs stopping.
    # (If the kernel is killed outright, the server gets SIGTERM from the kernel's death on Linux.)
    _stop_server()
