"""ServiceRunner: the headless model behind ServiceControl and %%service."""

from __future__ import annotations

import asyncio

import pytest

from fastiot import workbench
from fastiot.core import FastIoTService, subscribe
from fastiot.core.broker_connection import BrokerConnection
from fastiot.msg.thing import Thing
from fastiot.runner import ServiceRunner, ServiceStartError
from tests.services import (
    CrashingLoop,
    CrashingStart,
    FirstMessage,
    Hung,
    assert_no_message_lost_right_after_start,
)


class Counter(FastIoTService):
    @subscribe(subject=Thing.get_subject("runner.>"))
    async def on_thing(self, thing: Thing) -> None:
        self._logger.info("got %s", thing.value)


@pytest.fixture(autouse=True)
async def clean_workbench():
    yield
    await workbench.shutdown()


async def test_start_count_stop(broker) -> None:
    runner = ServiceRunner(Counter, connection=broker)
    statuses: list[str] = []
    runner.on_status_change(statuses.append)
    await runner.start()
    assert runner.status == "running"
    assert runner in workbench.registered()
    for i in range(3):
        await broker.publish(Thing.get_subject("runner.a"), Thing(machine="m", name="a", value=i))
    await broker.flush()
    for _ in range(200):
        if runner.handler_counts().get("on_thing", {}).get("received") == 3:
            break
        await asyncio.sleep(0.01)
    assert runner.handler_counts() == {"on_thing": {"received": 3, "errors": 0}}
    assert any("got 2" in line for line in runner.log_lines)
    await runner.stop()
    assert runner.status == "stopped"
    assert statuses == ["starting", "running", "stopped"]
    assert runner not in workbench.registered()


async def test_restart_makes_a_fresh_instance(broker) -> None:
    runner = ServiceRunner(Counter, connection=broker)
    await runner.start()
    first = runner.service
    await runner.restart()
    assert runner.status == "running"
    assert runner.service is not first
    await runner.stop()


async def test_crashing_loop_shows_crashed_with_traceback(broker) -> None:
    runner = ServiceRunner(CrashingLoop, connection=broker)
    await runner.start()
    await runner.wait_for_status("crashed", timeout=10)
    assert "RuntimeError: sensor unplugged" in runner.error
    assert "Traceback" in runner.error


async def test_crash_during_start_raises_and_shows_crashed(broker) -> None:
    runner = ServiceRunner(CrashingStart, connection=broker)
    with pytest.raises(ServiceStartError, match="bad configuration"):
        await runner.start()
    assert runner.status == "crashed"
    assert "ValueError: bad configuration" in runner.error


async def test_uses_the_workbench_connection_by_default() -> None:
    runner = ServiceRunner(Counter)
    await runner.start()
    assert runner.service.broker_connection is await workbench.connection()
    await runner.stop()


def test_rejects_what_is_not_a_service() -> None:
    with pytest.raises(TypeError, match="FastIoTService"):
        ServiceRunner(object)
    with pytest.raises(TypeError, match="instance"):
        ServiceRunner(Counter(), rate=3)


async def test_restarts_leave_no_log_handlers_behind(broker) -> None:
    runner = ServiceRunner(Counter, connection=broker)
    await runner.start()
    logger = runner.service._logger
    before = len(logger.handlers)
    for _ in range(3):
        await runner.restart()
    assert len(logger.handlers) == before
    await runner.stop()
    assert len(logger.handlers) == before - 1


async def test_echo_log_off_keeps_lines_in_the_runner_only(broker) -> None:
    import logging

    seen_by_console: list[str] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen_by_console.append(record.getMessage())

    recorder = Recorder()
    logging.getLogger("fastiot").addHandler(recorder)  # where the console handler sits
    try:
        runner = ServiceRunner(Counter, connection=broker, echo_log=False)
        await runner.start()
        await broker.publish(Thing.get_subject("runner.quiet"), Thing(machine="m", name="quiet", value=42))
        for _ in range(200):
            if any("got 42" in line for line in runner.log_lines):
                break
            await asyncio.sleep(0.01)
        await runner.stop()
    finally:
        logging.getLogger("fastiot").removeHandler(recorder)
    assert any("got 42" in line for line in runner.log_lines)
    assert "got 42" not in seen_by_console
    assert runner.service._logger.propagate, "the logger is handed back as it was"


async def test_stop_finishes_and_says_stopped_when_a_handler_never_returns(broker) -> None:
    runner = ServiceRunner(Hung, connection=broker)
    await runner.start()
    service = runner.service
    await broker.publish(Thing.get_subject("hung"), Thing(machine="m", name="hung", value=1))
    await asyncio.wait_for(service.entered.wait(), 10)
    await runner.stop()
    assert runner.status == "stopped", runner.error
    assert runner.error is None
    assert service.stopped and service.cancelled.is_set()
    warnings = [line for line in runner.log_lines if "WARNING" in line and "a_never_returns" in line]
    assert warnings, list(runner.log_lines)
    assert runner not in workbench.registered()


async def test_workbench_shutdown_finishes_when_a_handler_never_returns() -> None:
    runner = ServiceRunner(Hung)
    await runner.start()
    connection = await workbench.connection()
    await connection.publish(Thing.get_subject("hung"), Thing(machine="m", name="hung", value=1))
    await asyncio.wait_for(runner.service.entered.wait(), 10)
    await workbench.shutdown()
    assert runner.status == "stopped", runner.error
    assert runner.service.stopped


async def test_start_returns_when_the_server_has_the_subscriptions() -> None:
    """A message another client publishes right after ``await runner.start()`` is never lost."""
    runner: ServiceRunner | None = None

    async def start(connection: BrokerConnection) -> FastIoTService:
        nonlocal runner
        runner = runner or ServiceRunner(FirstMessage, connection=connection)
        await runner.start()
        assert runner.service is not None
        return runner.service

    async def stop() -> None:
        if runner is not None:
            await runner.stop()

    await assert_no_message_lost_right_after_start(start, stop)
