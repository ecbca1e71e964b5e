"""Recordings and buckets for the tests of the history widgets, on the session's JetStream server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import msgpack
import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.history import Recording
from tests.waits import wait_until


@dataclass
class Recorded:
    """A recording of ``prefix.>`` holding ``counts[subject]`` messages per subject."""

    recording: Recording
    prefix: str
    counts: dict[str, int]

    @property
    def name(self) -> str:
        return self.recording.name

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def stream_name(prefix: str) -> str:
    """A stream name of this test alone (stream names take no dots)."""
    return f"t_{prefix.rsplit('.', 1)[-1]}_{uuid.uuid4().hex[:6]}"


async def record(
    broker: NatsBrokerConnection, prefix: str, counts: dict[str, int], *, spacing: float = 0.0
) -> Recorded:
    """Record ``prefix.>`` and publish ``counts[suffix]`` msgpack messages on ``prefix.suffix``, in turns.

    ``spacing`` seconds between messages make a replay at a low speed take long (pause / stop tests).
    """
    recording = await Recording.start(stream_name(prefix), f"{prefix}.>", connection=broker)
    subjects = {f"{prefix}.{suffix}": n for suffix, n in counts.items()}
    left = dict(subjects)
    i = 0
    while any(left.values()):
        for subject in subjects:
            if left[subject]:
                left[subject] -= 1
                await broker.publish_raw(subject, msgpack.packb({"i": i, "value": i * 1.5}))
                i += 1
                if spacing:
                    await broker.flush()
                    await asyncio.sleep(spacing)
    await broker.flush()
    total = sum(subjects.values())

    async def stored() -> bool:
        return (await recording.info()).messages == total

    await wait_until(stored, what=f"{total} messages recorded")
    return Recorded(recording, prefix, subjects)


MakeRecording = Callable[..., Awaitable[Recorded]]


@pytest.fixture
async def make_recording(broker: NatsBrokerConnection, prefix: str) -> AsyncIterator[MakeRecording]:
    """``await make_recording(counts, spacing=0.0)``: :func:`record` under this test's prefix (each call
    one level deeper); every recording made is deleted after the test."""
    made: list[Recorded] = []

    async def make(counts: dict[str, int], *, spacing: float = 0.0) -> Recorded:
        made.append(await record(broker, f"{prefix}.r{len(made)}", counts, spacing=spacing))
        return made[-1]

    yield make
    for rec in made:
        await rec.recording.delete()


@pytest.fixture
async def recorded(make_recording: MakeRecording) -> Recorded:
    """A recording of 3 messages on ``<prefix>.a`` and 2 on ``<prefix>.b`` (deleted after the test)."""
    return await make_recording({"a": 3, "b": 2})
