"""Services that fail on purpose, shared by the ServiceRunner and ServiceControl tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastiot.core import FastIoTRequest, FastIoTResponse, FastIoTService, loop, reply, subscribe
from fastiot.core.broker_connection import BrokerConnection, NatsBrokerConnection
from fastiot.msg.thing import Thing
from fastiot.nats_server import NatsServer
from tests.core.fault_helpers import HangingHandler


class CrashingLoop(FastIoTService):
    """Starts, then its loop raises: the service shuts down with the error recorded."""

    @loop
    async def explode(self):
        raise RuntimeError("sensor unplugged")


class CrashingStart(FastIoTService):
    """Raises while starting."""

    async def _start(self) -> None:
        raise ValueError("bad configuration")


class HungSum(FastIoTResponse):
    total: int


class HungAdd(FastIoTRequest):
    _reply_cls = HungSum
    a: int
    b: int


class Hung(FastIoTService):
    """Its first handler never returns once a Thing arrives on ``v1.thing.hung``; stopping must still
    finish (fast: a short drain timeout), cancel it, stop the other handler and run ``_stop()``."""

    drain_timeout = 0.2

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hang = HangingHandler()  # .entered when a message arrives, .cancelled when cancelled
        self.stopped = False

    # Named to sort first: subscriptions are made (and were stopped) in name order, so the hung one
    # comes before the other one, which must be stopped all the same.
    @subscribe(subject=Thing.get_subject("hung"))
    async def a_never_returns(self, thing: Thing) -> None:
        await self.hang(thing)

    @reply(subject=HungAdd.get_reply_subject())
    async def b_add(self, request: HungAdd) -> HungSum:
        return HungSum(total=request.a + request.b)

    async def _stop(self) -> None:
        self.stopped = True


class FirstMessage(FastIoTService):
    """Sets ``got`` when the first Thing arrives on ``v1.thing.first_message``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.got = asyncio.Event()

    @subscribe(subject=Thing.get_subject("first_message"))
    async def on_thing(self, thing: Thing) -> None:
        self.got.set()


async def assert_no_message_lost_right_after_start(
    start: Callable[[BrokerConnection], Awaitable[FastIoTService]],
    stop: Callable[[], Awaitable[None]],
    starts: int = 100,
) -> None:
    """Start ``starts`` times; right after each start publish from another connection than the
    service's: the service must receive every message.

    ``start(connection)`` starts the service on ``connection`` and returns it. The server is one of its
    own without JetStream (like most brokers in production): with JetStream on, nats-server happens to
    route a publish slowly enough that the race shows less often.
    """
    with NatsServer() as server:
        connection = await NatsBrokerConnection.connect(servers=server.url)
        publisher = await NatsBrokerConnection.connect(servers=server.url)
        subject = Thing.get_subject("first_message")
        try:
            for i in range(starts):
                service = await start(connection)
                assert isinstance(service, FirstMessage)
                await publisher.publish(subject, Thing(machine="m", name="first_message", value=i))
                await publisher.flush()  # on its way at once, as fast as another client can be
                try:
                    await asyncio.wait_for(service.got.wait(), 5.0)
                except asyncio.TimeoutError:
                    raise AssertionError(
                        f"the message published right after start {i + 1} was lost"
                    ) from None
                await stop()
        finally:
            await stop()
            await publisher.close()
            await connection.close()
