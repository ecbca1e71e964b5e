"""Helpers of the fault tests: event-based waits on connection state and message counts, and figures."""

from __future__ import annotations

import asyncio
import json
import statistics
import urllib.request
from collections.abc import Awaitable, Callable, Iterable

import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.nats_server import NatsServer, find_free_port
from tests.waits import WAIT, wait_until

__all__ = [
    "WAIT",
    "Counter",
    "StateLog",
    "percentile",
    "publish_until",
    "record_figure",
    "routes_of",
    "start_cluster",
    "wait_for_routes",
]


class StateLog:
    """Records every state change of a connection and lets a test wait for the next one it expects.

    Each :meth:`wait_for` consumes one occurrence of its state, so a change that came and went
    before the test looked (a failover can take a millisecond) is not missed.
    """

    def __init__(self, connection: NatsBrokerConnection) -> None:
        self.connection = connection
        self.states: list[str] = []
        self._consumed: dict[str, int] = {}
        self._changed = asyncio.Event()
        connection.on_state_change(self._on_change)

    def _on_change(self, state: str) -> None:
        self.states.append(state)
        self._changed.set()

    async def wait_for(self, state: str, timeout: float = WAIT) -> None:
        """Wait until the connection has entered ``state`` once more than the waits so far consumed."""
        wanted = self._consumed.get(state, 0) + 1

        async def reached() -> None:
            while self.states.count(state) < wanted:
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(reached(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"no change to {state!r} within {timeout} s; states so far {self.states}"
            ) from None
        self._consumed[state] = wanted


class Counter:
    """Counts events and lets a test wait until there are at least n."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = asyncio.Event()

    def add(self, n: int = 1) -> None:
        self.count += n
        self._changed.set()

    async def wait_for(self, n: int, timeout: float = WAIT) -> None:
        try:
            await self.wait_until(lambda: self.count >= n, timeout)
        except AssertionError:
            raise AssertionError(f"only {self.count} of {n} within {timeout} s") from None

    async def wait_until(self, condition: Callable[[], bool], timeout: float = WAIT) -> None:
        """Wait until ``condition()`` holds, checking it after every count."""

        async def reached() -> None:
            while not condition():
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(reached(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"condition not reached within {timeout} s (count {self.count})") from None


class HangingHandler:
    """A message handler that never returns: it records each message, then waits until cancelled.

    ``entered`` is set when a message arrives, ``cancelled`` when the handler is cancelled.
    """

    def __init__(self) -> None:
        self.handled: list[object] = []
        self.entered = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def __call__(self, msg: object) -> None:
        self.handled.append(msg)
        self.entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


async def publish_until(
    publish: Callable[[], Awaitable[object]], arrived: Callable[[], bool], timeout: float = WAIT
) -> None:
    """Publish a probe every 20 ms until ``arrived()``: interest crosses a cluster route asynchronously."""

    async def probe_arrived() -> bool:
        if arrived():
            return True
        await publish()
        return False

    await wait_until(probe_arrived, timeout, "a probe to arrive", interval=0.02)


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0..100) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[max(0, min(98, round(q) - 1))]


def record_figure(request: pytest.FixtureRequest, name: str, value: object) -> None:
    """Keep a measured figure; tests/core/conftest.py prints them at the end of the run."""
    request.node.user_properties.append((f"figure:{name}", value))


def routes_of(server: NatsServer) -> int:
    """How many routes the server has (from its /routez monitoring endpoint)."""
    assert server.monitor_url is not None
    with urllib.request.urlopen(f"{server.monitor_url}/routez", timeout=2) as response:
        return int(json.load(response)["num_routes"])


async def wait_for_routes(servers: list[NatsServer], timeout: float = WAIT) -> None:
    """Wait until every server has a route to every other one (a full mesh)."""

    async def full_mesh() -> bool:
        counts = [await asyncio.to_thread(routes_of, s) for s in servers if s.is_running]
        return all(c >= len(counts) - 1 for c in counts)

    await wait_until(full_mesh, timeout, "routes between every pair of servers", interval=0.05)


def start_cluster(size: int = 3, *, jetstream: bool = False) -> list[NatsServer]:
    """Start ``size`` nats-servers on loopback, each with routes to all the others (stop them after use)."""
    cluster_ports = [find_free_port() for _ in range(size)]
    servers = []
    for i, port in enumerate(cluster_ports):
        routes = [f"nats-route://127.0.0.1:{p}" for j, p in enumerate(cluster_ports) if j != i]
        servers.append(
            NatsServer(
                cluster_name="fastiot-test",
                cluster_port=port,
                routes=routes,
                http_port=0,
                jetstream=jetstream,
            )
        )
    try:
        for server in servers:
            server.start()
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers
