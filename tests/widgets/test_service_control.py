"""ServiceControl, headless: buttons clicked with .click(), state read from traitlets and the runner."""

from __future__ import annotations

import asyncio
import time

import pytest

from fastiot import workbench
from fastiot.core import FastIoTService, subscribe
from fastiot.core.broker_connection import BrokerConnection, NatsBrokerConnection
from fastiot.exceptions import ServiceReplacedError
from fastiot.msg.thing import Thing
from fastiot.nats_server import NatsServer
from fastiot.runner import ServiceRunner, ServiceStartError
from fastiot_widgets import ServiceControl
from fastiot_widgets._common import ConnectionStatus
from tests.services import (
    CrashingLoop,
    CrashingStart,
    FirstMessage,
    assert_no_message_lost_right_after_start,
)
from tests.waits import wait_for_trait


class Counter(FastIoTService):
    @subscribe(subject=Thing.get_subject("ctl.>"))
    async def on_thing(self, thing: Thing) -> None:
        self._logger.info("got %s", thing.value)


class Greeter(FastIoTService):
    def __init__(self, greeting: str = "hello", **kwargs) -> None:
        super().__init__(**kwargs)
        self.greeting = greeting

    async def _start(self) -> None:
        self._logger.info("%s from %s", self.greeting, type(self).__name__)


async def _publish(broker: NatsBrokerConnection, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        await broker.publish(Thing.get_subject("ctl.temp"), Thing(machine="ctl", name="temp", value=i))
    await broker.flush()


async def test_buttons_start_restart_stop(broker) -> None:
    ctl = ServiceControl(Counter, connection=broker)
    assert (ctl.status, ctl.start_button.disabled, ctl.stop_button.disabled) == ("stopped", False, True)
    assert ctl.connection_status.state == "connected"

    ctl.start_button.click()  # returns at once: the start runs as a task on the loop
    assert ctl.status in ("stopped", "starting")
    await ctl.wait_idle()
    assert ctl.status == "running", ctl.error
    assert ctl.runner.status == "running"
    assert (ctl.start_button.disabled, ctl.stop_button.disabled, ctl.restart_button.disabled) == (
        True,
        False,
        False,
    )
    assert ctl.name == "Counter"
    assert ctl.is_refreshing
    first = ctl.runner.service

    ctl.restart_button.click()
    await ctl.wait_idle()
    assert ctl.status == "running", ctl.error
    assert ctl.runner.service is not first
    assert ctl.runner.starts == 2

    ctl.stop_button.click()
    await ctl.wait_idle()
    assert ctl.status == "stopped"
    assert not ctl.is_refreshing, "the refresh task must end with the service"
    assert (ctl.start_button.disabled, ctl.stop_button.disabled) == (False, True)
    assert ctl.error == ""
    assert ctl.runner not in workbench.registered()


async def test_clicks_run_in_order(broker) -> None:
    ctl = ServiceControl(Counter, connection=broker)
    statuses: list[str] = []
    ctl.observe(lambda change: statuses.append(change["new"]), names="status")
    ctl.start_button.click()
    ctl.stop_button.click()  # clicked before the start finished: runs after it
    await ctl.wait_idle()
    assert statuses == ["starting", "running", "stopped"]


async def test_await_start_stop_and_counters_follow_real_messages(broker) -> None:
    ctl = ServiceControl(Counter, connection=broker)
    await ctl.start()
    assert ctl.status == "running"
    await _publish(broker, 5)
    counts = await wait_for_trait(ctl, "handler_counts", lambda c: c.get("on_thing", {}).get("received") == 5)
    assert counts == {"on_thing": {"received": 5, "errors": 0}}
    await wait_for_trait(ctl, "log", lambda v: "got 4" in v)
    await ctl.stop()
    assert ctl.status == "stopped"
    assert not ctl.is_refreshing
    assert ctl.handler_counts == {"on_thing": {"received": 5, "errors": 0}}, "final counts stay visible"
    assert "stopped Counter" in ctl.log


async def test_refresh_rate_is_bounded_under_load(broker) -> None:
    ctl = ServiceControl(Counter, connection=broker)
    ctl.refresh_interval = 0.1
    await ctl.start()
    renders_before = ctl.renders
    began = time.monotonic()
    await _publish(broker, 2000)
    await wait_for_trait(ctl, "handler_counts", lambda c: c.get("on_thing", {}).get("received") == 2000)
    elapsed = time.monotonic() - began
    renders = ctl.renders - renders_before
    # 2000 messages and 2000 log lines, but at most one render per refresh interval (+1 for timing slack).
    assert 1 <= renders <= elapsed / 0.1 + 2, (renders, elapsed)
    await ctl.stop()


async def test_log_view_is_bounded(broker) -> None:
    ctl = ServiceControl(Counter, connection=broker)
    ctl.max_log_lines = 3
    await ctl.start()
    await _publish(broker, 10)
    log = await wait_for_trait(ctl, "log", lambda v: "got 9" in v)
    assert log.splitlines()[1:] == list(ctl.runner.log_lines)[-3:]
    assert log.splitlines()[0].endswith("older lines not shown)")
    await ctl.stop()


async def test_one_hidden_log_line_is_one_line(broker) -> None:
    ctl = ServiceControl(Counter, connection=broker)
    ctl.max_log_lines = 1
    await ctl.start()  # logs "started Counter"
    await _publish(broker, 1)
    log = await wait_for_trait(ctl, "log", lambda v: "got 0" in v)
    assert log.splitlines()[0] == "(1 older line not shown)"
    await ctl.stop()


async def test_crashing_loop_shows_crashed_with_traceback(broker) -> None:
    ctl = ServiceControl(CrashingLoop, connection=broker)
    ctl.start_button.click()
    await wait_for_trait(ctl, "status", lambda s: s == "crashed")
    await ctl.wait_idle()
    assert ctl.status == "crashed"
    assert "Traceback" in ctl.error and "RuntimeError: sensor unplugged" in ctl.error
    assert not ctl.is_refreshing
    assert (ctl.start_button.disabled, ctl.restart_button.disabled) == (False, False)


async def test_crash_while_starting_is_shown_not_raised_on_click(broker) -> None:
    ctl = ServiceControl(CrashingStart, connection=broker)
    ctl.start_button.click()
    await ctl.wait_idle()
    assert ctl.status == "crashed"
    assert "ValueError: bad configuration" in ctl.error
    assert ctl.error.count("ValueError: bad configuration") == ctl.runner.error.count(
        "ValueError: bad configuration"
    )
    # From code the same start raises.
    with pytest.raises(ServiceStartError, match="bad configuration"):
        await ctl.start()


async def test_action_errors_are_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    with NatsServer() as server:
        url = server.url
    monkeypatch.setenv("FASTIOT_NATS_SERVERS", url)  # nothing listens there any more
    ctl = ServiceControl(Counter)
    ctl.start_button.click()
    await ctl.wait_idle()
    assert ctl.status == "stopped"
    assert "BrokerUnavailableError" in ctl.error and url in ctl.error
    assert ctl.connection_status.state == "disconnected"
    assert "BrokerUnavailableError" in ctl.connection_status.detail


async def test_workbench_connection_and_service_kwargs() -> None:
    ctl = ServiceControl(Greeter, greeting="moin")
    await ctl.start()
    assert ctl.runner.service.broker_connection is await workbench.connection()
    assert ctl.connection_status.state == "connected"
    assert ctl.connection_status.connection is await workbench.connection()
    await wait_for_trait(ctl, "log", lambda v: "moin from Greeter" in v)
    assert repr(ctl) == "ServiceControl(Greeter, running)"
    await ctl.stop()


async def test_instance_and_runner_are_accepted(broker) -> None:
    service = Counter(broker_connection=broker)
    ctl = ServiceControl(service)
    await ctl.start()
    assert ctl.runner.service is service
    await ctl.stop()

    runner = ServiceRunner(Counter, connection=broker)
    await runner.start()
    view = ServiceControl(runner)  # a view made while it already runs
    assert view.status == "running" and view.is_refreshing
    await runner.stop()
    assert view.status == "stopped" and not view.is_refreshing

    with pytest.raises(TypeError, match="FastIoTService"):
        ServiceControl(object)
    with pytest.raises(TypeError, match="ServiceRunner"):
        ServiceControl(runner, connection=broker)


async def test_connection_status_follows_reconnect_and_close() -> None:
    server = NatsServer().start()
    try:
        connection = await NatsBrokerConnection.connect(servers=server.url)
        status = ConnectionStatus(connection)
        assert status.state == "connected" and server.url in status.detail
        server.kill()
        await wait_for_trait(status, "state", lambda s: s == "reconnecting")
        assert status.detail == "lost the broker; reconnecting"
        await asyncio.to_thread(server.restart)  # the same port again
        await wait_for_trait(status, "state", lambda s: s == "connected", timeout=15)
        await connection.close()
        assert status.state == "disconnected" and status.detail == "connection closed"
    finally:
        server.stop()


async def test_start_returns_when_the_server_has_the_subscriptions() -> None:
    """A message another client publishes right after ``await ctl.start()`` is never lost."""
    ctl: ServiceControl | None = None

    async def start(connection: BrokerConnection) -> FastIoTService:
        nonlocal ctl
        ctl = ctl or ServiceControl(FirstMessage, connection=connection)
        await ctl.start()
        assert ctl.runner.service is not None
        return ctl.runner.service

    async def stop() -> None:
        if ctl is not None:
            await ctl.stop()

    await assert_no_message_lost_right_after_start(start, stop)


async def test_a_replaced_control_cannot_start(broker) -> None:
    ctl = ServiceControl(Counter, connection=broker)
    await ctl.start()
    await ctl.runner.retire()  # what a newer %%service cell of the same service does
    assert ctl.status == "replaced"
    assert ctl.status.description == "replaced by a newer cell"
    assert ctl.start_button.tooltip == "A newer cell defines this service; use its control"
    assert (ctl.start_button.disabled, ctl.stop_button.disabled, ctl.restart_button.disabled) == (
        True,
        True,
        True,
    )
    ctl.start_button.click()  # a click that still arrives (e.g. sent before the button was disabled)
    await ctl.wait_idle()
    assert ctl.status == "replaced" and ctl.runner not in workbench.registered()
    assert "ServiceReplacedError" in ctl.error and "newer cell" in ctl.error
    with pytest.raises(ServiceReplacedError, match="replaced by a newer cell"):
        await ctl.restart()
