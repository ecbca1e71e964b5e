"""Every JetStream and key-value call the server refuses raises PermissionDeniedError at once.

Never a "JetStream did not answer in time" after seconds of waiting: the refusal names the API call.
Against the locked-down server of ``tests/lockdown.py``: ``nojs`` may do anything but JetStream, the
``viewer`` may read recordings but not make or delete them, nor publish a replay.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import PermissionDeniedError
from fastiot.history import Bucket, Recording
from fastiot.msg.thing import Thing
from fastiot.nats_server import NatsServer
from tests.lockdown import connect_as

BOUND = 10.0  # a refusal found by waiting for JetStream's timeout would take longer than this... and fail


@pytest.fixture
def names() -> tuple[str, str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"perm_rec_{tag}", f"perm_kv_{tag}", f"perm_{tag}"


@pytest.fixture
async def plant(
    locked_down: NatsServer, names: tuple[str, str, str]
) -> AsyncIterator[tuple[Recording, Bucket]]:
    """As the admin: a recording of a few Things and a key-value bucket with a key."""
    stream, bucket_name, machine = names
    admin = await connect_as(locked_down, "admin")
    try:
        recording = await Recording.start(stream, f"v1.thing.{machine}.>", connection=admin)
        for n in range(5):
            await admin.publish(
                Thing.get_subject(f"{machine}.temp"), Thing(name="temp", machine=machine, value=n)
            )
        await admin.flush()
        js = admin.client.jetstream()
        try:
            kv = await js.key_value(bucket_name)
        except Exception:
            kv = await js.create_key_value(bucket=bucket_name, history=5)
        await kv.put("press_1", b'{"state": "on"}')
        await kv.put("press_1", b'{"state": "off"}')
        yield recording, Bucket(bucket_name)
    finally:
        await admin.close()


async def refused(call: object) -> PermissionDeniedError:
    assert asyncio.iscoroutine(call)
    with pytest.raises(PermissionDeniedError) as caught:
        await asyncio.wait_for(call, BOUND)
    return caught.value


async def test_without_jetstream_every_recording_call_is_refused_at_once(
    plant: tuple[Recording, Bucket], nojs: NatsBrokerConnection
) -> None:
    recording, _ = plant
    err = await refused(Recording.start("perm_new", "v1.thing.new.>", connection=nojs))
    assert err.operation.startswith("STREAM.")
    assert err.subject.upper().startswith("$JS.API.STREAM.")
    assert "administrator" in str(err) and "$JS.API" in str(err)
    err = await refused(Recording.list(connection=nojs))
    assert err.operation in ("STREAM.NAMES", "STREAM.LIST")
    err = await refused(Recording.open(recording.name, connection=nojs))
    assert err.operation == "STREAM.INFO"
    assert recording.name in err.subject
    await refused(recording.info(connection=nojs))
    await refused(recording.to_dataframe(connection=nojs))
    err = await refused(recording.delete(connection=nojs))
    assert err.operation == "STREAM.DELETE"
    assert nojs.is_connected  # and it still does what the user may do, with nothing left to report:
    await nojs.publish_raw("v1.thing.any.temp", b"\x01")
    await nojs.flush()


async def test_without_jetstream_every_bucket_call_is_refused_at_once(
    plant: tuple[Recording, Bucket], nojs: NatsBrokerConnection
) -> None:
    _, bucket = plant
    await refused(Bucket.list(connection=nojs))
    await refused(Bucket.open(bucket.name, connection=nojs))
    await refused(bucket.get("press_1", connection=nojs))
    await refused(bucket.history("press_1", connection=nojs))
    await refused(bucket.keys(connection=nojs))
    await refused(bucket.watch(connection=nojs).start())


async def test_a_viewer_reads_recordings_but_may_not_make_or_delete_them(
    plant: tuple[Recording, Bucket], viewer: NatsBrokerConnection
) -> None:
    recording, _ = plant
    listed = await asyncio.wait_for(Recording.list(connection=viewer), BOUND)
    assert recording in listed
    frame = await asyncio.wait_for(recording.to_dataframe(connection=viewer), BOUND)
    assert list(frame["value"]) == [0, 1, 2, 3, 4]

    err = await refused(Recording.start("perm_viewer", "v1.thing.viewer.>", connection=viewer))
    assert err.operation == "STREAM.CREATE"
    err = await refused(recording.delete(connection=viewer))
    assert err.operation == "STREAM.DELETE"
    assert (await recording.info(connection=viewer)).messages == 5  # nothing was deleted


async def test_a_replay_the_viewer_may_not_publish_is_refused(
    plant: tuple[Recording, Bucket], viewer: NatsBrokerConnection
) -> None:
    recording, _ = plant
    replay = await asyncio.wait_for(
        recording.replay(speed=None, connection=viewer, subject_prefix="replay"), BOUND
    )
    with pytest.raises(PermissionDeniedError) as caught:
        await replay.wait(BOUND)
    assert caught.value.operation == "publish"
