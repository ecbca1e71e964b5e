"""Key-value buckets: list, keys, values decoded like payloads, history, a live watch."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from nats.js.kv import KeyValue

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.serialization import pack
from fastiot.exceptions import BucketNotFoundError, InvalidRecordingError
from fastiot.history import Bucket, BucketWatch, KeyEntry, WatchState, keyvalue
from tests.history.conftest import WAIT


async def make_bucket(connection: NatsBrokerConnection, name: str = "settings", history: int = 10) -> object:
    return await connection.client.jetstream().create_key_value(bucket=name, history=history)


async def test_buckets_keys_and_values_decoded_like_payloads(connection: NatsBrokerConnection) -> None:
    kv = await make_bucket(connection)
    await make_bucket(connection, "other")
    await connection.client.jetstream().add_stream(name="not_a_bucket", subjects=["x.>"])
    await kv.put("press_1.setpoint", pack({"value": 71.5, "unit": "degC"}))  # type: ignore[attr-defined]
    await kv.put("mode", b'{"auto": true}')  # type: ignore[attr-defined]
    await kv.put("broken", b"\xc1\xc1")  # type: ignore[attr-defined]
    await kv.put("gone", pack(1))  # type: ignore[attr-defined]
    await kv.delete("gone")  # type: ignore[attr-defined]

    assert await Bucket.list(connection=connection) == [Bucket("other"), Bucket("settings")]
    bucket = await Bucket.open("settings", connection=connection)
    assert await bucket.keys() == ["broken", "mode", "press_1.setpoint"]
    assert await bucket.keys("press_1.*") == ["press_1.setpoint"]
    setpoint = await bucket.get("press_1.setpoint")
    assert setpoint is not None
    assert (setpoint.value, setpoint.error, setpoint.operation) == (
        {"value": 71.5, "unit": "degC"},
        None,
        "PUT",
    )
    mode = await bucket.get("mode")
    assert mode is not None and mode.value == {"auto": True}
    broken = await bucket.get("broken")
    assert broken is not None and broken.value is None and broken.raw == b"\xc1\xc1"
    assert broken.error is not None and "not msgpack" in broken.error
    assert await bucket.get("gone") is None
    assert await bucket.get("never") is None
    info = await bucket.info()
    assert (info.name, info.values, info.history) == ("settings", 5, 10)


async def test_history_lists_every_revision_oldest_first_with_deletes(
    connection: NatsBrokerConnection,
) -> None:
    kv = await make_bucket(connection)
    for value in (1, 2, 3):
        await kv.put("counter", pack({"n": value}))  # type: ignore[attr-defined]
    await kv.delete("counter")  # type: ignore[attr-defined]
    await kv.put("counter", pack({"n": 4}))  # type: ignore[attr-defined]
    bucket = await Bucket.open("settings", connection=connection)
    history = await bucket.history("counter")
    assert [(e.operation, e.value) for e in history] == [
        ("PUT", {"n": 1}),
        ("PUT", {"n": 2}),
        ("PUT", {"n": 3}),
        ("DEL", None),
        ("PUT", {"n": 4}),
    ]
    assert [e.revision for e in history] == sorted(e.revision for e in history)
    assert all(e.created is not None for e in history)
    assert history[3].is_deleted and not history[4].is_deleted
    assert await bucket.history("nothing") == []


async def test_a_watch_holds_the_current_values_and_reports_each_change(
    connection: NatsBrokerConnection,
) -> None:
    kv = await make_bucket(connection)
    await kv.put("a", pack(1))  # type: ignore[attr-defined]
    await kv.put("b", pack(2))  # type: ignore[attr-defined]
    watch = await (await Bucket.open("settings", connection=connection)).watch().start()
    changes: list[KeyEntry] = []
    arrived = asyncio.Event()

    def on_change(entry: KeyEntry) -> None:
        changes.append(entry)
        arrived.set()

    try:
        assert {k: e.value for k, e in watch.entries.items()} == {"a": 1, "b": 2}
        watch.on_change(on_change)
        await kv.put("a", pack(10))  # type: ignore[attr-defined]
        await kv.delete("b")  # type: ignore[attr-defined]
        while len(changes) < 2:
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), WAIT)
        assert [(c.key, c.operation, c.value) for c in changes] == [("a", "PUT", 10), ("b", "DEL", None)]
        assert {k: e.value for k, e in watch.entries.items()} == {"a": 10}
        assert watch.state is WatchState.WATCHING
    finally:
        await watch.stop()
    assert watch.state is WatchState.STOPPED


async def test_a_watched_bucket_that_is_deleted_says_so(connection: NatsBrokerConnection) -> None:
    kv = await make_bucket(connection)
    await kv.put("a", pack(1))  # type: ignore[attr-defined]
    watch = await (await Bucket.open("settings", connection=connection)).watch().start()
    states: list[WatchState] = []
    deleted = asyncio.Event()
    watch.on_state_change(lambda state: (states.append(state), deleted.set()))
    try:
        await connection.client.jetstream().delete_key_value("settings")
        await asyncio.wait_for(deleted.wait(), WAIT)
        assert states == [WatchState.DELETED] and watch.entries == {}
    finally:
        await watch.stop()
    with pytest.raises(BucketNotFoundError, match=r"Bucket\.list\(\)"):
        await Bucket.open("settings", connection=connection)


async def test_bad_bucket_names_and_missing_buckets(connection: NatsBrokerConnection) -> None:
    for bad in ("", "a.b", "a b", "a*"):
        with pytest.raises(InvalidRecordingError, match="bucket name"):
            await Bucket.open(bad, connection=connection)
    with pytest.raises(BucketNotFoundError, match="nothing"):
        await Bucket.open("nothing", connection=connection)


async def test_a_deleted_bucket_is_noticed_even_without_jetstreams_advisory(
    connection: NatsBrokerConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server does not always send the advisory while a consumer is pushing: the watch looks itself."""
    monkeypatch.setattr(keyvalue, "CHECK_INTERVAL", 0.05)
    look = BucketWatch._on_deleted

    async def advisory_lost(self: BucketWatch, msg: object = None) -> None:
        if msg is None:  # the watch's own look, not the advisory
            await look(self)

    monkeypatch.setattr(BucketWatch, "_on_deleted", advisory_lost)
    await make_bucket(connection)
    watch = await (await Bucket.open("settings", connection=connection)).watch().start()
    deleted = asyncio.Event()
    watch.on_state_change(lambda state: deleted.set())
    try:
        await connection.client.jetstream().delete_key_value("settings")
        await asyncio.wait_for(deleted.wait(), WAIT)
        assert watch.state is WatchState.DELETED
    finally:
        await watch.stop()


class _EndAnnouncedFirst:
    """A nats-py KV watcher that hands out its end-of-initial-values marker (None) before any entry.

    nats-py does exactly this when the server has pushed every message before the client handed the first
    one to the watcher (seen in CI: a key's history came back empty). Only the watcher's public API is used.
    """

    def __init__(self, watcher: Any) -> None:
        self._watcher, self._announced = watcher, False

    async def updates(self, timeout: float = 5.0) -> Any:
        if not self._announced:
            self._announced = True
            return None
        return await self._watcher.updates(timeout)

    def __aiter__(self) -> _EndAnnouncedFirst:
        return self

    async def __anext__(self) -> Any:
        if not self._announced:
            self._announced = True
            return None
        return await self._watcher.__anext__()

    async def stop(self) -> None:
        await self._watcher.stop()


@pytest.fixture
def end_announced_first(monkeypatch: pytest.MonkeyPatch) -> None:
    real_watch = KeyValue.watch

    async def watch(self: KeyValue, *args: Any, **kwargs: Any) -> Any:
        return _EndAnnouncedFirst(await real_watch(self, *args, **kwargs))

    monkeypatch.setattr(KeyValue, "watch", watch)


@pytest.mark.usefixtures("end_announced_first")
async def test_an_end_marker_before_the_entries_loses_nothing(connection: NatsBrokerConnection) -> None:
    kv = await make_bucket(connection)
    for value in (1, 2):
        await kv.put("counter", pack({"n": value}))  # type: ignore[attr-defined]
    await kv.delete("counter")  # type: ignore[attr-defined]
    await kv.put("other", pack(3))  # type: ignore[attr-defined]
    await make_bucket(connection, "empty")
    bucket = await Bucket.open("settings", connection=connection)

    assert [(e.operation, e.value) for e in await bucket.history("counter")] == [
        ("PUT", {"n": 1}),
        ("PUT", {"n": 2}),
        ("DEL", None),
    ]
    assert await bucket.keys() == ["other"]
    watch = await bucket.watch().start()
    try:
        assert {k: e.value for k, e in watch.entries.items()} == {"other": 3}
    finally:
        await watch.stop()
    assert await bucket.history("nothing") == [], "a key without revisions still answers at once"
    empty = await Bucket.open("empty", connection=connection)
    assert await empty.keys() == []
