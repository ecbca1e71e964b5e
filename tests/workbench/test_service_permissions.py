"""A service whose subscription the server refuses does not say running; a refused publish is counted.

Against the locked-down server of ``tests/lockdown.py``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fastiot.core import FastIoTService, loop, subscribe
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import ServiceStartError
from fastiot.msg.thing import Thing
from fastiot.nats_server import NatsServer
from fastiot.runner import ServiceRunner, ServiceStatus
from tests.lockdown import url_for
from tests.waits import WAIT, wait_until


class WatchesAnotherMachine(FastIoTService):
    """Subscribes to a machine the ``press1`` user may not read."""

    @subscribe(subject=Thing.get_subject("oven_1.temp"))
    async def on_oven(self, thing: Thing) -> None:
        pass


class SendsCommands(FastIoTService):
    """Reads its own machine and publishes a command the ``press1`` user may not send."""

    @subscribe(subject=Thing.get_subject("press_1.temp"))
    async def on_temp(self, thing: Thing) -> None:
        pass

    @loop
    async def command(self) -> asyncio.Future[None]:
        assert self.broker_connection is not None
        await self.broker_connection.publish(
            Thing.get_subject("press_1.cmd"), Thing(name="cmd", machine="press_1", value=1)
        )
        return asyncio.sleep(0.05)


async def test_a_refused_subscription_crashes_the_service_with_the_reason(
    press1: NatsBrokerConnection,
) -> None:
    runner = ServiceRunner(WatchesAnotherMachine, connection=press1, echo_log=False)
    with pytest.raises(ServiceStartError) as caught:
        await asyncio.wait_for(runner.start(), WAIT)
    assert runner.status == ServiceStatus.CRASHED
    assert "v1.thing.oven_1.temp" in str(caught.value)
    assert runner.error is not None and "PermissionDeniedError" in runner.error
    assert press1.is_connected  # the refusal did not cost the connection


async def test_a_refused_publish_of_a_handler_is_counted_and_logged(press1: NatsBrokerConnection) -> None:
    runner = ServiceRunner(SendsCommands, connection=press1, echo_log=False)
    await asyncio.wait_for(runner.start(), WAIT)
    try:
        await wait_until(lambda: runner.refused_publishes >= 2, WAIT, "refused publishes")
        assert runner.status == ServiceStatus.RUNNING  # refused publishes do not stop it
        assert any("refused" in line and "v1.thing.press_1.cmd" in line for line in runner.log_lines)
    finally:
        await runner.stop()


def test_main_exits_1_when_a_subscription_is_refused(locked_down: NatsServer, tmp_path: Path) -> None:
    script = tmp_path / "svc.py"
    script.write_text(
        textwrap.dedent(
            """
            from fastiot.core import FastIoTService, subscribe
            from fastiot.msg.thing import Thing

            class WatchesAnotherMachine(FastIoTService):
                @subscribe(subject=Thing.get_subject("oven_1.temp"))
                async def on_oven(self, thing: Thing) -> None:
                    pass

            if __name__ == "__main__":
                WatchesAnotherMachine.main()
            """
        )
    )
    env = {"PATH": "/usr/bin:/bin", "FASTIOT_NATS_SERVERS": url_for(locked_down, "press1")}
    process = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=WAIT * 3
    )
    assert process.returncode == 1, process.stderr
    assert "v1.thing.oven_1.temp" in process.stderr
    assert "administrator" in process.stderr
    assert "Traceback" not in process.stderr
