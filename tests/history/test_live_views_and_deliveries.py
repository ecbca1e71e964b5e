"""Live views count what is published, not what JetStream consumers deliver (a recording being read)."""

from __future__ import annotations

from fastiot.capture import MessageCapture
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.history import Recording
from fastiot.nats_server import NatsServer
from fastiot.series import LiveSeries
from fastiot.subjects import SubjectIndex
from tests.history.conftest import publish, recorded

SUBJECT = "v1.thing.press_1.temperature"


async def test_reading_a_recording_is_not_live_traffic_unless_asked_for(
    js_server: NatsServer, connection: NatsBrokerConnection, name: str
) -> None:
    """Issue 21 item 1: loading a recording from another connection made `>` jump by 50 messages."""
    await recorded(connection, name, 50)  # 25 on press_1, 25 on press_2, before the views start
    index = await SubjectIndex(">", connection).start()
    capture = await MessageCapture("v1.thing.>", connection).start()
    series = await LiveSeries("v1.thing.*.temperature", "value", connection).start()
    shows_deliveries = await SubjectIndex(">", connection, include_deliveries=True).start()
    reader = await NatsBrokerConnection.connect(servers=js_server.url)
    try:
        frame = await (await Recording.open(name, connection=reader)).to_dataframe()
    finally:
        await reader.close()
    assert len(frame) == 50
    await publish(connection, [(SUBJECT, {"value": 99.0})])  # one message published after all that
    for view in (index, capture, series, shows_deliveries):
        await view.sync()
    assert index.counter(SUBJECT).count == 1
    assert "v1.thing.press_2.temperature" not in index
    assert capture.received == 1
    assert series.points == 1
    assert shows_deliveries.counter(SUBJECT).count == 26  # the 25 read back, then the one published
    assert shows_deliveries.counter("v1.thing.press_2.temperature").count == 25
    for view in (index, capture, series, shows_deliveries):
        await view.stop()
