"""Shared fixtures: one real nats-server per test session, on a free loopback port."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.env import NATS_CONNECTION_SETTINGS
from fastiot.history.cli import STORE_ENV
from fastiot.nats_server import NatsServer
from fastiot.shared_broker import IDLE_ENV, RUNTIME_DIR_ENV
from tests.kernel_util import Kernel, running_kernel
from tests.lockdown import connect_as, locked_down_server


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    """A real nats-server (JetStream on) for the whole session, on a free 127.0.0.1 port."""
    with NatsServer(jetstream=True) as server:
        yield server


@pytest.fixture(scope="session")
def locked_down() -> Iterator[NatsServer]:
    """A production-like nats-server with per-user permissions (see ``tests/lockdown.py``)."""
    with locked_down_server() as server:
        yield server


async def _as(server: NatsServer, user: str) -> AsyncIterator[NatsBrokerConnection]:
    connection = await connect_as(server, user)
    yield connection
    await connection.close()


@pytest.fixture
async def admin(locked_down: NatsServer) -> AsyncIterator[NatsBrokerConnection]:
    """A connection to the locked-down server as ``admin`` (may do everything)."""
    async for connection in _as(locked_down, "admin"):
        yield connection


@pytest.fixture
async def viewer(locked_down: NatsServer) -> AsyncIterator[NatsBrokerConnection]:
    """... as ``viewer`` (reads ``v1.thing.>`` and recordings, changes nothing)."""
    async for connection in _as(locked_down, "viewer"):
        yield connection


@pytest.fixture
async def press1(locked_down: NatsServer) -> AsyncIterator[NatsBrokerConnection]:
    """... as ``press1`` (reads one machine, publishes nothing)."""
    async for connection in _as(locked_down, "press1"):
        yield connection


@pytest.fixture
async def nojs(locked_down: NatsServer) -> AsyncIterator[NatsBrokerConnection]:
    """... as ``nojs`` (anything but JetStream)."""
    async for connection in _as(locked_down, "nojs"):
        yield connection


@pytest.fixture
def kernel(nats_server: NatsServer, tmp_path: Path) -> Iterator[Kernel]:
    """A real IPython kernel (a process of its own) whose FASTIOT_NATS_* point at the session's server."""
    with running_kernel(tmp_path, {"FASTIOT_NATS_SERVERS": nats_server.url}) as kernel:
        yield kernel


@pytest.fixture(scope="session", autouse=True)
def workbench_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The workbench's own broker keeps JetStream in a directory of this session, never in ``$HOME``."""
    store = str(tmp_path_factory.mktemp("jetstream-store"))
    patch = pytest.MonkeyPatch()
    patch.setenv(STORE_ENV, store)
    yield store
    patch.undo()


@pytest.fixture(scope="session")
def _shared_broker_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shared-broker")


@pytest.fixture(autouse=True)
def shared_broker_dir(_shared_broker_base: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's on-demand kernels share a broker of that test only (never the user's own), which
    stops half a second after the last of them left; subprocesses and kernels inherit this."""
    folder = _shared_broker_base / uuid.uuid4().hex[:12]  # made by the first join(), if any
    monkeypatch.setenv(RUNTIME_DIR_ENV, str(folder))
    monkeypatch.setenv(IDLE_ENV, "0.5")
    return folder


@pytest.fixture(autouse=True)
def nats_env(nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point every FASTIOT_NATS_* setting at the session's server, so nothing reaches localhost:4222."""
    for name in NATS_CONNECTION_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FASTIOT_NATS_SERVERS", nats_server.url)
    return nats_server.url


@pytest.fixture
async def broker(nats_server: NatsServer) -> AsyncIterator[NatsBrokerConnection]:
    """A connection to the session's server, closed after the test."""
    connection = await NatsBrokerConnection.connect(servers=nats_server.url)
    yield connection
    await connection.close()


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    """A subject prefix of this test alone (``test.<module>.<random>``): other tests never mix in."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    return f"test.{module}.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def opened_connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[NatsBrokerConnection, str]]:
    """Every connection ``NatsBrokerConnection.connect()`` opens in the test, with the URL it reached."""
    opened: list[tuple[NatsBrokerConnection, str]] = []
    connect = NatsBrokerConnection.connect.__func__  # type: ignore[attr-defined]

    async def counting(cls: type[NatsBrokerConnection], *args: Any, **kwargs: Any) -> NatsBrokerConnection:
        connection = await connect(cls, *args, **kwargs)
        opened.append((connection, connection.connected_url))
        return connection

    monkeypatch.setattr(NatsBrokerConnection, "connect", classmethod(counting))
    return opened
