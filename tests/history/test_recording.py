"""Recording: start (and reuse), open, list, info, stop, delete, the default connection."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fastiot import workbench
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import RecordingDeletedError, RecordingExistsError, RecordingNotFoundError
from fastiot.history import Recording
from fastiot.msg.thing import Thing
from fastiot.nats_server import NatsServer
from tests.history.conftest import publish, recorded, things


async def test_start_records_a_pattern_a_subject_or_a_list(
    connection: NatsBrokerConnection, name: str
) -> None:
    rec = await Recording.start(name, [Thing.get_subject("press_1.>"), "v1.alarm.*"], connection=connection)
    assert rec.name == name
    assert rec.subjects == ["v1.thing.press_1.>", "v1.alarm.*"]
    await publish(connection, [("v1.thing.press_1.temperature", 1), ("v1.alarm.fire", 2)])
    info = await rec.info()
    assert info.subjects == ["v1.thing.press_1.>", "v1.alarm.*"]
    assert info.subject_counts == {"v1.alarm.fire": 1, "v1.thing.press_1.temperature": 1}


async def test_starting_again_with_the_same_configuration_reuses_the_recording(
    connection: NatsBrokerConnection, name: str
) -> None:
    rec = await Recording.start(name, "v1.thing.>", max_age=timedelta(days=1), connection=connection)
    await publish(connection, things(5))
    again = await Recording.start(name, "v1.thing.>", max_age="1d", connection=connection)
    assert again == rec
    assert (await again.info()).messages == 5  # nothing was lost or made anew


async def test_starting_with_another_configuration_is_refused_and_changes_nothing(
    connection: NatsBrokerConnection, name: str
) -> None:
    await Recording.start(name, "v1.thing.>", max_msgs=100, connection=connection)
    with pytest.raises(RecordingExistsError, match=r"max_msgs 100 \(asked for 50\)") as caught:
        await Recording.start(name, "v1.thing.>", max_msgs=50, connection=connection)
    assert "Recording.open" in str(caught.value)
    assert (await (await Recording.open(name, connection=connection)).info()).max_msgs == 100


async def test_the_recording_goes_on_when_the_connection_that_started_it_is_gone(
    js_server: NatsServer, connection: NatsBrokerConnection, name: str
) -> None:
    """The stream records in the broker: the 'kernel' that started it may stop."""
    kernel = await NatsBrokerConnection.connect(servers=js_server.url)
    await Recording.start(name, "v1.thing.>", connection=kernel)
    await kernel.close()
    await publish(connection, things(10))
    info = await (await Recording.open(name, connection=connection)).info()
    assert info.messages == 10
    assert info.recording


async def test_list_shows_every_stream_also_those_made_without_fastiot(
    connection: NatsBrokerConnection, name: str
) -> None:
    await Recording.start(name, "v1.thing.>", connection=connection)
    js = connection.client.jetstream()
    await js.add_stream(name="ORDERS", subjects=["orders.>"])
    await js.create_key_value(bucket="settings")
    names = [rec.name for rec in await Recording.list(connection=connection)]
    assert names == sorted([name, "ORDERS", "KV_settings"])
    orders = await Recording.open("ORDERS", connection=connection)
    assert orders.subjects == ["orders.>"]


async def test_open_of_a_missing_recording_says_how_to_find_one(connection: NatsBrokerConnection) -> None:
    with pytest.raises(RecordingNotFoundError, match=r"Recording\.list\(\)") as caught:
        await Recording.open("nothing_here", connection=connection)
    assert not isinstance(caught.value, RecordingDeletedError)
    assert caught.value.name == "nothing_here"


async def test_info_counts_bytes_times_and_subjects(connection: NatsBrokerConnection, name: str) -> None:
    rec = await Recording.start(name, "v1.thing.>", connection=connection)
    empty = await rec.info()
    assert (empty.messages, empty.first_time, empty.last_time, empty.subject_counts) == (0, None, None, {})
    sequences = await publish(connection, things(30, machines=("a", "b", "c")))
    info = await rec.info()
    assert info.messages == 30
    assert info.bytes > 30 * 10
    assert (info.first_seq, info.last_seq) == (min(sequences), max(sequences))
    assert info.subject_counts == {f"v1.thing.{m}.temperature": 10 for m in "abc"}
    assert info.first_time is not None and info.last_time is not None
    assert info.first_time <= info.last_time
    assert info.duration == info.last_time - info.first_time
    frame = await rec.to_dataframe()
    # received_at is the time the stream stored the message (the server's time, microseconds in info()).
    assert frame["received_at"].iloc[0].floor("us") == info.first_time
    assert frame["received_at"].iloc[-1].floor("us") == info.last_time
    assert (info.storage, info.replicas, info.max_age) == ("file", 1, None)


async def test_subject_range_gives_one_subject_count_and_times(
    connection: NatsBrokerConnection, name: str
) -> None:
    rec = await recorded(connection, name, 9, machines=("a", "b", "c"))
    a = await rec.subject_range("v1.thing.a.temperature")
    assert a.messages == 3
    assert a.first_time is not None and a.last_time is not None and a.first_time < a.last_time
    none = await rec.subject_range("v1.thing.zzz.temperature")
    assert (none.messages, none.first_time, none.last_time) == (0, None, None)


async def test_stop_keeps_what_was_recorded_and_records_nothing_more(
    connection: NatsBrokerConnection, name: str
) -> None:
    rec = await recorded(connection, name, 5)
    await rec.stop()
    await rec.stop()  # stopping a stopped recording does nothing
    await connection.publish_raw("v1.thing.press_1.temperature", b"\x01")
    await connection.flush()
    info = await rec.info()
    assert (info.messages, info.recording) == (5, False)
    assert len(await rec.to_dataframe()) == 5
    with pytest.raises(RecordingExistsError, match="was stopped"):
        await Recording.start(name, "v1.thing.>", connection=connection)


async def test_delete_removes_the_stream_and_later_calls_say_so(
    connection: NatsBrokerConnection, name: str
) -> None:
    rec = await recorded(connection, name, 3)
    await rec.delete()
    await rec.delete()  # deleting twice does nothing
    assert name not in [r.name for r in await Recording.list(connection=connection)]
    for call in (rec.info(), rec.to_dataframe(), rec.stop(), rec.subject_range("x")):
        with pytest.raises(RecordingDeletedError, match="deleted"):
            await call


async def test_without_a_connection_a_script_uses_the_fastiot_nats_settings_and_leaves_nothing_open(
    use_js_server: str, name: str, opened_connections: list[tuple[NatsBrokerConnection, str]]
) -> None:
    opened = opened_connections
    rec = await Recording.start(name, "v1.script.>")
    try:
        assert rec.connection is None
        assert name in [r.name for r in await Recording.list()]
        assert (await rec.info()).messages == 0
    finally:
        await rec.delete()
    assert opened and all(url == use_js_server for _, url in opened)
    assert all(c.state == "closed" for c, _ in opened), "a script's calls must not leave a connection open"


async def test_without_a_connection_a_notebook_uses_the_kernel_wide_connection(
    use_js_server: str,
    name: str,
    monkeypatch: pytest.MonkeyPatch,
    opened_connections: list[tuple[NatsBrokerConnection, str]],
) -> None:
    monkeypatch.setattr(workbench, "in_notebook", lambda: True)
    opened = opened_connections
    try:
        rec = await Recording.start(name, "v1.kernel.>")
        assert (await rec.info()).name == name
        await rec.delete()
        # Every call used the kernel's one connection and left it open for the next cells.
        assert len(opened) == 1
        kernel_connection, url = opened[0]
        assert kernel_connection.state == "connected"
        assert url == use_js_server
        assert await workbench.connection() is kernel_connection
    finally:
        await workbench.shutdown()
