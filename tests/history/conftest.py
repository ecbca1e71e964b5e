"""Fixtures of the history tests: a JetStream nats-server on a free loopback port, connections, streams."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator, Sequence

import nats.errors
import nats.js.errors
import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.serialization import pack
from fastiot.history import Recording
from fastiot.nats_server import NatsServer
from tests.waits import wait_until

WAIT = 20.0
_names = itertools.count()


@pytest.fixture(scope="session")
def js_server() -> Iterator[NatsServer]:
    """A nats-server with JetStream for the history tests, on a free 127.0.0.1 port."""
    with NatsServer(jetstream=True) as server:
        yield server


@pytest.fixture
async def connection(js_server: NatsServer) -> AsyncIterator[NatsBrokerConnection]:
    """A connection to ``js_server``; every stream on it is deleted after the test."""
    conn = await NatsBrokerConnection.connect(servers=js_server.url)
    yield conn
    await delete_all_streams(conn)
    await conn.close()


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A stream name no other test uses."""
    return f"t{next(_names)}_{request.node.name[:40]}".replace("[", "_").replace("]", "_").replace("-", "_")


@pytest.fixture
async def plain_connection() -> AsyncIterator[NatsBrokerConnection]:
    """A connection to a second nats-server, without JetStream, on a free loopback port."""
    async with NatsServer() as server:
        conn = await NatsBrokerConnection.connect(servers=server.url)
        yield conn
        await conn.close()


@pytest.fixture
def use_js_server(js_server: NatsServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """FASTIOT_NATS_SERVERS points at ``js_server`` (for calls without a connection)."""
    monkeypatch.setenv("FASTIOT_NATS_SERVERS", js_server.url)
    return js_server.url


async def delete_all_streams(conn: NatsBrokerConnection) -> None:
    jsm = conn.client.jsm()
    for info in await jsm.streams_info():
        try:
            await jsm.delete_stream(info.config.name)
        except nats.js.errors.NotFoundError:
            pass


async def publish(
    conn: NatsBrokerConnection,
    items: Sequence[tuple[str, object]],
    *,
    headers: dict[int, dict[str, str]] | None = None,
    raw: bool = False,
) -> list[int]:
    """Publish (subject, payload) items into JetStream, waiting for every ack; the stream sequences.

    Payloads are msgpack-packed unless ``raw`` (then they are bytes as they are).
    """
    js = conn.client.jetstream()
    window = asyncio.Semaphore(500)

    async def one(i: int, subject: str, payload: object) -> int:
        async with window:
            data = payload if raw else pack(payload)
            ack = await js.publish(subject, data, headers=(headers or {}).get(i), timeout=WAIT)  # type: ignore[arg-type]
            return int(ack.seq)

    return list(await asyncio.gather(*(one(i, s, p) for i, (s, p) in enumerate(items))))


async def recorded(
    conn: NatsBrokerConnection, name: str, n: int, machines: Sequence[str] = ("press_1", "press_2")
) -> Recording:
    """A recording ``name`` of ``v1.thing.>`` holding ``n`` :func:`things`."""
    rec = await Recording.start(name, "v1.thing.>", connection=conn)
    await publish(conn, things(n, machines))
    return rec


def things(
    n: int, machines: Sequence[str] = ("press_1", "press_2"), start: int = 0
) -> list[tuple[str, dict]]:
    """``n`` Thing-like payloads on ``v1.thing.<machine>.temperature``, numbered from ``start``."""
    items = []
    for i in range(start, start + n):
        machine = machines[i % len(machines)]
        items.append(
            (
                f"v1.thing.{machine}.temperature",
                {"machine": machine, "name": "temperature", "value": float(i), "unit": "degC", "n": i},
            )
        )
    return items


async def wait_for_jetstream(conn: NatsBrokerConnection, replicas: int, timeout: float = 60.0) -> None:
    """Wait until the cluster takes a stream of ``replicas`` copies (a meta leader, and every server a peer).

    Nothing signals that: a probe stream is made (and removed) until the servers accept it.
    """
    jsm = conn.client.jsm()
    refused: list[Exception] = []

    async def takes_a_stream() -> bool:
        try:
            await jsm.add_stream(name="probe", subjects=["probe.>"], num_replicas=replicas)
            await jsm.delete_stream("probe")
        except (nats.js.errors.Error, nats.errors.Error) as e:
            refused[:] = [e]
            return False
        return True

    what = f"JetStream taking a stream of {replicas} replicas"
    try:
        await wait_until(takes_a_stream, timeout, what, interval=0.2)
    except AssertionError as e:
        raise AssertionError(f"{e}; the last refusal: {refused[-1]!r}" if refused else str(e)) from None
