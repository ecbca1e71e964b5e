"""Pins the nats-py behaviour fastiot/core/_nats_compat.py's history functions rely on."""

from __future__ import annotations

import asyncio
from importlib import metadata

from packaging.specifiers import SpecifierSet

from fastiot.core import _nats_compat
from fastiot.core.broker_connection import NatsBrokerConnection
from tests.history.conftest import WAIT


def test_the_installed_nats_py_is_a_verified_version() -> None:
    assert metadata.version("nats-py") in SpecifierSet(",".join(_nats_compat.SUPPORTED_NATS_PY))


async def test_intercepted_messages_arrive_raw_and_others_take_the_usual_path(
    connection: NatsBrokerConnection,
) -> None:
    client = connection.client
    raw: list[tuple[bytes, bytes, bytes, bytes | None]] = []
    usual: asyncio.Queue[object] = asyncio.Queue()
    intercepted = await client.subscribe("compat.raw")
    other = await client.subscribe("compat.usual", cb=usual.put)
    remove = _nats_compat.intercept_raw_messages(
        client, _nats_compat.subscription_id(intercepted), lambda *args: raw.append(args)
    )
    await client.publish("compat.raw", b"payload", reply="the.reply", headers={"k": "v"})
    await client.publish("compat.raw", b"plain")
    await client.publish("compat.usual", b"as always")
    msg = await asyncio.wait_for(usual.get(), WAIT)
    await connection.flush()
    assert msg.data == b"as always"  # type: ignore[attr-defined]
    assert [(s, r, d) for s, r, d, _ in raw] == [
        (b"compat.raw", b"the.reply", b"payload"),
        (b"compat.raw", b"", b"plain"),
    ]
    headers = raw[0][3]
    assert headers is not None and headers.startswith(b"NATS/1.0\r\n") and raw[1][3] is None
    assert await _nats_compat.parse_headers(client, headers) == {"k": "v"}
    assert intercepted.pending_msgs == 0  # nothing reached nats-py's queue of that subscription

    remove()
    assert "_process_msg" not in vars(client)  # nats-py's own method again
    await client.publish("compat.raw", b"after")
    assert (await intercepted.next_msg(timeout=WAIT)).data == b"after"
    await other.unsubscribe()


async def test_status_headers_parse_to_status_and_description(connection: NatsBrokerConnection) -> None:
    parsed = await _nats_compat.parse_headers(connection.client, b"NATS/1.0 100 Idle Heartbeat\r\n\r\n")
    assert parsed["Status"] == "100" and parsed["Description"] == "Idle Heartbeat"


async def test_server_info_names_the_server(connection: NatsBrokerConnection) -> None:
    info = _nats_compat.server_info(connection.client)
    assert info["server_id"] and info["jetstream"] is True


async def test_the_read_loop_gives_the_event_loop_a_turn_every_so_many_intercepted_messages(
    connection: NatsBrokerConnection,
) -> None:
    client = connection.client
    subscription = await client.subscribe("compat.turns")
    sid = _nats_compat.subscription_id(subscription)
    remove = _nats_compat.intercept_raw_messages(client, sid, lambda *args: None)
    try:
        returned = [
            client._process_msg(sid, b"s", b"", b"", None) for _ in range(2 * _nats_compat.YIELD_EVERY)
        ]
        finished = [isinstance(r, asyncio.Future) and r.done() for r in returned]
        turns = [i for i, done in enumerate(finished) if not done]
        assert turns == [_nats_compat.YIELD_EVERY - 1, 2 * _nats_compat.YIELD_EVERY - 1]
        for i in turns:
            await returned[i]  # asyncio.sleep(0): one turn of the event loop
    finally:
        remove()
        await subscription.unsubscribe()
