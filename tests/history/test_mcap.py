"""MCAP out and in: a recording as MCAP, checked with mcap's own reader and jsonschema; other tools' files."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor_pb2 import FieldDescriptorProto
from google.protobuf.message import Message
from mcap.reader import make_reader
from mcap_protobuf.writer import Writer as ProtobufWriter
from nats.aio.msg import Msg

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.serialization import serialize_to_bin
from fastiot.exceptions import InvalidRecordingError
from fastiot.history import Recording, read_mcap, replay_mcap
from fastiot.msg.thing import Thing
from fastiot.nats_server import NatsServer
from tests.history.conftest import WAIT, publish
from tests.waits import wait_until


async def _mixed_recording(conn: NatsBrokerConnection, name: str) -> tuple[Recording, list[Thing]]:
    rec = await Recording.start(name, ["v1.thing.>", "v1.raw.>"], connection=conn)
    stamps = [datetime(2026, 1, 2, 3, 4, i, tzinfo=timezone.utc) for i in range(6)]
    things = [
        Thing(machine=f"press_{i % 2}", name="temperature", value=20.0 + i, unit="degC", timestamp=stamps[i])
        for i in range(6)
    ]
    js = conn.client.jetstream()
    for i, thing in enumerate(things):
        await js.publish(f"v1.thing.press_{i % 2}.temperature", serialize_to_bin(Thing, thing), timeout=WAIT)
        if i == 2:
            await publish(conn, [("v1.raw.dict", {"speed": 3, "ok": True})])
            await publish(conn, [("v1.raw.text", b"21.5 degC"), ("v1.raw.bytes", b"\x00\xc1\xff")], raw=True)
    return rec, things


async def test_a_recording_as_mcap_reads_back_with_mcaps_reader_and_validates(
    connection: NatsBrokerConnection, name: str, tmp_path: Path
) -> None:
    rec, things = await _mixed_recording(connection, name)
    full = await rec.to_dataframe()
    path = await rec.to_mcap(tmp_path / "out" / "plant.mcap")

    with path.open("rb") as file:
        reader = make_reader(file)
        summary = reader.get_summary()
        assert summary is not None
        topics = {channel.topic: channel for channel in summary.channels.values()}
        assert sorted(topics) == sorted(full["subject"].unique())
        assert topics["v1.raw.dict"].message_encoding == "msgpack"
        assert topics["v1.raw.text"].message_encoding == "text"
        assert topics["v1.raw.bytes"].message_encoding == "bytes"
        thing_channel = topics["v1.thing.press_0.temperature"]
        assert thing_channel.message_encoding == "json"
        schema = summary.schemas[thing_channel.schema_id]
        assert schema.name == "Thing" and schema.encoding == "jsonschema"
        messages = list(reader.iter_messages(log_time_order=False))
    assert [channel.topic for _, channel, _ in messages] == full["subject"].tolist()
    assert [m.log_time for _, _, m in messages] == full["received_at"].astype("int64").tolist()
    assert [m.sequence for _, _, m in messages] == full["sequence"].tolist()
    typed = [(s, m) for s, c, m in messages if c.message_encoding == "json"]
    assert len(typed) == len(things)
    for (schema, message), thing in zip(typed, things, strict=True):
        body = json.loads(message.data)
        jsonschema.validate(body, json.loads(schema.data))
        assert body["value"] == thing.value
        assert message.publish_time == int(thing.timestamp.timestamp()) * 10**9  # the model's timestamp


async def test_read_mcap_of_our_file_is_like_to_dataframe(
    connection: NatsBrokerConnection, name: str, tmp_path: Path
) -> None:
    rec, _ = await _mixed_recording(connection, name)
    full = await rec.to_dataframe()
    path = await rec.to_mcap(tmp_path / "plant.mcap")
    back = read_mcap(path)
    columns = ["received_at", "subject", "sequence", "machine", "value", "speed"]
    pd.testing.assert_frame_equal(back[columns], full[columns])
    only = read_mcap(path, subjects="v1.raw.>")
    assert sorted(only["subject"]) == ["v1.raw.bytes", "v1.raw.dict", "v1.raw.text"]
    with pytest.raises(InvalidRecordingError, match="no MCAP file"):
        read_mcap(tmp_path / "missing.mcap")
    (tmp_path / "notes.mcap").write_text("not an MCAP file")
    with pytest.raises(InvalidRecordingError, match="not a readable MCAP file"):
        read_mcap(tmp_path / "notes.mcap")
    with pytest.raises(InvalidRecordingError, match="not a readable MCAP file"):
        await replay_mcap(tmp_path / "notes.mcap", connection=connection)


def _reading_class() -> type[Message]:
    """A protobuf message type as a robot's code would have it: ``Reading {string sensor; double value}``."""
    proto = descriptor_pb2.FileDescriptorProto(name="robot_reading.proto", package="robot", syntax="proto3")
    message = proto.message_type.add(name="Reading")
    message.field.add(name="sensor", number=1, type=FieldDescriptorProto.TYPE_STRING, label=1)
    message.field.add(name="value", number=2, type=FieldDescriptorProto.TYPE_DOUBLE, label=1)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("robot.Reading"))


def _protobuf_file(path: Path) -> tuple[type[Message], list[Message]]:
    """An MCAP file as another tool writes it: mcap's protobuf writer, one channel of Readings."""
    reading = _reading_class()
    sent = [reading(sensor=f"lidar_{i}", value=0.5 * i) for i in range(5)]
    with path.open("wb") as file:
        writer = ProtobufWriter(file)
        for i, message in enumerate(sent):
            log_time = 1_700_000_000_000_000_000 + i * 10_000_000
            writer.write_message("robot.reading", message, log_time=log_time, publish_time=log_time)
        writer.finish()
    return reading, sent


async def test_a_protobuf_mcap_from_another_tool_is_read_and_replayed(
    broker: NatsBrokerConnection, prefix: str, tmp_path: Path
) -> None:
    path = tmp_path / "robot.mcap"
    reading, sent = _protobuf_file(path)
    frame = read_mcap(path)
    assert frame["subject"].tolist() == ["robot.reading"] * 5
    assert frame["sensor"].tolist() == [m.sensor for m in sent]
    assert frame["value"].tolist()[1:] == [m.value for m in sent][1:]  # proto3 leaves out a 0.0
    assert frame["received_at"].iloc[1] - frame["received_at"].iloc[0] == pd.Timedelta(milliseconds=10)

    received: list[bytes] = []
    subscription = await broker.client.subscribe(f"{prefix}.robot.reading", cb=_appender(received))
    replay = await replay_mcap(path, speed=None, subject_prefix=prefix, connection=broker)
    await replay.wait(timeout=WAIT)
    await wait_until(lambda: len(received) == 5, WAIT, "the replayed protobuf messages")
    await subscription.unsubscribe()
    assert [reading.FromString(data) for data in received] == sent
    assert replay.published == replay.total == 5


def _appender(received: list[bytes]) -> Callable[[Msg], Awaitable[None]]:
    async def append(msg: Msg) -> None:
        received.append(msg.data)

    return append


async def test_our_mcap_replays_typed_messages_as_msgpack_again(
    connection: NatsBrokerConnection, name: str, tmp_path: Path, prefix: str
) -> None:
    rec, things = await _mixed_recording(connection, name)
    path = await rec.to_mcap(tmp_path / "plant.mcap", subjects="v1.thing.>")
    received: list[bytes] = []
    subscription = await connection.client.subscribe(f"{prefix}.v1.thing.>", cb=_appender(received))
    replay = await replay_mcap(path, speed=50.0, subject_prefix=prefix, connection=connection)
    await replay.wait(timeout=WAIT)
    await wait_until(lambda: len(received) == len(things), WAIT, "the replayed things")
    await subscription.unsubscribe()
    assert [Thing.model_validate(_unpack(data)) for data in received] == things


def _unpack(data: bytes) -> object:
    from fastiot.core.serialization import unpackb

    return unpackb(data)


async def test_export_on_the_command_line_writes_mcap(
    js_server: NatsServer, connection: NatsBrokerConnection, name: str, tmp_path: Path
) -> None:
    await _mixed_recording(connection, name)
    target = tmp_path / "cli.mcap"
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "fastiot.cli", "export", name, "--mcap", str(target), "--nats", js_server.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert str(target) in done.stdout
    assert len(read_mcap(target)) == 9
    neither = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "fastiot.cli", "export", name, "--nats", js_server.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert neither.returncode == 2 and "--mcap FILE" in neither.stderr
