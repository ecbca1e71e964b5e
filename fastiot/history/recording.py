"""Recording: subjects recorded into a JetStream stream, and everything one does with a recording.

The stream lives in the broker (replicated in a cluster), so a recording goes on when the kernel stops
and outlives it; any stream on the server can be opened as a recording, also one this project did not
create.

Example:
    >>> from datetime import timedelta
    >>> from fastiot.history import Recording
    >>> async def main():
    ...     rec = await Recording.start("plant", "v1.thing.>", max_age=timedelta(days=1))
    ...     info = await rec.info()
    ...     frame = await rec.to_dataframe(start=timedelta(minutes=1))
    ...     replay = await rec.replay(speed=10, subject_prefix="replay")
    ...     await replay.wait()
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import nats.errors
import nats.js.errors
from nats.js.api import StreamConfig, StreamInfo

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import (
    InvalidRecordingError,
    RecordingDeletedError,
    RecordingExistsError,
    RecordingNotFoundError,
    SubjectsOverlapError,
)
from fastiot.history._config import differences, stream_config, unlimited
from fastiot.history._connection import jetstream_error
from fastiot.history._frames import FrameBuilder
from fastiot.history._names import RecordingSubjects, check_stream_name, subject_patterns
from fastiot.history._reader import StreamReader
from fastiot.history.info import RecordingInfo, SubjectRange
from fastiot.history.ranges import Bound, resolve_range
from fastiot.history.rolling import (
    HISTORY_STREAM,
    covers_system_subjects,
    history_source,
    recorded_patterns,
    system_subjects_refused,
)
from fastiot.workbench import use_connection

if TYPE_CHECKING:
    import pandas as pd

    from fastiot.history.replay import Replay

__all__ = ["Recording"]

_ERR_OVERLAP = 10065
_ERR_NAME_IN_USE = 10058


class Recording:
    """A JetStream stream seen as a recording. Make one with :meth:`start`, :meth:`open` or :meth:`list`.

    Every method takes an optional ``connection``; without one it uses the recording's own (the one it
    was started or opened with), else the connection ``FASTIOT_NATS_*`` describes (in a notebook, the
    kernel-wide one).

    Args:
        name: The stream's name.
        subjects: The patterns it records, if known.
        connection: The connection its methods use when given none.

    Attributes:
        name: The stream's name.
        subjects: The patterns it recorded when this object was made.
        connection: The connection given to :meth:`start` / :meth:`open` / :meth:`list`, if any.
    """

    def __init__(
        self, name: str, *, subjects: list[str] | None = None, connection: NatsBrokerConnection | None = None
    ) -> None:
        self.name: str = check_stream_name(name)
        self.subjects: list[str] = list(subjects or [])
        self.connection: NatsBrokerConnection | None = connection

    def __repr__(self) -> str:
        return f"Recording({self.name!r}, subjects={self.subjects!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Recording) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    @asynccontextmanager
    async def _using(self, connection: NatsBrokerConnection | None) -> AsyncIterator[NatsBrokerConnection]:
        async with use_connection(connection or self.connection) as conn:
            yield conn

    def _not_found(self, deleted: bool = True) -> RecordingNotFoundError:
        if deleted:
            return RecordingDeletedError(
                f"recording {self.name!r} does not exist any more: it was deleted; "
                f"Recording.list() shows the recordings there are",
                name=self.name,
            )
        return RecordingNotFoundError(
            f"there is no recording (JetStream stream) named {self.name!r}; Recording.list() shows the "
            f"recordings there are, Recording.start({self.name!r}, SUBJECTS) makes one",
            name=self.name,
        )

    async def stream_info(self, conn: NatsBrokerConnection, subjects_filter: str | None = None) -> StreamInfo:
        """The recording's stream as JetStream describes it now (nats-py's ``StreamInfo``).

        Args:
            conn: The connection to ask on.
            subjects_filter: Also count the messages per subject matching this pattern (``state.subjects``).

        Raises:
            RecordingDeletedError: The recording does not exist (any more).
        """
        try:
            return await conn.client.jsm().stream_info(self.name, subjects_filter=subjects_filter)
        except nats.js.errors.NotFoundError:
            raise self._not_found() from None
        except (nats.js.errors.Error, nats.errors.Error) as e:
            raise jetstream_error(e, conn, f"reading recording {self.name!r}") from None

    # -- making, finding ---------------------------------------------------------------------------------

    @classmethod
    async def start(
        cls,
        name: str,
        subjects: RecordingSubjects,
        *,
        connection: NatsBrokerConnection | None = None,
        max_age: timedelta | float | str | None = None,
        max_bytes: int | None = None,
        max_msgs: int | None = None,
        storage: str = "file",
        replicas: int = 1,
    ) -> Recording:
        """Record ``subjects`` into the JetStream stream ``name`` (made now, or reused if it exists alike).

        The stream records in the broker, so the recording goes on when the kernel or script stops.
        On a broker with the rolling history (:mod:`fastiot.history.rolling`; the one the workbench
        starts), subjects the history holds are recorded from it, from now on, so ``">"`` records
        everything but NATS' own subjects. Elsewhere a pattern that covers NATS' own subjects
        (``">"``, ``"*.>"``, ``"$KV.>"``) is refused: a stream on them would keep every key-value bucket
        and other stream from being made.

        Args:
            name: The stream's name (letters, digits, ``-`` and ``_``).
            subjects: A pattern (``"v1.thing.>"``), a :class:`Subject`, or a list of them.
            connection: The broker connection (see the class docs).
            max_age: Drop messages older than this (a timedelta, seconds, or ``"1d"``); None keeps them.
            max_bytes: Drop the oldest messages beyond this size of the stream.
            max_msgs: Drop the oldest messages beyond this many.
            storage: ``"file"`` (survives a restart of the server) or ``"memory"``.
            replicas: Copies in a cluster (1 to 5; at most the number of servers).

        Raises:
            InvalidRecordingError: A bad name, subject or setting (before anything reaches the server), or
                ``">"`` on a broker without the rolling history.
            SubjectsOverlapError: Another stream records these subjects already (its name is in the error).
            RecordingExistsError: ``name`` exists with another configuration, or was stopped.
            JetStreamUnavailableError: The server has no JetStream (the message says how to enable it).
            HistoryServerError: The server refused for another reason (e.g. more replicas than servers).

        Example:
            >>> rec = await Recording.start("plant", Thing.get_subject(">"), max_age="1d")  # doctest: +SKIP
        """
        name = check_stream_name(name)
        patterns = subject_patterns(subjects)
        config = stream_config(name, patterns, max_age, max_bytes, max_msgs, storage, replicas)
        async with use_connection(connection) as conn:
            if any(covers_system_subjects(p) for p in patterns):
                if not await cls._history_exists(conn):
                    raise system_subjects_refused(patterns)
                config = history_source(config, patterns)
            try:
                await cls._add(conn, config)
            except SubjectsOverlapError as e:
                if e.stream != HISTORY_STREAM:
                    raise
                await cls._add(conn, history_source(config, patterns))  # the history has them: copy
        return cls(name, subjects=patterns, connection=connection)

    @classmethod
    async def _add(cls, conn: NatsBrokerConnection, config: StreamConfig) -> None:
        assert config.name is not None
        patterns = recorded_patterns(config)
        try:
            await conn.client.jsm().add_stream(config)
        except nats.js.errors.APIError as e:
            if e.err_code == _ERR_NAME_IN_USE:
                await cls._check_reusable(conn, config)
            elif e.err_code == _ERR_OVERLAP:
                raise await cls._overlap_error(conn, config.name, patterns) from None
            else:
                raise jetstream_error(e, conn, f"starting recording {config.name!r}") from None
        except (nats.js.errors.Error, nats.errors.Error) as e:
            raise jetstream_error(e, conn, f"starting recording {config.name!r}") from None

    @staticmethod
    async def _history_exists(conn: NatsBrokerConnection) -> bool:
        try:
            await conn.client.jsm().stream_info(HISTORY_STREAM)
        except nats.js.errors.NotFoundError:
            return False
        except (nats.js.errors.Error, nats.errors.Error) as e:
            raise jetstream_error(e, conn, "looking for the rolling history") from None
        return True

    @staticmethod
    async def _check_reusable(conn: NatsBrokerConnection, config: StreamConfig) -> None:
        assert config.name is not None
        try:
            have = (await conn.client.jsm().stream_info(config.name)).config
        except (nats.js.errors.Error, nats.errors.Error) as e:
            raise jetstream_error(e, conn, f"starting recording {config.name!r}") from None
        if have.sealed:
            raise RecordingExistsError(
                f"recording {config.name!r} was stopped and keeps what it recorded, read-only; start a new "
                f"recording under another name, or delete this one first (await rec.delete())"
            )
        changed = differences(config, have)
        if changed:
            raise RecordingExistsError(
                f"recording {config.name!r} exists with another configuration: {'; '.join(changed)}. "
                f"Open it as it is with Recording.open({config.name!r}), or pick another name"
            )

    @staticmethod
    async def _overlap_error(
        conn: NatsBrokerConnection, name: str, patterns: list[str]
    ) -> SubjectsOverlapError:
        jsm = conn.client.jsm()
        for pattern in patterns:
            try:
                other = await jsm.find_stream_name_by_subject(pattern)
            except (nats.js.errors.Error, nats.errors.Error):
                continue
            if other != name:
                return SubjectsOverlapError(
                    f"cannot record {', '.join(patterns)} as {name!r}: stream {other!r} records {pattern!r} "
                    f"(or subjects overlapping it) already, and NATS stores a subject in one stream only. "
                    f"Use Recording.open({other!r}), record other subjects, or delete {other!r} first",
                    stream=other,
                    subjects=patterns,
                )
        return SubjectsOverlapError(
            f"cannot record {', '.join(patterns)} as {name!r}: the subjects overlap an existing stream "
            f"(or each other); Recording.list() shows the streams and their subjects",
            stream="",
            subjects=patterns,
        )

    @classmethod
    async def open(cls, name: str, *, connection: NatsBrokerConnection | None = None) -> Recording:
        """The recording (any JetStream stream) named ``name``.

        Raises:
            InvalidRecordingError: ``name`` cannot be a stream name (before anything reaches the server).
            RecordingNotFoundError: There is no such stream.

        Example:
            >>> rec = await Recording.open("plant")  # doctest: +SKIP
        """
        recording = cls(name, connection=connection)
        async with use_connection(connection) as conn:
            try:
                info = await conn.client.jsm().stream_info(recording.name)
            except nats.js.errors.NotFoundError:
                raise recording._not_found(deleted=False) from None
            except (nats.js.errors.Error, nats.errors.Error) as e:
                raise jetstream_error(e, conn, f"opening recording {name!r}") from None
        recording.subjects = list(info.config.subjects or [])
        return recording

    @classmethod
    async def list(cls, *, connection: NatsBrokerConnection | None = None) -> list[Recording]:
        """A recording for every stream on the server (also key-value buckets' and other projects'), by name.

        Example:
            >>> [rec.name for rec in await Recording.list()]  # doctest: +SKIP
            ['plant']
        """
        recordings: list[Recording] = []
        async with use_connection(connection) as conn:
            jsm = conn.client.jsm()
            try:
                while True:
                    page = await jsm.streams_info_iterator(offset=len(recordings))
                    found = [
                        cls(info.config.name, subjects=recorded_patterns(info.config), connection=connection)
                        for info in page
                        if info.config.name
                    ]
                    recordings.extend(found)
                    if not found or len(recordings) >= getattr(page, "total", 0):
                        break
            except (nats.js.errors.Error, nats.errors.Error) as e:
                raise jetstream_error(e, conn, "listing the recordings") from None
        # The rolling history first: it is where "what happened lately" is.
        return sorted(recordings, key=lambda r: (r.name != HISTORY_STREAM, r.name))

    # -- looking at it -----------------------------------------------------------------------------------

    async def info(self, *, connection: NatsBrokerConnection | None = None) -> RecordingInfo:
        """Messages, bytes, first and last time, per-subject counts and configuration.

        Raises:
            RecordingDeletedError: The recording was deleted.

        Example:
            >>> info = await rec.info()  # doctest: +SKIP
            >>> info.messages, info.subject_counts  # doctest: +SKIP
        """
        async with self._using(connection) as conn:
            stream = await self.stream_info(conn, subjects_filter=">")
            state, config, cluster = stream.state, stream.config, stream.cluster
            first_time = last_time = None
            if state.messages:
                first_time = await self._time_of(conn, state.first_seq)
                last_time = await self._time_of(conn, state.last_seq)
        self.subjects = recorded_patterns(config)
        return RecordingInfo(
            name=self.name,
            subjects=self.subjects,
            messages=state.messages,
            bytes=state.bytes,
            first_seq=state.first_seq if state.messages else 0,
            last_seq=state.last_seq,
            first_time=first_time,
            last_time=last_time,
            subject_counts=dict(sorted((state.subjects or {}).items())),
            recording=not config.sealed,
            max_age=timedelta(seconds=config.max_age) if config.max_age and config.max_age > 0 else None,
            max_bytes=unlimited(config.max_bytes),
            max_msgs=unlimited(config.max_msgs),
            storage=str(getattr(config.storage, "value", config.storage) or "file"),
            replicas=config.num_replicas or 1,
            created=stream.created,
            cluster_leader=cluster.leader if cluster and cluster.name else None,
            replicas_current=[p.name for p in (cluster.replicas or []) if p.current and p.name]
            if cluster
            else [],
        )

    async def _time_of(
        self, conn: NatsBrokerConnection, seq: int, subject: str | None = None
    ) -> datetime | None:
        jsm = conn.client.jsm()
        try:
            if subject is None:
                message = await jsm.get_msg(self.name, seq=seq)
            else:
                message = await jsm.get_msg(self.name, seq=seq, subject=subject, next=True)
        except nats.js.errors.NotFoundError:
            return None
        except (nats.js.errors.Error, nats.errors.Error) as e:
            raise jetstream_error(e, conn, f"reading recording {self.name!r}") from None
        return message.time.astimezone(timezone.utc) if message.time else None

    async def subject_range(
        self, subject: str, *, connection: NatsBrokerConnection | None = None
    ) -> SubjectRange:
        """How many messages ``subject`` has in the recording, and when its first and last were stored."""
        async with self._using(connection) as conn:
            counts = (await self.stream_info(conn, subjects_filter=subject)).state.subjects or {}
            first = last = None
            if counts.get(subject):
                first = await self._time_of(conn, 1, subject)
                try:
                    message = await conn.client.jsm().get_last_msg(self.name, subject)
                    last = message.time.astimezone(timezone.utc) if message.time else None
                except (nats.js.errors.Error, nats.errors.Error):
                    last = None
        return SubjectRange(subject, counts.get(subject, 0), first, last)

    # -- changing it -------------------------------------------------------------------------------------

    async def stop(self, *, connection: NatsBrokerConnection | None = None) -> None:
        """Stop adding messages; keep what was recorded (read-only: the stream is sealed).

        Raises:
            RecordingDeletedError: The recording was deleted.
        """
        async with self._using(connection) as conn:
            config = (await self.stream_info(conn)).config
            if config.sealed:
                return
            try:
                await conn.client.jsm().update_stream(config.evolve(sealed=True))
            except nats.js.errors.NotFoundError:
                raise self._not_found() from None
            except (nats.js.errors.Error, nats.errors.Error) as e:
                raise jetstream_error(e, conn, f"stopping recording {self.name!r}") from None

    async def delete(self, *, connection: NatsBrokerConnection | None = None) -> None:
        """Remove the stream and everything it recorded. Deleting a deleted recording does nothing."""
        async with self._using(connection) as conn:
            try:
                await conn.client.jsm().delete_stream(self.name)
            except nats.js.errors.NotFoundError:
                return
            except (nats.js.errors.Error, nats.errors.Error) as e:
                raise jetstream_error(e, conn, f"deleting recording {self.name!r}") from None

    # -- reading it --------------------------------------------------------------------------------------

    async def to_dataframe(
        self,
        start: Bound = None,
        end: Bound = None,
        subjects: RecordingSubjects | None = None,
        max_rows: int | None = None,
        *,
        connection: NatsBrokerConnection | None = None,
    ) -> pd.DataFrame:
        """The messages of a range as a DataFrame, decoded as :meth:`MessageCapture.to_dataframe` decodes.

        Columns: ``received_at`` (when the stream stored the message), ``subject``, ``sequence`` (the
        stream sequence), then the payload fields as a capture has them. An empty range gives an empty
        DataFrame with these columns.

        Args:
            start: The first message: a datetime, a timedelta back from now, or a stream sequence.
            end: The last message, likewise (inclusive). None: the newest when the call starts.
            subjects: Only these subjects (patterns, Subjects); all if None.
            max_rows: At most this many rows, the first ones of the range.
            connection: The broker connection (see the class docs).

        Raises:
            InvalidRangeError: ``start`` / ``end`` is of the wrong kind.
            RecordingDeletedError: The recording was deleted (also while it was read).

        Example:
            >>> last_5_min = await rec.to_dataframe(start=timedelta(minutes=5))  # doctest: +SKIP
        """
        range_ = resolve_range(start, end)
        filters = subject_patterns(subjects) if subjects is not None else []
        if max_rows is not None and (
            isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 0
        ):
            raise InvalidRecordingError(f"max_rows must be an int >= 0 or None, got {max_rows!r}")
        gc_was_enabled = gc.isenabled()
        gc.disable()  # millions of short-lived objects, none in cycles: collecting would only cost time
        try:
            async with self._using(connection) as conn:
                async with StreamReader(
                    conn, self.name, range_=range_, filters=filters, max_rows=max_rows
                ) as reader:
                    expected = reader.pending if max_rows is None else min(reader.pending, max_rows)
                    builder = FrameBuilder(expected)
                    async for batch in reader:
                        builder.add(batch, await reader.headers_of(batch) if batch.headers else None)
            return builder.to_dataframe()
        finally:
            if gc_was_enabled:
                gc.enable()

    async def to_parquet(
        self,
        directory: str | Path,
        start: Bound = None,
        end: Bound = None,
        *,
        subjects: RecordingSubjects | None = None,
        connection: NatsBrokerConnection | None = None,
    ) -> Path:
        """Write a range as a Parquet dataset partitioned by subject and hour (needs the ``parquet`` extra).

        See :func:`fastiot.history.parquet.write_parquet`.
        """
        from fastiot.history.parquet import write_parquet

        async with self._using(connection) as conn:
            return await write_parquet(
                conn,
                self.name,
                Path(directory),
                resolve_range(start, end),
                subject_patterns(subjects) if subjects is not None else [],
            )

    async def to_mcap(
        self,
        path: str | Path,
        start: Bound = None,
        end: Bound = None,
        *,
        subjects: RecordingSubjects | None = None,
        connection: NatsBrokerConnection | None = None,
    ) -> Path:
        """Write a range as an MCAP file (Foxglove, ROS 2 tools): one channel per subject.

        See :mod:`fastiot.history.mcap_io`: a model's messages as JSON with its JSON schema, others in
        their own encodings; log times from the stream, publish times from a model's ``timestamp``.

        Example:
            >>> await rec.to_mcap("plant.mcap", start=timedelta(hours=1))  # doctest: +SKIP
        """
        from fastiot.history.mcap_io import write_mcap

        async with self._using(connection) as conn:
            return await write_mcap(
                conn,
                self.name,
                Path(path),
                resolve_range(start, end),
                subject_patterns(subjects) if subjects is not None else [],
            )

    async def replay(
        self,
        *,
        speed: float | None = 1.0,
        start: Bound = None,
        end: Bound = None,
        subjects: RecordingSubjects | None = None,
        connection: NatsBrokerConnection | None = None,
        subject_prefix: str | None = None,
    ) -> Replay:
        """Publish the messages of a range again, with their original spacing scaled by ``speed``.

        See :class:`fastiot.history.replay.Replay`; the recording is read with the recording's own
        connection, ``connection`` is where the messages go.
        """
        from fastiot.history.replay import start_replay

        return await start_replay(
            self,
            speed=speed,
            start=start,
            end=end,
            subjects=subjects,
            target=connection,
            subject_prefix=subject_prefix,
        )
