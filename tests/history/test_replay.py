"""Recording.replay: publish again with the original spacing, headers kept; the handle; loops refused."""

from __future__ import annotations

import asyncio
import time

import pytest
from nats.aio.msg import Msg as NatsMsg

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.serialization import pack
from fastiot.exceptions import InvalidRecordingError, RecordingDeletedError, ReplayLoopError
from fastiot.history import Recording, Replay, ReplayState
from fastiot.nats_server import NatsServer
from tests.history.conftest import WAIT, publish, recorded, things


class Inbox:
    """The messages arriving on a pattern, with the time each arrived."""

    def __init__(self) -> None:
        self.messages: list[NatsMsg] = []
        self.times: list[float] = []
        self._changed = asyncio.Event()

    async def on_msg(self, msg: NatsMsg) -> None:
        self.messages.append(msg)
        self.times.append(time.perf_counter())
        self._changed.set()

    async def wait_for(self, n: int) -> None:
        async def reached() -> None:
            while len(self.messages) < n:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(reached(), WAIT)


async def inbox(connection: NatsBrokerConnection, pattern: str) -> Inbox:
    box = Inbox()
    await connection.client.subscribe(pattern, cb=box.on_msg)
    await connection.flush()
    return box


async def test_replay_as_fast_as_possible_keeps_payloads_headers_and_order(
    connection: NatsBrokerConnection, name: str
) -> None:
    rec = await Recording.start(name, "v1.thing.>", connection=connection)
    items = things(200)
    await publish(connection, items, headers={3: {"trace-id": "abc", "Content-Type": "application/msgpack"}})
    box = await inbox(connection, "replay.>")
    progress: list[int] = []
    replay = await rec.replay(speed=None, subject_prefix="replay")
    replay.on_progress(lambda r: progress.append(r.published))
    assert replay.total == 200
    await replay.wait(timeout=WAIT)
    await box.wait_for(200)
    assert replay.state is ReplayState.FINISHED and replay.published == 200 and replay.progress == 1.0
    assert [m.subject for m in box.messages] == [f"replay.{s}" for s, _ in items]
    assert [m.data for m in box.messages] == [pack(payload) for _, payload in items]
    assert box.messages[3].headers == {"trace-id": "abc", "Content-Type": "application/msgpack"}
    assert box.messages[4].headers is None
    assert progress and progress[-1] == 200
    assert (await rec.info()).messages == 200  # replaying into replay.> recorded nothing more


async def test_replay_into_another_connection_uses_the_original_subjects(
    connection: NatsBrokerConnection, plain_connection: NatsBrokerConnection, name: str
) -> None:
    rec = await Recording.start(name, "v1.thing.>", connection=connection)
    items = things(20)
    await publish(connection, items)
    box = await inbox(plain_connection, "v1.thing.>")
    replay = await rec.replay(speed=None, connection=plain_connection)
    await replay.wait(timeout=WAIT)
    await box.wait_for(20)
    assert [m.subject for m in box.messages] == [s for s, _ in items]


async def test_a_replay_into_the_recorded_subjects_on_the_same_broker_is_refused_before_publishing(
    js_server: NatsServer, connection: NatsBrokerConnection, name: str
) -> None:
    rec = await recorded(connection, name, 10)
    box = await inbox(connection, "v1.thing.>")
    same_broker = await NatsBrokerConnection.connect(servers=js_server.url)
    try:
        for target in (None, connection, same_broker):
            with pytest.raises(ReplayLoopError, match="subject_prefix") as caught:
                await rec.replay(speed=None, connection=target)
            assert "another broker" in str(caught.value)
        wide = await Recording.start(f"{name}_wide", "r.>", connection=connection)
        await publish(connection, [("r.x", 1)])
        with pytest.raises(ReplayLoopError, match="another subject_prefix"):
            await wide.replay(speed=None, subject_prefix="r")  # r.r.x is recorded by r.> again
        await wide.delete()
    finally:
        await same_broker.close()
    await connection.flush()
    assert box.messages == []  # nothing was published
    assert (await rec.info()).messages == 10


async def test_a_stopped_recording_may_be_replayed_into_its_own_subjects(
    connection: NatsBrokerConnection, name: str
) -> None:
    rec = await recorded(connection, name, 10)
    await rec.stop()  # it records nothing more, so nothing loops
    box = await inbox(connection, "v1.thing.>")
    await (await rec.replay(speed=None)).wait(timeout=WAIT)
    await box.wait_for(10)
    assert (await rec.info()).messages == 10


async def test_replay_keeps_the_original_spacing_scaled_by_speed(
    connection: NatsBrokerConnection, name: str
) -> None:
    rec = await Recording.start(name, "v1.thing.>", connection=connection)
    for item in things(6):
        await publish(connection, [item])
        await asyncio.sleep(0.04)  # the recorded messages are 40 ms apart
    recorded = (await rec.to_dataframe())["received_at"].astype("int64").to_numpy() / 1e9
    box = await inbox(connection, "replay.>")
    replay = await rec.replay(speed=2.0, subject_prefix="replay")
    await replay.wait(timeout=WAIT)
    await box.wait_for(6)
    original = recorded - recorded[0]
    replayed = [t - box.times[0] for t in box.times]
    # Never early: each message goes out no sooner than its original offset / speed.
    assert all(r >= o / 2.0 - 0.002 for r, o in zip(replayed, original, strict=True)), (replayed, original)
    assert replayed[-1] >= 0.09  # 5 gaps of 40 ms at twice the speed
    assert replay.lateness_ms() >= 0.0


async def test_pause_holds_the_replay_and_resume_goes_on(connection: NatsBrokerConnection, name: str) -> None:
    rec = await recorded(connection, name, 500)
    box = await inbox(connection, "replay.>")
    replay = await rec.replay(speed=None, subject_prefix="replay")
    paused = asyncio.Event()

    def pause_once(r: Replay) -> None:
        if r.published and not paused.is_set():
            r.pause()
            paused.set()

    replay.on_progress(pause_once)
    await asyncio.wait_for(paused.wait(), WAIT)
    held = replay.published
    assert replay.state is ReplayState.PAUSED and replay.is_running
    for _ in range(20):  # the loop runs on; the replay does not
        await connection.flush()
    assert replay.published == held < 500
    await box.wait_for(held)
    assert len(box.messages) == held
    replay.resume()
    await replay.wait(timeout=WAIT)
    await box.wait_for(500)
    assert [m.subject for m in box.messages] == [f"replay.{s}" for s, _ in things(500)]


async def test_stop_ends_the_replay_and_keeps_what_was_published(
    connection: NatsBrokerConnection, name: str
) -> None:
    rec = await recorded(connection, name, 50)
    replay = await rec.replay(speed=0.001, subject_prefix="replay")  # very slow: it would take hours
    await replay.stop()
    assert replay.state is ReplayState.STOPPED and not replay.is_running
    assert replay.published < 50
    await replay.wait(timeout=WAIT)  # a stopped replay's wait() returns
    await replay.stop()  # stopping again does nothing


async def test_a_range_and_subjects_limit_the_replay_and_its_total(
    connection: NatsBrokerConnection, name: str
) -> None:
    rec = await recorded(connection, name, 40, machines=("a", "b"))
    box = await inbox(connection, "replay.>")
    replay = await rec.replay(speed=None, start=5, end=24, subjects="v1.thing.a.>", subject_prefix="replay")
    assert replay.total == 10
    await replay.wait(timeout=WAIT)
    await box.wait_for(10)
    assert replay.published == 10
    assert {m.subject for m in box.messages} == {"replay.v1.thing.a.temperature"}


async def test_a_recording_deleted_during_a_replay_ends_it_with_a_clear_error(
    connection: NatsBrokerConnection, name: str
) -> None:
    rec = await recorded(connection, name, 20)
    replay = await rec.replay(speed=0.01, subject_prefix="replay")  # slow, so it is still running
    await rec.delete()
    with pytest.raises(RecordingDeletedError, match="deleted"):
        await replay.wait(timeout=WAIT)
    assert replay.state is ReplayState.FAILED


async def test_bad_replay_arguments_are_refused_before_publishing(
    connection: NatsBrokerConnection, name: str
) -> None:
    rec = await recorded(connection, name, 3)
    for speed in (0, -1.0, "fast", True):
        with pytest.raises(InvalidRecordingError, match="speed"):
            await rec.replay(speed=speed, subject_prefix="replay")  # type: ignore[arg-type]
    for prefix in ("", "a.*", "a.>", ".a", "a b"):
        with pytest.raises(InvalidRecordingError, match="subject_prefix"):
            await rec.replay(speed=None, subject_prefix=prefix)
