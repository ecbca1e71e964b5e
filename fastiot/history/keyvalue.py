"""Key-value buckets (JetStream KV): list buckets, keys, values decoded like payloads, history, live watch.

Everything goes through nats-py's KV API (``js.key_value(...)``, ``kv.get()``, ``kv.watch()``); values
are decoded as captures decode payloads.

Example:
    >>> from fastiot.history import Bucket
    >>> async def main():
    ...     bucket = await Bucket.open("settings")
    ...     for key in await bucket.keys():
    ...         entry = await bucket.get(key)
    ...         print(key, entry.value if entry else None)
    ...     watch = await bucket.watch().start()
    ...     watch.on_change(lambda entry: print(entry.key, entry.operation, entry.value))
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any

import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from fastiot._callbacks import CallbackList
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import BucketNotFoundError, HistoryReadError, InvalidRecordingError
from fastiot.history._connection import jetstream_error
from fastiot.history._frames import decode_value
from fastiot.workbench import ConnectionLease, use_connection

__all__ = ["CHECK_INTERVAL", "Bucket", "BucketInfo", "BucketWatch", "KeyEntry", "WatchState"]

_STREAM_PREFIX = "KV_"
_OPERATIONS = {None: "PUT", "PUT": "PUT", "DEL": "DEL", "PURGE": "PURGE"}
_READY_TIMEOUT = 10.0
CHECK_INTERVAL = 5.0  # seconds between two looks whether a watched bucket still exists


class _InitialValues:
    """Tells when a nats-py KV watcher has handed out everything its bucket held when it started.

    nats-py marks that point with a None update, but it can send that marker before the first entry: it asks
    the server for the consumer's pending count, and when the server has already pushed every message that
    the client has not yet handed to the watcher, pending and delivered are both 0 and the marker goes out
    at once (in CI a key's four revisions came back as none). So the end is the entry with ``delta`` 0
    (nothing pending after it, as the server counted when it sent it); a marker before any entry is believed
    only when the stream holds no message on the watched subjects.

    The report for nats-py, with a reproduction and a suggested fix, ready to file (to be filed; no internet
    where it was written): ``docs/upstream/nats-py-kv-watch-early-marker.md``.
    """

    def __init__(self, conn: NatsBrokerConnection, bucket: str, keys: str) -> None:
        self._conn, self._stream, self._subject = conn, f"{_STREAM_PREFIX}{bucket}", f"$KV.{bucket}.{keys}"
        self.seen = 0
        self.done = False

    async def update(self, update: Any) -> bool:
        """Take one update of the watcher (None: nats-py's marker); True once the initial values are in."""
        if self.done:
            return True
        if update is None:
            self.done = self.seen > 0 or not await self._holds_messages()
        else:
            self.seen += 1
            self.done = update.delta == 0
        return self.done

    async def _holds_messages(self) -> bool:
        try:
            info = await self._conn.client.jsm().stream_info(self._stream, subjects_filter=self._subject)
        except nats.js.errors.NotFoundError:
            return False
        return bool(info.state.subjects)


async def _initial_entries(
    conn: NatsBrokerConnection, kv: KeyValue, bucket: str, keys: str, **watch_options: Any
) -> builtins.list[KeyValue.Entry]:
    """Watch ``keys`` of ``kv`` until the values the bucket held at the start are in; those entries.

    The watch is nats-py's ``kv.watch(keys, **watch_options)``.
    """
    watcher = await kv.watch(keys, **watch_options)
    initial = _InitialValues(conn, bucket, keys)
    entries: builtins.list[KeyValue.Entry] = []
    try:
        while True:
            try:
                update = await watcher.updates(timeout=_READY_TIMEOUT)
            except nats.errors.TimeoutError:
                raise HistoryReadError(
                    f"bucket {bucket!r} did not deliver the entries of {keys!r} within "
                    f"{_READY_TIMEOUT:g} s ({len(entries)} arrived); the server may be overloaded, try again"
                ) from None
            if update is not None:
                entries.append(update)
            if await initial.update(update):
                return entries
    finally:
        with contextlib.suppress(Exception):
            await watcher.stop()


@dataclass(frozen=True)
class BucketInfo:
    """A bucket's size and settings.

    Attributes:
        name: The bucket's name.
        values: Entries it holds, all revisions and delete markers included.
        bytes: Their size in the store.
        history: Revisions kept per key.
        ttl: How long an entry is kept (None: for ever).
        storage: ``"file"`` or ``"memory"``.
        replicas: Copies in a cluster.
    """

    name: str
    values: int
    bytes: int
    history: int
    ttl: timedelta | None
    storage: str
    replicas: int


@dataclass(frozen=True)
class KeyEntry:
    """One revision of a key.

    Attributes:
        bucket, key: Where it is.
        revision: Its revision (the stream sequence; grows with every change of any key).
        created: When it was written (UTC); None from :meth:`Bucket.get` (nats-py's ``kv.get`` does not
            say), set in :meth:`Bucket.history` and in a watch.
        operation: ``"PUT"``, ``"DEL"`` (deleted) or ``"PURGE"`` (deleted with its history).
        raw: The stored bytes (empty for deletes).
        value: ``raw`` decoded like a payload (msgpack, else JSON), None if it does not decode.
        error: Why ``raw`` does not decode, else None.
    """

    bucket: str
    key: str
    revision: int
    created: datetime | None
    operation: str
    raw: bytes
    value: Any
    error: str | None

    @property
    def is_deleted(self) -> bool:
        """True for a delete or purge marker."""
        return self.operation != "PUT"

    @classmethod
    def from_nats(cls, entry: KeyValue.Entry) -> KeyEntry:
        """The entry as nats-py's ``kv`` returns it, with its value decoded."""
        raw = entry.value or b""
        operation = _OPERATIONS.get(entry.operation, str(entry.operation))
        value, error = decode_value(raw) if raw and operation == "PUT" else (None, None)
        created: Any = entry.created
        if isinstance(created, (int, float)):
            created = datetime.fromtimestamp(created / 1e9, timezone.utc)
        return cls(
            bucket=entry.bucket,
            key=entry.key,
            revision=int(entry.revision or 0),
            created=created,
            operation=operation,
            raw=raw,
            value=value,
            error=error,
        )


class Bucket:
    """A JetStream key-value bucket. Get one with :meth:`open` or :meth:`list`.

    Every method takes an optional ``connection`` (as :class:`~fastiot.history.Recording` does).

    Args:
        name: The bucket's name.
        connection: The connection its methods use when given none.
    """

    def __init__(self, name: str, *, connection: NatsBrokerConnection | None = None) -> None:
        if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_" for c in name):
            raise InvalidRecordingError(
                f"{name!r} is not a key-value bucket name; bucket names are letters, digits, '-' and '_'"
            )
        self.name: str = name
        self.connection: NatsBrokerConnection | None = connection

    def __repr__(self) -> str:
        return f"Bucket({self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Bucket) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("bucket", self.name))

    def _not_found(self) -> BucketNotFoundError:
        return BucketNotFoundError(
            f"there is no key-value bucket named {self.name!r} (any more); Bucket.list() shows the buckets"
        )

    async def key_value(self, conn: NatsBrokerConnection) -> KeyValue:
        """nats-py's handle of the bucket on ``conn``.

        Raises:
            BucketNotFoundError: There is no such bucket.
        """
        try:
            return await conn.client.jetstream().key_value(self.name)
        except (nats.js.errors.BucketNotFoundError, nats.js.errors.NotFoundError):
            raise self._not_found() from None
        except (nats.js.errors.Error, nats.errors.Error) as e:
            raise jetstream_error(e, conn, f"opening bucket {self.name!r}") from None

    @classmethod
    async def open(cls, name: str, *, connection: NatsBrokerConnection | None = None) -> Bucket:
        """The bucket ``name``.

        Raises:
            BucketNotFoundError: There is no such bucket.
        """
        bucket = cls(name, connection=connection)
        async with use_connection(connection) as conn:
            await bucket.key_value(conn)
        return bucket

    @classmethod
    async def list(cls, *, connection: NatsBrokerConnection | None = None) -> list[Bucket]:
        """Every key-value bucket on the server, by name."""
        from fastiot.history.recording import Recording

        buckets = []
        for recording in await Recording.list(connection=connection):
            name = recording.name[len(_STREAM_PREFIX) :]
            if recording.name.startswith(_STREAM_PREFIX) and recording.subjects == [f"$KV.{name}.>"]:
                buckets.append(cls(name, connection=connection))
        return buckets

    async def info(self, *, connection: NatsBrokerConnection | None = None) -> BucketInfo:
        """How many entries the bucket holds, and its settings."""
        async with use_connection(connection or self.connection) as conn:
            kv = await self.key_value(conn)
            try:
                status = await kv.status()
            except nats.js.errors.NotFoundError:
                raise self._not_found() from None
        config = status.stream_info.config
        return BucketInfo(
            name=self.name,
            values=status.values,
            bytes=status.stream_info.state.bytes,
            history=status.history,
            ttl=timedelta(seconds=status.ttl) if status.ttl else None,
            storage=str(getattr(config.storage, "value", config.storage) or "file"),
            replicas=config.num_replicas or 1,
        )

    async def keys(
        self, pattern: str = ">", *, connection: NatsBrokerConnection | None = None
    ) -> builtins.list[str]:
        """The keys that have a value (not deleted), sorted; ``pattern`` may use ``*`` and ``>``."""
        async with use_connection(connection or self.connection) as conn:
            kv = await self.key_value(conn)
            # Deletes are filtered here, not by nats-py: every stored key must hand out an entry.
            entries = await _initial_entries(conn, kv, self.name, pattern, meta_only=True)
        return sorted({e.key for e in entries if _OPERATIONS.get(e.operation) == "PUT"})

    async def get(self, key: str, *, connection: NatsBrokerConnection | None = None) -> KeyEntry | None:
        """The current value of ``key``, or None if it has none (never set, deleted or purged)."""
        async with use_connection(connection or self.connection) as conn:
            kv = await self.key_value(conn)
            try:
                entry = await kv.get(key)
            except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
                return None
            except nats.js.errors.InvalidKeyError:
                raise InvalidRecordingError(f"{key!r} is not a valid key") from None
        return KeyEntry.from_nats(entry)

    async def history(
        self, key: str, *, connection: NatsBrokerConnection | None = None
    ) -> builtins.list[KeyEntry]:
        """Every revision of ``key`` the bucket keeps, oldest first (deletes included); [] for no such key.

        The changes between two revisions are ``fastiot.payloads.diff(older.value, newer.value)``.
        """
        async with use_connection(connection or self.connection) as conn:
            kv = await self.key_value(conn)
            # Not kv.history(): it trusts nats-py's end marker, which can come before the entries.
            entries = await _initial_entries(conn, kv, self.name, key, include_history=True)
        return [KeyEntry.from_nats(entry) for entry in entries]

    def watch(self, keys: str = ">", *, connection: NatsBrokerConnection | None = None) -> BucketWatch:
        """A live view of the bucket's current values (``await watch.start()`` to begin)."""
        return BucketWatch(self, keys, connection=connection or self.connection)


class WatchState(str, Enum):
    """``stopped``, ``watching`` or ``deleted`` (the bucket was deleted while watched)."""

    STOPPED = "stopped"
    WATCHING = "watching"
    DELETED = "deleted"


class BucketWatch:
    """The current value of every key of a bucket, kept up to date; calls ``on_change`` callbacks.

    Args:
        bucket: The bucket.
        keys: The keys to watch (``*`` and ``>`` allowed).
        connection: The broker connection (see :class:`Bucket`).

    Example:
        >>> async def main(bucket):
        ...     watch = await bucket.watch().start()
        ...     watch.on_change(lambda entry: print(entry.key, entry.value))
        ...     print(watch.entries)  # key -> KeyEntry, the current values
    """

    def __init__(
        self, bucket: Bucket, keys: str = ">", *, connection: NatsBrokerConnection | None = None
    ) -> None:
        self.bucket: Bucket = bucket
        self.keys: str = keys
        self.connection: NatsBrokerConnection | None = connection
        self.entries: dict[str, KeyEntry] = {}
        """The current value of each key (deleted keys are removed)."""
        self.state: WatchState = WatchState.STOPPED
        self._on_change: CallbackList[[KeyEntry]] = CallbackList("key-value change")
        self._on_state: CallbackList[[WatchState]] = CallbackList("watch state")
        self._task: asyncio.Task[None] | None = None
        self._check: asyncio.Task[None] | None = None
        self._ready: asyncio.Event = asyncio.Event()
        self._advisory: Any = None
        self._lease: ConnectionLease[Any] | None = None

    def on_change(self, callback: Any, remove: bool = False) -> None:
        """Call ``callback(entry)`` (a plain function) for every change of a watched key.

        ``entry.operation`` tells puts from deletes.
        """
        self._on_change.register(callback, remove=remove)

    def on_state_change(self, callback: Any, remove: bool = False) -> None:
        """Call ``callback(state)`` when the watch starts, stops, or sees its bucket deleted."""
        self._on_state.register(callback, remove=remove)

    def _set_state(self, state: WatchState) -> None:
        if state is not self.state:
            self.state = state
            self._on_state(state)

    async def start(self, timeout: float = _READY_TIMEOUT) -> BucketWatch:
        """Load the current values and follow the changes; returns once the current values are in.

        Raises:
            BucketNotFoundError: The bucket does not exist.
        """
        if self._task is not None:
            return self
        self._lease = await use_connection(self.connection, owner=self)
        conn = self.connection = self._lease.connection
        try:
            kv = await self.bucket.key_value(conn)
            watcher = await kv.watch(self.keys)
            self._advisory = await conn.client.subscribe(
                f"$JS.EVENT.ADVISORY.STREAM.DELETED.{_STREAM_PREFIX}{self.bucket.name}", cb=self._on_deleted
            )
        except BaseException:
            await self.stop()  # gives the connection back
            raise
        self._ready.clear()
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(
            self._follow(watcher, _InitialValues(conn, self.bucket.name, self.keys))
        )
        self._check = loop.create_task(self._check_bucket(conn))
        self._set_state(WatchState.WATCHING)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)
        return self

    async def _follow(self, watcher: KeyValue.KeyWatcher, initial: _InitialValues) -> None:
        try:
            async for update in watcher:
                if await initial.update(update):
                    self._ready.set()
                if update is None:
                    continue
                entry = KeyEntry.from_nats(update)
                if entry.is_deleted:
                    self.entries.pop(entry.key, None)
                else:
                    self.entries[entry.key] = entry
                self._on_change(entry)
        finally:
            self._ready.set()
            with contextlib.suppress(Exception):
                await watcher.stop()

    async def _on_deleted(self, msg: Any = None) -> None:
        self.entries.clear()
        self._set_state(WatchState.DELETED)

    async def _check_bucket(self, conn: NatsBrokerConnection) -> None:
        # JetStream's advisory says at once that the bucket was deleted, but the server does not always
        # send it while a consumer is pushing: so look now and then as well.
        while self.state is WatchState.WATCHING:
            await asyncio.sleep(CHECK_INTERVAL)
            try:
                await self.bucket.key_value(conn)
            except BucketNotFoundError:
                await self._on_deleted()
            except Exception:  # not reachable right now: the next look will tell
                continue

    async def stop(self) -> None:
        """Stop following (the entries stay as they were)."""
        for task in (self._task, self._check):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._task = self._check = None
        advisory, self._advisory = self._advisory, None
        if advisory is not None:
            with contextlib.suppress(Exception):
                await advisory.unsubscribe()
        lease, self._lease = self._lease, None
        if lease is not None:
            if lease.is_shared:
                self.connection = None  # the next start() asks the workbench again
            await lease.release()
        if self.state is WatchState.WATCHING:
            self._set_state(WatchState.STOPPED)
