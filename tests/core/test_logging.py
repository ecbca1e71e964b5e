"""Service logs reach the root logger (assertLogs, caplog, a program's own handlers), printed once."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import unittest
import unittest.mock
from collections.abc import Iterator

import pytest

from fastiot.core import FastIoTService, loop
from fastiot.core.broker_connection import BrokerConnectionDummy
from fastiot.core.logger import ConsoleHandler, setup_logger
from tests.kernel_util import execute_cells


class Chatty(FastIoTService):
    """Logs one line from its loop, then idles."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.logged = asyncio.Event()

    @loop
    async def chat(self):
        if not self.logged.is_set():
            self._logger.info("chatty says hello")
            self.logged.set()
        return asyncio.sleep(10)


class Whispering(FastIoTService):
    """Logs one debug and one info line when it starts."""

    async def _start(self) -> None:
        self._logger.debug("whispering in debug")
        self._logger.info("whispering in info")


async def _run_whispering() -> None:
    async with Whispering(broker_connection=BrokerConnectionDummy()):
        pass


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")


@pytest.fixture
def root_recorder() -> Iterator[Recorder]:
    recorder = Recorder()
    root = logging.getLogger()
    root.addHandler(recorder)
    yield recorder
    root.removeHandler(recorder)


@pytest.fixture
def console() -> Iterator[io.StringIO]:
    """The stream fastiot's console handler prints to, for the test."""
    setup_logger()  # level from the environment: INFO
    [handler] = [h for h in logging.getLogger("fastiot").handlers if isinstance(h, ConsoleHandler)]
    stream = io.StringIO()
    old = handler.setStream(stream)
    yield stream
    handler.setStream(old)


async def test_a_services_log_reaches_the_root_logger(root_recorder: Recorder) -> None:
    async with Chatty(broker_connection=BrokerConnectionDummy()) as service:
        await asyncio.wait_for(service.logged.wait(), 10)
    assert "fastiot.Chatty: chatty says hello" in root_recorder.lines


class TestAssertLogs(unittest.IsolatedAsyncioTestCase):
    """unittest's assertLogs() on the root logger, as FastIoT's own tests use it."""

    async def test_assert_logs_sees_the_service_logger(self) -> None:
        with self.assertLogs(level="INFO") as capture:
            async with Chatty(broker_connection=BrokerConnectionDummy()) as service:
                await asyncio.wait_for(service.logged.wait(), 10)
        self.assertEqual(1, sum("chatty says hello" in line for line in capture.output))


class TestAssertLogsLowersTheLevel(unittest.IsolatedAsyncioTestCase):
    """assertLogs(level=...) lowers the root logger's level: fastiot's loggers follow it, as in FastIoT."""

    async def test_assert_logs_debug_sees_the_service_loggers_debug_lines(self) -> None:
        with self.assertLogs(level="DEBUG") as capture:
            await _run_whispering()
        self.assertIn("DEBUG:fastiot.Whispering:whispering in debug", capture.output)

    async def test_assert_logs_info_sees_info_lines_under_fastiot_log_level_warning(self) -> None:
        self.addCleanup(setup_logger)  # back to the level of the test run's environment
        with unittest.mock.patch.dict(os.environ, {"FASTIOT_LOG_LEVEL": "WARNING"}):
            with self.assertLogs(level="INFO") as capture:
                await _run_whispering()
        self.assertIn("INFO:fastiot.Whispering:whispering in info", capture.output)
        self.assertNotIn("DEBUG:fastiot.Whispering:whispering in debug", capture.output)


async def test_caplog_at_debug_sees_the_service_loggers_debug_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await _run_whispering()
    assert ("fastiot.Whispering", logging.DEBUG, "whispering in debug") in caplog.record_tuples


async def test_the_console_shows_only_fastiot_log_level_when_the_root_level_is_lowered(
    console: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await _run_whispering()
    assert "whispering in info" in console.getvalue()
    assert "whispering in debug" not in console.getvalue()
    assert "whispering in debug" in caplog.text


def test_without_a_lowered_root_level_debug_lines_are_not_made(root_recorder: Recorder) -> None:
    setup_logger("quiet").debug("not made")  # the root logger at its default, WARNING
    assert "fastiot.quiet: not made" not in root_recorder.lines


def test_a_line_is_printed_once_without_any_logging_setup(console: io.StringIO) -> None:
    setup_logger("once").info("only once")
    assert console.getvalue().count("only once") == 1
    assert "INFO     fastiot.once: only once" in console.getvalue()


def test_a_root_handler_on_the_same_console_prints_it_instead(console: io.StringIO) -> None:
    # As after logging.basicConfig() in a notebook: root prints to the console fastiot prints to.
    root_handler = logging.StreamHandler(console)
    logging.getLogger().addHandler(root_handler)
    try:
        setup_logger("once").info("printed by root")
    finally:
        logging.getLogger().removeHandler(root_handler)
    assert console.getvalue().count("printed by root") == 1


def test_a_root_handler_that_filters_the_level_leaves_the_line_to_fastiot(console: io.StringIO) -> None:
    root_handler = logging.StreamHandler(console)
    root_handler.setLevel(logging.ERROR)
    logging.getLogger().addHandler(root_handler)
    try:
        setup_logger("once").info("info line")
    finally:
        logging.getLogger().removeHandler(root_handler)
    assert console.getvalue().count("info line") == 1


def test_a_capturing_root_handler_does_not_silence_the_console(
    console: io.StringIO, root_recorder: Recorder
) -> None:
    setup_logger("once").warning("seen twice, printed once")
    assert console.getvalue().count("seen twice, printed once") == 1
    assert "fastiot.once: seen twice, printed once" in root_recorder.lines


def test_setup_logger_adds_one_console_handler() -> None:
    for _ in range(3):
        setup_logger("again")
    handlers = logging.getLogger("fastiot").handlers
    assert sum(isinstance(h, ConsoleHandler) for h in handlers) == 1
    assert logging.getLogger("fastiot").propagate


NOTEBOOK = [
    """
from fastiot.core import FastIoTService
from fastiot.core.broker_connection import BrokerConnectionDummy

class Hello(FastIoTService):
    async def _start(self):
        self._logger.info("hello from the service")
""",
    "async with Hello(broker_connection=BrokerConnectionDummy()):\n    pass",
    "import logging\nlogging.basicConfig()\n"
    "async with Hello(broker_connection=BrokerConnectionDummy()):\n    pass",
]


def test_a_notebook_prints_each_service_line_once() -> None:
    """In a real kernel: without any logging setup, and after logging.basicConfig()."""
    _, plain, configured = execute_cells(NOTEBOOK, timeout=60)
    assert not plain.errors and not configured.errors
    for output in (plain.shown, configured.shown):
        assert output.count("hello from the service") == 1, output
        assert output.count("started Hello") == 1, output
