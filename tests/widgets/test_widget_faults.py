"""Widgets through a broker restart: they show reconnecting, then connected, and keep following."""

from __future__ import annotations

import traitlets

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.msg.thing import Thing
from fastiot.nats_server import NatsServer
from fastiot_widgets import MessageTable, ServiceControl, SubjectBrowser
from tests.waits import wait_until as eventually

WAIT = 15.0


async def _wait_state(widget_status: traitlets.HasTraits, state: str) -> None:
    await eventually(lambda: widget_status.state == state, WAIT, f"connection view shows {state!r}")


async def test_widgets_show_reconnecting_then_connected_and_resume() -> None:
    from fastiot.core import FastIoTService, subscribe

    class Listener(FastIoTService):
        @subscribe(subject=Thing.get_subject("restart.>"))
        async def on_thing(self, thing: Thing) -> None:
            pass

    server = NatsServer().start()
    connection = await NatsBrokerConnection.connect(servers=server.url, reconnect_time_wait=0.2)
    publisher = await NatsBrokerConnection.connect(servers=server.url, reconnect_time_wait=0.2)
    browser = SubjectBrowser(">", connection=connection, refresh_interval=0.05)
    table = MessageTable("v1.thing.restart.>", connection=connection, refresh_interval=0.05)
    control = ServiceControl(Listener, connection=connection)
    try:
        await browser.start()
        await table.start()
        await control.start()
        views = [browser.connection_status, table.connection_status, control.connection_status]
        for view in views:
            await _wait_state(view, "connected")

        async def publish(n: int, start: int) -> None:
            for i in range(start, start + n):
                await publisher.publish(
                    Thing.get_subject("restart.temp"), Thing(machine="m", name="t", value=i)
                )
            await publisher.flush()

        await publish(10, 0)
        await table.capture.wait_for(10, timeout=WAIT)

        server.kill()
        for view in views:
            await _wait_state(view, "reconnecting")

        server.start()
        for view in views:
            await _wait_state(view, "connected")

        await publish(10, 10)
        await table.capture.wait_for(20, timeout=WAIT)
        await eventually(
            lambda: control.runner.handler_counts()["on_thing"]["received"] == 20, WAIT, "the service resumed"
        )
        await eventually(
            lambda: browser.index.stats("v1.thing.restart.temp").count == 20, WAIT, "the browser resumed"
        )
        assert table.to_dataframe()["value"].tolist() == list(range(20))
        assert control.status == "running"
    finally:
        await control.stop()
        await table.aclose()
        await browser.aclose()
        await connection.close()
        await publisher.close()
        server.stop()
