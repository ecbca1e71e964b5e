"""MCAP in and out: a recording written as an MCAP file (Foxglove, ROS 2), MCAP files read and replayed.

Written with the ``mcap`` package: one channel per subject; a message of a FastIoT model goes out as
JSON with the model's JSON schema (``jsonschema`` encoding), so Foxglove plots its fields; msgpack, JSON,
text and bytes payloads keep their own message encodings (``msgpack``, ``json``, ``text``, ``bytes``).
Log times are the stream's, publish times the model's ``timestamp`` where it has one.

Read: any tool's file; JSON and protobuf messages are decoded (``mcap-protobuf-support``), our own
encodings as in a recording, others are handed to the one payload decoder as the bytes they are.

Example:
    >>> from fastiot.history import Recording, read_mcap, replay_mcap
    >>> async def main():
    ...     rec = await Recording.open("plant")
    ...     await rec.to_mcap("plant.mcap")
    ...     frame = read_mcap("plant.mcap")
    ...     await (await replay_mcap("plant.mcap", speed=10, subject_prefix="replay")).wait()
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import numpy as np

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.serialization import pack, serialize_to_bin, unpackb
from fastiot.core.subject_helper import subject_matches
from fastiot.exceptions import HistoryReadError, InvalidRecordingError
from fastiot.history._consumers import RawBatch
from fastiot.history._frames import FrameBuilder
from fastiot.history._names import RecordingSubjects, check_prefix, subject_patterns
from fastiot.history._reader import StreamReader
from fastiot.history.ranges import Range, _ns
from fastiot.payloads import decode, model_for_subject, model_schema, registered_decoders
from fastiot.workbench import Stoppable, use_connection

if TYPE_CHECKING:
    import pandas as pd

    from fastiot.history.replay import Replay

__all__ = ["WIRE_METADATA", "read_mcap", "replay_mcap", "write_mcap"]

PROFILE = ""  # no ROS profile: plain MCAP as Foxglove reads it
WIRE_METADATA = "fastiot.wire"
"""A channel's metadata key: how its messages went over NATS when that differs from the file (msgpack)."""
_BATCH_ROWS = 2_048
_SEQ = 0xFFFFFFFF  # MCAP's sequence is 32 bits; a stream's may go beyond
_MATCH_ALL = ">"


class _Channels:
    """The schemas and channels of a file being written, registered as subjects and models first appear."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer
        self.schemas: dict[type, int] = {}
        self.channels: dict[tuple[str, str, int], int] = {}

    def schema(self, model: type, subject: str) -> int:
        schema_id = self.schemas.get(model)
        if schema_id is None:
            schema = model_schema(subject)
            data = json.dumps(schema).encode() if schema is not None else b""
            encoding = "jsonschema" if schema is not None else ""
            schema_id = self.schemas[model] = self.writer.register_schema(model.__name__, encoding, data)
        return schema_id

    def channel(self, subject: str, encoding: str, schema_id: int = 0, wire: str | None = None) -> int:
        key = (subject, encoding, schema_id)
        channel_id = self.channels.get(key)
        if channel_id is None:
            metadata = {WIRE_METADATA: wire} if wire else {}
            channel_id = self.writer.register_channel(subject, encoding, schema_id, metadata)
            self.channels[key] = channel_id
        return channel_id


def _publish_ns(value: Any, log_ns: int) -> int:
    stamp = getattr(value, "timestamp", None)
    return _ns(stamp) if isinstance(stamp, datetime) else log_ns


class _Plan:
    """Per subject, once: is every message decoded, or only checked to be msgpack?

    Decoded when a model or a registered decoder reads the subject; else a msgpack payload is written
    as it is.
    """

    def __init__(self) -> None:
        self._decoded: dict[str, bool] = {}
        self._decoders = registered_decoders()

    def decodes(self, subject: str) -> bool:
        decoded = self._decoded.get(subject)
        if decoded is None:
            decoded = model_for_subject(subject) is not None or any(
                subject_matches(subject, p) for patterns in self._decoders.values() for p in patterns
            )
            self._decoded[subject] = decoded
        return decoded


def _is_msgpack(data: bytes) -> bool:
    try:
        unpackb(data)
    except Exception:
        return False
    return True


def _write_batch(
    channels: _Channels, plan: _Plan, batch: RawBatch, headers: dict[int, dict[str, str]]
) -> None:
    writer = channels.writer
    times, sequences = batch.times.tolist(), batch.sequences.tolist()
    for i, (subject, data) in enumerate(zip(batch.subjects, batch.payloads, strict=True)):
        log_ns = times[i]
        row_headers = headers.get(i)
        # The common case without decoding: msgpack on a subject no model or decoder reads, no headers
        # (a Content-Type could say otherwise), more than a byte (a digit sent as text reads as a number).
        if row_headers is None and len(data) > 1 and not plan.decodes(subject) and _is_msgpack(data):
            writer.add_message(
                channels.channel(subject, "msgpack"), log_ns, data, log_ns, sequences[i] & _SEQ
            )
            continue
        decoded = decode(data, subject=subject, headers=row_headers)
        if decoded.kind == "model":
            model = type(decoded.value)
            channel = channels.channel(subject, "json", channels.schema(model, subject), wire="msgpack")
            body: bytes = decoded.value.model_dump_json().encode()
            publish_ns = _publish_ns(decoded.value, log_ns)
        else:
            channel = channels.channel(subject, decoded.kind)
            body, publish_ns = data, log_ns
        writer.add_message(channel, log_ns, body, publish_ns, sequences[i] & _SEQ)


async def write_mcap(
    connection: NatsBrokerConnection, stream: str, path: Path, range_: Range, filters: list[str]
) -> Path:
    """Write the messages of ``stream`` in ``range_`` to the MCAP file ``path`` (see the module docs).

    Returns:
        ``path``.

    Raises:
        RecordingDeletedError: The recording was deleted (also during the export).
    """
    from mcap.writer import Writer

    await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    with path.open("wb") as file:
        writer = Writer(file)
        writer.start(profile=PROFILE, library="fastiot-workbench")
        channels = _Channels(writer)
        plan = _Plan()
        async with StreamReader(connection, stream, range_=range_, filters=filters) as reader:
            async for batch in reader:
                headers = await reader.headers_of(batch) if batch.headers else {}
                # In a thread: the kernel stays responsive; the server is held back meanwhile.
                await asyncio.to_thread(_write_batch, channels, plan, batch, headers)
        await asyncio.to_thread(writer.finish)
    return path


# -- reading ------------------------------------------------------------------------------------------------


def _not_mcap(file: Path, error: Exception) -> InvalidRecordingError:
    return InvalidRecordingError(
        f"{str(file)!r} is not a readable MCAP file ({type(error).__name__}: {error}); give a .mcap file "
        f"as Foxglove or the mcap tools write it"
    )


def _open(path: str | Path) -> Path:
    file = Path(path)
    if not file.is_file():
        raise InvalidRecordingError(f"there is no MCAP file {str(file)!r}; give the path of a .mcap file")
    return file


def _protobuf_to_msgpack(message: Any) -> bytes:
    from google.protobuf.json_format import MessageToDict

    return pack(MessageToDict(message, preserving_proto_field_name=True))


class _Decoders:
    """Per channel: how a message's bytes become what the payload decoder reads (None: as they are)."""

    def __init__(self) -> None:
        self._by_channel: dict[int, Any] = {}
        self._protobuf: Any = None

    def for_channel(self, schema: Any, channel: Any) -> Any:
        if channel.id in self._by_channel:
            return self._by_channel[channel.id]
        convert = None
        if channel.message_encoding == "protobuf" and schema is not None:
            if self._protobuf is None:
                from mcap_protobuf.decoder import DecoderFactory

                self._protobuf = DecoderFactory()
            decoder = self._protobuf.decoder_for(channel.message_encoding, schema)
            if decoder is not None:

                def convert(data: bytes, decoder: Any = decoder) -> bytes:
                    return _protobuf_to_msgpack(decoder(data))

        self._by_channel[channel.id] = convert
        return convert


def _iter_batches(file: IO[bytes], patterns: list[str] | None, for_replay: bool) -> Iterator[RawBatch]:
    from mcap.reader import make_reader

    reader = make_reader(file)
    decoders = _Decoders()
    subjects: list[str] = []
    times: list[int] = []
    sequences: list[int] = []
    payloads: list[bytes] = []
    matches: dict[str, bool] = {}
    for schema, channel, message in reader.iter_messages(log_time_order=True):
        topic = channel.topic
        if patterns is not None:
            keep = matches.get(topic)
            if keep is None:
                keep = matches[topic] = any(subject_matches(topic, p) for p in patterns)
            if not keep:
                continue
        data = message.data
        if for_replay:
            data = _wire_bytes(channel, topic, data)
        else:
            convert = decoders.for_channel(schema, channel)
            if convert is not None:
                data = convert(data)
        subjects.append(topic)
        times.append(message.log_time)
        sequences.append(message.sequence)
        payloads.append(data)
        if len(payloads) >= _BATCH_ROWS:
            yield _batch(subjects, sequences, times, payloads)
            subjects, times, sequences, payloads = [], [], [], []
    if payloads:
        yield _batch(subjects, sequences, times, payloads)


def _wire_bytes(channel: Any, topic: str, data: bytes) -> bytes:
    """What went over NATS: a model's JSON back to msgpack, everything else as it is in the file."""
    if channel.metadata.get(WIRE_METADATA) != "msgpack" or channel.message_encoding != "json":
        return data
    value = json.loads(data)
    model = model_for_subject(topic)
    if model is not None:
        return serialize_to_bin(model, model.model_validate(value))
    return pack(value)


def _batch(subjects: list[str], sequences: list[int], times: list[int], payloads: list[bytes]) -> RawBatch:
    return RawBatch(
        subjects=subjects,
        sequences=np.asarray(sequences, dtype=np.int64),
        times=np.asarray(times, dtype=np.int64),
        payloads=payloads,
    )


def read_mcap(path: str | Path, subjects: RecordingSubjects | None = None) -> pd.DataFrame:
    """An MCAP file's messages as a DataFrame like :meth:`Recording.to_dataframe`'s.

    ``received_at`` is each message's log time, ``subject`` its channel's topic, ``sequence`` its
    sequence; the payload columns are decoded as a recording's. Protobuf messages (with their schema in
    the file) are decoded to their fields; JSON, msgpack and text as everywhere; other encodings (CDR,
    ROS 1) are handed to the payload decoder as the bytes they are.

    Args:
        path: The ``.mcap`` file (written by any tool).
        subjects: Only topics matching these NATS patterns; all if None.

    Raises:
        InvalidRecordingError: There is no such file, it is no MCAP file, or a pattern is malformed.

    Example:
        >>> frame = read_mcap("plant.mcap", subjects="v1.thing.oven.>")  # doctest: +SKIP
    """
    from mcap.exceptions import McapError

    file = _open(path)
    patterns = subject_patterns(subjects) if subjects is not None else None
    with file.open("rb") as stream:
        try:
            batches = list(_iter_batches(stream, patterns, for_replay=False))
        except McapError as e:
            raise _not_mcap(file, e) from None
    builder = FrameBuilder(sum(map(len, batches)))
    for batch in batches:
        builder.add(batch)
    return builder.to_dataframe()


class _FileSource:
    """A replay's source reading an MCAP file: what :class:`Replay` takes from a stream reader."""

    deleted = False

    def __init__(self, path: Path, patterns: list[str] | None) -> None:
        self._file = path.open("rb")
        self._batches = _iter_batches(self._file, patterns, for_replay=True)

    async def prefetch(self, rows: int, timeout: float) -> None:
        return None

    def deleted_error(self) -> Exception:
        return HistoryReadError("the MCAP file went away while it was replayed")

    async def __aiter__(self) -> AsyncIterator[RawBatch]:
        while True:
            batch = await asyncio.to_thread(next, self._batches, None)
            if batch is None:
                return
            yield batch

    async def close(self) -> None:
        self._file.close()


def _count(path: Path, patterns: list[str] | None) -> int:
    from mcap.exceptions import McapError
    from mcap.reader import make_reader

    with path.open("rb") as file:
        try:
            summary = make_reader(file).get_summary()
        except McapError as e:
            raise _not_mcap(path, e) from None
    if summary is None or summary.statistics is None:
        return 0
    if patterns is None:
        return int(summary.statistics.message_count)

    counts = summary.statistics.channel_message_counts
    return sum(
        int(counts.get(channel_id, 0))
        for channel_id, channel in summary.channels.items()
        if any(subject_matches(channel.topic, p) for p in patterns)
    )


async def replay_mcap(
    path: str | Path,
    *,
    speed: float | None = 1.0,
    subject_prefix: str | None = None,
    subjects: RecordingSubjects | None = None,
    connection: NatsBrokerConnection | None = None,
) -> Replay:
    """Publish an MCAP file's messages into the broker, with their original spacing scaled by ``speed``.

    Like :meth:`Recording.replay`: a :class:`Replay` to pause, stop or wait for. Messages go out on
    their channel's topic (``subject_prefix.TOPIC`` with a prefix); a FastIoT model's message that was
    written as JSON goes out as msgpack again, as the model's services expect; everything else goes out
    as the bytes in the file (protobuf as protobuf).

    Args:
        path: The ``.mcap`` file.
        speed: 2.0 is twice as fast; None as fast as possible.
        subject_prefix: Put in front of every topic.
        subjects: Only topics matching these patterns.
        connection: Where to publish; the workbench's connection if None.

    Raises:
        InvalidRecordingError: No such file, a bad speed, prefix or pattern.

    Example:
        >>> replay = await replay_mcap("colleague.mcap", speed=10, subject_prefix="replay")  # doctest: +SKIP
        >>> await replay.wait()  # doctest: +SKIP
    """
    from fastiot.history.replay import Replay, check_speed, run_replay

    file = _open(path)
    checked = check_speed(speed)
    prefix = check_prefix(subject_prefix) if subject_prefix is not None else None
    patterns = subject_patterns(subjects) if subjects is not None else None
    replay = Replay(file.name, speed=checked, subject_prefix=prefix)
    replay.total = await asyncio.to_thread(_count, file, patterns)
    stack = AsyncExitStack()
    try:
        lease = await use_connection(connection, owner=cast("Stoppable", replay))
        stack.push_async_callback(lease.release)
        source = _FileSource(file, patterns)
        stack.push_async_callback(source.close)
    except BaseException:
        await stack.aclose()
        raise
    run_replay(replay, source, lease.connection, stack)
    return replay
