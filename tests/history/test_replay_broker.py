"""ReplayBroker and ServiceRunner(environment=...): a service on a private broker fed from a recording."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from fastiot.core import FastIoTService, subscribe
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import InvalidRecordingError, RecordingNotFoundError
from fastiot.history import Recording, ReplayState
from fastiot.history.replay_broker import ReplayBroker
from fastiot.msg.thing import Thing
from fastiot.nats_server import NatsServer
from fastiot.runner import ServiceRunner, ServiceStatus
from tests.waits import wait_until, wait_until_gone


@dataclass
class RecordedThings:
    recording: Recording
    machine: str
    count: int


async def record_things(broker: NatsBrokerConnection, count: int, *, spacing: float = 0.0) -> RecordedThings:
    """Record ``count`` Things of a machine of this test alone; ``spacing`` s apart (for slow replays)."""
    machine = f"m{uuid.uuid4().hex[:10]}"
    recording = await Recording.start(
        f"things_{machine}", Thing.get_subject(f"{machine}.>"), connection=broker
    )
    for i in range(count):
        thing = Thing(machine=machine, name="temperature", value=float(i), unit="degC")
        await broker.publish(thing.default_subject, thing)
        if spacing:
            await broker.flush()
            await asyncio.sleep(spacing)
    await broker.flush()

    async def stored() -> bool:
        return (await recording.info()).messages == count

    await wait_until(stored, what=f"{count} Things recorded")
    return RecordedThings(recording, machine, count)


@pytest.fixture
async def things(broker: NatsBrokerConnection) -> AsyncIterator[RecordedThings]:
    recorded = await record_things(broker, 10)
    yield recorded
    await recorded.recording.delete()


class Counter(FastIoTService):
    """Keeps the values of every Thing it gets."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.values: list[float] = []

    @subscribe(subject=Thing.get_subject(">"))
    async def on_thing(self, thing: Thing) -> None:
        self.values.append(thing.value)


def received(runner: ServiceRunner) -> int:
    return runner.handler_counts().get("on_thing", {}).get("received", 0)


async def test_a_service_gets_the_recording_on_its_own_broker_and_never_the_live_one(
    things: RecordedThings, broker: NatsBrokerConnection, nats_server: NatsServer
) -> None:
    environment = ReplayBroker(things.recording.name, speed=None, connection=broker)
    runner = ServiceRunner(Counter, environment=environment)
    await runner.start()
    try:
        server, private = environment.server, environment.broker
        assert server is not None and private is not None and server.url != nats_server.url
        assert runner.service is not None and runner.service.broker_connection is private
        assert environment.replay is not None
        await environment.replay.wait(timeout=10)
        await wait_until(lambda: received(runner) == things.count, what="every recorded Thing")
        assert runner.service.values == [float(i) for i in range(things.count)], "in the recorded order"

        # The live broker's messages never reach it: one published live, then one on its own broker.
        live = Thing(machine=things.machine, name="temperature", value=-1.0)
        await broker.publish(live.default_subject, live)
        await broker.flush()
        mine = Thing(machine=things.machine, name="temperature", value=-2.0)
        await private.publish(mine.default_subject, mine)
        await wait_until(lambda: received(runner) == things.count + 1, what="the private broker's Thing")
        assert runner.service.values[-1] == -2.0 and -1.0 not in runner.service.values
    finally:
        await runner.stop()

    assert environment.broker is None and environment.server is None
    assert not server.is_running
    assert environment.replay.state is ReplayState.FINISHED


async def test_stopping_the_service_stops_the_replay_and_the_private_broker(
    broker: NatsBrokerConnection,
) -> None:
    recorded = await record_things(broker, 3, spacing=0.05)
    try:
        environment = ReplayBroker(recorded.recording.name, speed=0.001, connection=broker)
        runner = ServiceRunner(Counter, environment=environment)
        await runner.start()
        server, replay = environment.server, environment.replay
        assert server is not None and replay is not None
        pid = server.pid
        await wait_until(lambda: received(runner) == 1, what="the first Thing")  # the next is 50 s later

        await runner.stop()

        assert runner.status is ServiceStatus.STOPPED
        assert replay.state is ReplayState.STOPPED and replay.published == 1
        assert pid is not None
        wait_until_gone(pid, what="the private nats-server to end")
    finally:
        await recorded.recording.delete()


async def test_a_restart_replays_again_on_a_new_private_broker(
    things: RecordedThings, broker: NatsBrokerConnection
) -> None:
    environment = ReplayBroker(things.recording, speed=None)
    changes: list[tuple[Any, bool]] = []
    environment.on_change(lambda broker: changes.append((broker.replay, broker.server is not None)))
    runner = ServiceRunner(Counter, environment=environment)
    await runner.start()
    try:
        first_url = environment.server.url if environment.server else None
        await wait_until(lambda: received(runner) == things.count, what="the first replay")

        await runner.restart()

        assert environment.server is not None and environment.server.url != first_url
        await wait_until(
            lambda: received(runner) == things.count, what="the second replay, to a new instance"
        )
        replays = [replay for replay, running in changes if running]
        assert len(replays) == 2 and replays[1] is environment.replay and replays[0] is not replays[1]
        assert changes[1] == (replays[0], False), "the first broker closed before the second started"
    finally:
        await runner.stop()


async def test_an_unknown_recording_fails_before_any_server_starts(broker: NatsBrokerConnection) -> None:
    environment = ReplayBroker("no_such_recording_" + uuid.uuid4().hex[:6], connection=broker)
    runner = ServiceRunner(Counter, environment=environment)

    with pytest.raises(RecordingNotFoundError, match=r"Recording\.list"):
        await runner.start()

    assert environment.server is None and runner.status is ServiceStatus.STOPPED


@pytest.mark.parametrize("speed", [0, -1.0, "fast", True])
def test_a_bad_speed_is_refused_at_once(speed: Any) -> None:
    with pytest.raises(InvalidRecordingError, match="speed must be a positive number"):
        ReplayBroker("plant", speed=speed)


def test_a_connection_and_an_environment_exclude_each_other(broker: NatsBrokerConnection) -> None:
    with pytest.raises(TypeError, match="environment"):
        ServiceRunner(Counter, broker, environment=ReplayBroker("plant"))
