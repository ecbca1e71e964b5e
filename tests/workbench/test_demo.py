"""The demo plant publishes realistic Thing values and answers status requests."""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest

from fastiot import workbench
from fastiot.demo import DemoPlant, MachineStatusRequest, PlantStatusRequest, Press
from fastiot.msg.thing import Thing


@pytest.fixture(autouse=True)
async def clean_workbench():
    yield
    await workbench.shutdown()


async def test_plant_publishes_every_sensor_and_answers(broker) -> None:
    seen: dict[str, Thing] = {}
    all_seen = asyncio.Event()
    expected = {
        f"v1.thing.{m}.{s}"
        for m in ("press_1", "press_2", "oven_1")
        for s in ("temperature", "pressure", "vibration", "state")
    }

    async def on_thing(subject_name: str, thing: Thing) -> None:
        seen[subject_name] = thing
        if expected <= seen.keys():
            all_seen.set()

    await broker.subscribe(Thing.get_subject(">"), on_thing)
    async with DemoPlant(broker, rate=50, seed=1) as plant:
        await asyncio.wait_for(all_seen.wait(), 10)
        assert seen["v1.thing.press_1.temperature"].unit == "degC"
        assert 30 < seen["v1.thing.press_1.temperature"].value < 100
        assert seen["v1.thing.oven_1.state"].value in ("running", "idle", "fault")
        status = await broker.request(
            MachineStatusRequest.get_reply_subject("press_2"), MachineStatusRequest(), 5
        )
        assert status.machine == "press_2"
        assert status.messages_published > 0
        plant_status = await broker.request(PlantStatusRequest.get_reply_subject(), PlantStatusRequest(), 5)
        assert set(plant_status.machines) == {"press_1", "press_2", "oven_1"}
    assert not plant.is_running


def test_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="rate"):
        Press(machine="p", rate=0)
    with pytest.raises(ValueError, match="token"):
        Press(machine="press.1")


async def test_demo_module_runs_as_a_script_and_stops_on_sigterm(nats_server) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fastiot.demo",
        "--rate",
        "20",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert b"demo plant publishing" in line
        assert nats_server.url.encode() in line
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 20) == 0


async def test_ensure_demo_starts_one_only_when_none_answers(broker) -> None:
    from fastiot.demo import ensure_demo

    plant = await ensure_demo(broker, rate=20)
    assert plant is not None and plant.is_running
    try:
        assert await ensure_demo(broker) is None, "a running plant must not be started twice"
    finally:
        await plant.stop()


async def test_a_machine_drops_values_instead_of_crashing_when_the_buffer_is_full() -> None:
    from fastiot.core.broker_connection import BrokerConnectionDummy
    from fastiot.exceptions import PublishBufferFullError

    class FullBuffer(BrokerConnectionDummy):
        async def _send(self, subject, msg, reply=None, headers=None) -> None:
            raise PublishBufferFullError(subject.name, 100, 8192)

        async def publish(self, subject, msg) -> None:
            await self._send(subject, msg)

    press = Press(machine="press_9", rate=1000, broker_connection=FullBuffer())
    async with press:
        for _ in range(100):
            if press.values_dropped >= 8:
                break
            await asyncio.sleep(0.01)
        assert press.shutdown_exception is None
    assert press.values_dropped >= 8
    assert press.messages_published == 0


def test_the_plant_writes_nothing_red_into_a_notebook_cell() -> None:
    """In a real kernel: starting and stopping the plant prints no log lines to the cell's stderr."""
    from tests.kernel_util import execute_cells

    started, stopped = execute_cells(
        ["from fastiot import demo\nplant = await demo.start_demo(rate=5)", "await plant.stop()"], timeout=60
    )
    assert not started.errors and not stopped.errors
    assert started.stderr == "", started.stderr
    assert stopped.stderr == "", stopped.stderr


async def test_a_quiet_plant_still_logs_its_warnings(broker, caplog: pytest.LogCaptureFixture) -> None:
    """Quiet means no life-cycle chatter; a machine's warnings still reach the log."""
    caplog.set_level(logging.DEBUG)
    async with DemoPlant(broker, rate=5) as plant:
        plant.machines[0]._logger.warning("pressure sensor lost")
    texts = [r.getMessage() for r in caplog.records]
    assert "pressure sensor lost" in texts
    assert not any(t.startswith(("started", "stopped")) for t in texts), texts
