"""Bad input gets a clear error and loses nothing: no JetStream, overlaps, bad names, bad settings."""

from __future__ import annotations

from typing import Any

import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import (
    HistoryServerError,
    InvalidRecordingError,
    JetStreamUnavailableError,
    SubjectsOverlapError,
)
from fastiot.history import Recording
from tests.history.conftest import publish, things


class NoServer:
    """Stands for a connection; any use of it fails the test (the error must come before the server)."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the server was asked ({name}) before the input was checked")


async def test_a_server_without_jetstream_says_how_to_enable_it(
    plain_connection: NatsBrokerConnection,
) -> None:
    calls = [
        lambda: Recording.start("plant", "v1.thing.>", connection=plain_connection),
        lambda: Recording.open("plant", connection=plain_connection),
        lambda: Recording.list(connection=plain_connection),
        lambda: Recording("plant", connection=plain_connection).info(),
        lambda: Recording("plant", connection=plain_connection).to_dataframe(),
    ]
    for call in calls:
        with pytest.raises(JetStreamUnavailableError) as caught:
            await call()
        text = str(caught.value)
        assert "has no JetStream" in text and plain_connection.connected_url in text
        assert "nats-server -js" in text and "jetstream {}" in text


async def test_subjects_overlapping_an_existing_stream_name_that_stream(
    connection: NatsBrokerConnection, name: str
) -> None:
    await connection.client.jetstream().add_stream(name="PLANT_ARCHIVE", subjects=["v1.thing.press_1.>"])
    await publish(connection, things(3, machines=("press_1",)))
    with pytest.raises(SubjectsOverlapError, match="'PLANT_ARCHIVE'") as caught:
        await Recording.start(name, ["v1.alarm.>", "v1.thing.*.temperature"], connection=connection)
    assert caught.value.stream == "PLANT_ARCHIVE"
    assert caught.value.subjects == ["v1.alarm.>", "v1.thing.*.temperature"]
    assert "Recording.open('PLANT_ARCHIVE')" in str(caught.value)
    # Nothing was made or lost.
    assert [r.name for r in await Recording.list(connection=connection)] == ["PLANT_ARCHIVE"]
    assert (await Recording.open("PLANT_ARCHIVE", connection=connection)).subjects == ["v1.thing.press_1.>"]
    assert (await (await Recording.open("PLANT_ARCHIVE", connection=connection)).info()).messages == 3


@pytest.mark.parametrize("bad", ["", "a.b", "a b", "plant*", "x>", "a/b", "tab\there", "x" * 256, None, 7])
async def test_an_invalid_stream_name_is_refused_before_any_call_to_the_server(bad: Any) -> None:
    server: Any = NoServer()
    with pytest.raises(InvalidRecordingError, match="name"):
        await Recording.start(bad, "v1.thing.>", connection=server)
    with pytest.raises(InvalidRecordingError, match="name"):
        await Recording.open(bad, connection=server)
    with pytest.raises(InvalidRecordingError, match="name"):
        Recording(bad)


async def test_the_name_error_suggests_a_valid_name() -> None:
    with pytest.raises(InvalidRecordingError, match="'plant_night_shift'"):
        Recording("plant.night shift")


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"subjects": "v1..thing"}, "not a NATS subject pattern"),
        ({"subjects": "v1.>.x"}, "not a NATS subject pattern"),
        ({"subjects": "v1.th*ng"}, "not a NATS subject pattern"),
        ({"subjects": []}, "at least one"),
        ({"subjects": 5}, "subjects must be"),
        ({"storage": "disk"}, "storage must be 'file' or 'memory'"),
        ({"replicas": 0}, "replicas must be"),
        ({"replicas": 6}, "replicas must be"),
        ({"max_age": "forever"}, "max_age.*not a duration"),
        ({"max_age": -5}, "max_age must be positive"),
        ({"max_bytes": 0}, "max_bytes must be a positive int"),
        ({"max_msgs": 1.5}, "max_msgs must be a positive int"),
    ],
)
async def test_bad_settings_are_refused_before_any_call_to_the_server(
    settings: dict[str, Any], match: str
) -> None:
    arguments: dict[str, Any] = {"subjects": "v1.thing.>", **settings}
    subjects = arguments.pop("subjects")
    server: Any = NoServer()
    with pytest.raises(InvalidRecordingError, match=match):
        await Recording.start("plant", subjects, connection=server, **arguments)


async def test_more_replicas_than_servers_gives_the_servers_reason(
    connection: NatsBrokerConnection, name: str
) -> None:
    with pytest.raises(HistoryServerError, match="replicas") as caught:
        await Recording.start(name, "v1.thing.>", replicas=3, connection=connection)
    assert caught.value.err_code is not None
    assert await Recording.list(connection=connection) == []
