"""ServiceRunner: the headless model behind ServiceControl and %%service."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator

import pytest

from fastiot import workbench
from fastiot.core import FastIoTService, subscribe
from fastiot.core.broker_connection import BrokerConnection
from fastiot.exceptions import ServiceReplacedError
from fastiot.msg.thing import Thing
from fastiot.runner import ServiceRunner, ServiceStartError, ServiceStatus
from tests.services import (
    CrashingLoop,
    CrashingStart,
    FirstMessage,
    Hung,
    assert_no_message_lost_right_after_start,
)
from tests.waits import wait_until


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
    await wait_until(lambda: runner.handler_counts().get("on_thing", {}).get("received") == 3)
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


async def test_restarts_leave_the_logger_as_it_was(broker) -> None:
    runner = ServiceRunner(Counter, connection=broker)
    await runner.start()
    logger = runner.service._logger
    before = (list(logger.handlers), list(logger.filters), logger.propagate)
    for _ in range(3):
        await runner.restart()
    await runner.stop()
    assert (list(logger.handlers), list(logger.filters), logger.propagate) == before


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def console() -> Iterator[_Recorder]:
    """What reaches the root logger: every fastiot record goes there, and on to the console, once."""
    recorder = _Recorder()
    logging.getLogger().addHandler(recorder)
    yield recorder
    logging.getLogger().removeHandler(recorder)


@pytest.mark.parametrize("echo_log", [False, True], ids=["echo off", "echo on"])
async def test_echo_log_decides_whether_lines_pass_on(broker, console: _Recorder, echo_log: bool) -> None:
    runner = ServiceRunner(Counter, connection=broker, echo_log=echo_log)
    await runner.start()
    await broker.publish(Thing.get_subject("runner.echo"), Thing(machine="m", name="echo", value=42))
    await wait_until(lambda: any("got 42" in line for line in runner.log_lines))
    await runner.stop()
    assert any("stopped Counter" in line for line in runner.log_lines)
    if echo_log:
        assert console.messages.count("got 42") == 1, "passed on once"
    else:
        assert console.messages == [], "kept in the runner only (the stop request's line too)"


class Failing(FastIoTService):
    @subscribe(subject=Thing.get_subject("runner.failing"))
    async def on_thing(self, thing: Thing) -> None:
        self._logger.info("handling %s", thing.value)
        raise ValueError(f"cannot handle {thing.value}")


async def test_one_service_log_in_one_format(broker, console: _Recorder) -> None:
    """The service's own lines and its handlers' errors, start to stop: all in its log, one format."""
    runner = ServiceRunner(Failing, connection=broker, echo_log=False)
    await runner.start()
    await broker.publish(Thing.get_subject("runner.failing"), Thing(machine="m", name="f", value=7))
    await wait_until(lambda: any("cannot handle 7" in line for line in runner.log_lines))
    await runner.stop()
    # One line per record (a traceback continues its line): time, level, message.
    records = [line for line in runner.log_lines if not line.startswith((" ", "Traceback", "ValueError"))]
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d (INFO|WARNING|ERROR) .+", r.splitlines()[0]) for r in records)
    messages = [r.splitlines()[0].split(" ", 2)[1:] for r in records]
    assert messages[:2] == [["INFO", "started Failing"], ["INFO", "handling 7"]]
    assert messages[2][0] == "ERROR" and "cannot handle 7" in messages[2][1], "the handler's error"
    assert messages[-1] == ["INFO", "stopped Failing"]
    assert console.messages == [], "nothing of it reaches the console (a red stderr line in a notebook)"


async def test_two_runners_of_one_class_keep_their_own_logs(broker, console: _Recorder) -> None:
    first = ServiceRunner(Counter, connection=broker, echo_log=False)
    second = ServiceRunner(Counter, connection=broker, echo_log=False)
    await first.start()
    await second.start()
    await first.stop()  # the other one still runs: its lines stay in its own log, off the console
    await broker.publish(Thing.get_subject("runner.second"), Thing(machine="m", name="second", value=44))
    await wait_until(lambda: any("got 44" in line for line in second.log_lines))
    await second.stop()
    assert not any("got 44" in line for line in first.log_lines)
    assert sum("started Counter" in line for line in second.log_lines) == 1
    assert console.messages == []


async def test_stop_finishes_and_says_stopped_when_a_handler_never_returns(broker) -> None:
    runner = ServiceRunner(Hung, connection=broker)
    await runner.start()
    service = runner.service
    await broker.publish(Thing.get_subject("hung"), Thing(machine="m", name="hung", value=1))
    await asyncio.wait_for(service.hang.entered.wait(), 10)
    await runner.stop()
    assert runner.status == "stopped", runner.error
    assert runner.error is None
    assert service.stopped and service.hang.cancelled.is_set()
    warnings = [line for line in runner.log_lines if "WARNING" in line and "a_never_returns" in line]
    assert warnings, list(runner.log_lines)
    assert runner not in workbench.registered()


async def test_workbench_shutdown_finishes_when_a_handler_never_returns() -> None:
    runner = ServiceRunner(Hung)
    await runner.start()
    connection = await workbench.connection()
    await connection.publish(Thing.get_subject("hung"), Thing(machine="m", name="hung", value=1))
    await asyncio.wait_for(runner.service.hang.entered.wait(), 10)
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


async def test_a_retired_runner_stops_and_cannot_start_again(broker) -> None:
    runner = ServiceRunner(Counter, connection=broker)
    statuses: list[str] = []
    runner.on_status_change(statuses.append)
    await runner.start()
    await runner.retire()
    assert runner.status == ServiceStatus.REPLACED == "replaced"
    assert runner.status.description == "replaced by a newer cell"
    assert statuses == ["starting", "running", "stopped", "replaced"]
    assert runner not in workbench.registered()
    with pytest.raises(ServiceReplacedError, match="newest %%service cell"):
        await runner.start()
    assert runner.status == "replaced" and runner.starts == 1
