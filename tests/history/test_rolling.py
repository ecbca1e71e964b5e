"""The rolling history (every non-system subject) and recording "everything", against a real nats-server."""

from __future__ import annotations

from datetime import timedelta

import nats.js.errors
import pytest
from nats.aio.msg import Msg

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.serialization import pack
from fastiot.exceptions import InvalidRecordingError, RecordingNotFoundError
from fastiot.history import Recording
from fastiot.history.rolling import (
    HISTORY_STREAM,
    HistoryKeeper,
    HistorySettings,
    ensure_history_stream,
    open_history,
    parse_size,
)
from tests.history.conftest import publish
from tests.waits import wait_until

WAIT = 10.0


async def _keeper(connection: NatsBrokerConnection) -> HistoryKeeper:
    await ensure_history_stream(connection, max_age=timedelta(minutes=5), max_bytes=10 * 1024**2)
    return await HistoryKeeper(connection).start()


async def _publish(connection: NatsBrokerConnection, items: list[tuple[str, object]]) -> None:
    """Plain publishes: the history does not acknowledge (a JetStream publish would wait for an ack)."""
    for subject, payload in items:
        await connection.publish_raw(subject, pack(payload))
    await connection.flush()


async def _subjects(rec: Recording) -> set[str]:
    return set((await rec.to_dataframe())["subject"])


async def test_recording_everything_without_a_history_says_what_to_record_instead(
    connection: NatsBrokerConnection, name: str
) -> None:
    """Issue 21 item 4: Record on '>' failed with 'capturing all subjects requires no-ack' (10052)."""
    for everything in (">", "*.>", "*.temperature", "$KV.>"):  # the server takes none (10052)
        with pytest.raises(InvalidRecordingError, match=r"Record the subjects you need, e\.g\. 'v1\.>'"):
            await Recording.start(name, everything, connection=connection)
    assert await Recording.list(connection=connection) == []
    with pytest.raises(RecordingNotFoundError, match="keeps no rolling history"):
        await open_history(connection)


async def test_the_history_keeps_every_non_system_subject_next_to_key_value_buckets(
    connection: NatsBrokerConnection,
) -> None:
    js = connection.client.jetstream()
    before = await js.create_key_value(bucket="made_before")
    keeper = await _keeper(connection)
    await _publish(connection, [("v1.thing.press_1.temperature", 1)])  # FastIoT's v1: kept from the start
    for subject in ("plant.oven_1.temperature", "solo"):  # new first tokens: learned from their first message
        await connection.publish_raw(subject, b"first")
    await before.put("limit", b"7")
    await keeper.settled(WAIT)
    assert keeper.roots == ["plant", "solo", "v1"]
    for subject in ("plant.oven_1.temperature", "solo"):
        await connection.publish_raw(subject, b"second")
    after = await js.create_key_value(bucket="made_after")  # the history does not stand in its way
    await after.put("k", b"1")
    await connection.flush()
    history = await open_history(connection)
    await wait_until(
        lambda: _count(history, 3), WAIT, "the history to hold the three subjects' messages", interval=0.05
    )
    frame = await history.to_dataframe(start=timedelta(minutes=1))
    assert set(frame["subject"]) == {"v1.thing.press_1.temperature", "plant.oven_1.temperature", "solo"}
    assert frame["subject"].value_counts()["v1.thing.press_1.temperature"] == 1
    await keeper.stop()


async def _count(rec: Recording, subjects: int) -> bool:
    return len((await rec.info()).subject_counts) >= subjects


async def test_a_recording_of_subjects_the_history_holds_is_copied_from_it(
    connection: NatsBrokerConnection, name: str
) -> None:
    keeper = await _keeper(connection)
    await _publish(connection, [("v1.thing.press_1.temperature", 0)])  # before: not in the recordings
    everything = await Recording.start(f"{name}_all", ">", connection=connection)
    things = await Recording.start(name, "v1.thing.>", max_age="1h", connection=connection)
    assert (await things.info()).subjects == ["v1.thing.>"]
    await _publish(connection, [("v1.thing.press_1.temperature", 1), ("v1.alarm.fire", 2)])
    await wait_until(lambda: _count(everything, 2), WAIT, "the copy of everything", interval=0.05)
    await wait_until(lambda: _count(things, 1), WAIT, "the copy of v1.thing.>", interval=0.05)
    assert await _subjects(everything) == {"v1.thing.press_1.temperature", "v1.alarm.fire"}
    frame = await things.to_dataframe()
    assert list(frame["subject"]) == ["v1.thing.press_1.temperature"] and list(frame["value"]) == [1]
    await things.stop()
    assert not (await things.info()).recording
    names = [rec.name for rec in await Recording.list(connection=connection)]
    assert names[0] == HISTORY_STREAM  # the RecordingBrowser lists it first
    await keeper.stop()


async def test_a_request_on_a_recorded_subject_gets_the_service_s_reply_not_the_stream_s_ack(
    connection: NatsBrokerConnection,
) -> None:
    """A stream that acknowledged would answer every request on v1 first (the demo's did, in notebook 01)."""
    keeper = await _keeper(connection)

    async def pong(msg: Msg) -> None:
        await msg.respond(b"pong")

    service = await connection.client.subscribe("v1.service.ping", cb=pong)
    reply = await connection.client.request("v1.service.ping", b"ping", timeout=WAIT)
    assert reply.data == b"pong"
    await service.unsubscribe()
    history = await open_history(connection)
    await wait_until(lambda: _count(history, 1), WAIT, "the history to keep the request", interval=0.05)
    assert await _subjects(history) == {"v1.service.ping"}
    await keeper.stop()


async def test_a_first_token_another_stream_records_is_left_to_it(
    connection: NatsBrokerConnection, name: str
) -> None:
    mine = await Recording.start(name, "plant.>", connection=connection)
    keeper = await _keeper(connection)
    await connection.publish_raw("plant.oven_1.temperature", b"1")
    await keeper.settled(WAIT)
    assert keeper.left_out == {"plant": name}
    assert "plant" not in keeper.roots
    await publish(connection, [("plant.oven_1.temperature", 2)], raw=False)
    assert (await mine.info()).messages == 2
    # A stream made without fastiot on v1 next to the history: NATS says no (Recording.start copies instead).
    with pytest.raises(nats.js.errors.BadRequestError) as refused:
        await connection.client.jsm().add_stream(name="other", subjects=["v1.other.>"])
    assert refused.value.err_code == 10065
    await keeper.stop()


def test_settings_come_from_the_environment_and_say_what_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    assert HistorySettings.from_env() == HistorySettings(True, timedelta(hours=24), 1024**3)
    monkeypatch.setenv("FASTIOT_HISTORY_MAX_AGE", "2h")
    monkeypatch.setenv("FASTIOT_HISTORY_MAX_BYTES", "512MiB")
    assert HistorySettings.from_env() == HistorySettings(True, timedelta(hours=2), 512 * 1024**2)
    monkeypatch.setenv("FASTIOT_HISTORY", "off")
    assert not HistorySettings.from_env().enabled
    monkeypatch.setenv("FASTIOT_HISTORY_MAX_BYTES", "lots")
    with pytest.raises(InvalidRecordingError, match=r"FASTIOT_HISTORY_MAX_BYTES.*'lots' is not a size"):
        HistorySettings.from_env()
    assert parse_size("1GiB") == 1024**3 and parse_size("500MB") == 500 * 1000**2
