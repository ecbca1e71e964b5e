"""What every broker connection offers, the dummy included: state, on_state_change, flush, raw I/O."""

from __future__ import annotations

from typing import Any

import pytest

from fastiot.core.broker_connection import (
    BrokerConnectionDummy,
    ConnectionState,
    NatsBrokerConnection,
    Subscription,
)


def test_connection_state_is_a_str_enum() -> None:
    assert ConnectionState.CONNECTED == "connected" and str(ConnectionState.RECONNECTING) == "reconnecting"
    assert ConnectionState("closed") is ConnectionState.CLOSED
    assert {s.value for s in ConnectionState} == {"connected", "reconnecting", "disconnected", "closed"}


async def test_the_dummy_offers_what_users_of_a_connection_need() -> None:
    dummy = BrokerConnectionDummy()
    seen: list[ConnectionState] = []
    dummy.on_state_change(seen.append)
    dummy.on_state_change(seen.append)  # registered once
    assert dummy.state is ConnectionState.CONNECTED
    assert dummy.connected_url is None, "no server behind the dummy"

    async def on_msg(msg: Any) -> None:
        pass

    sub = await dummy.subscribe_raw("v1.>", on_msg)
    assert isinstance(sub, Subscription) and sub.received == 0 and sub.errors == 0
    await sub.drain(1.0)
    await dummy.publish_raw("v1.raw", b"\x01")
    assert list(dummy.published) == [("v1.raw", b"\x01")]
    await dummy.flush(timeout=1.0)
    await dummy.close()
    assert dummy.state == "closed" and seen == [ConnectionState.CLOSED]
    dummy.on_state_change(seen.append, remove=True)
    dummy.on_state_change(seen.append, remove=True)  # removing an unknown callback does nothing


async def test_state_callbacks_are_checked_when_registered(broker: NatsBrokerConnection) -> None:
    async def not_plain(state: ConnectionState) -> None:
        pass

    with pytest.raises(TypeError, match="plain function"):
        broker.on_state_change(not_plain)

    async def raw_cb(msg: Any) -> None:
        pass

    def sync_cb(msg: Any) -> None:
        pass

    for connection in (broker, BrokerConnectionDummy()):
        with pytest.raises(TypeError, match="async function"):
            await connection.subscribe_raw("v1.x", sync_cb)  # type: ignore[arg-type]
    sub = await broker.subscribe_raw("v1.api.raw", raw_cb)
    assert sub.received == 0
    await sub.unsubscribe()


async def test_a_failing_state_callback_is_logged_and_the_others_still_run(
    broker: NatsBrokerConnection, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def fails(state: ConnectionState) -> None:
        raise RuntimeError("callback bug")

    broker.on_state_change(fails)
    broker.on_state_change(seen.append)
    await broker.close()
    assert seen == ["closed"]
    assert "callback bug" in caplog.text
