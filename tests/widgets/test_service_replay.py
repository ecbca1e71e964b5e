"""%%service --replay and its control: a service on a private broker fed from a recording."""

from __future__ import annotations

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.history.replay_broker import ReplayBroker
from fastiot.runner import ServiceStatus
from fastiot_widgets.replay_view import ReplayServiceControl
from tests.history.test_replay_broker import Counter, RecordedThings, record_things, things
from tests.kernel_util import execute_cells
from tests.waits import wait_for_trait

__all__ = ["things"]  # the fixture, imported to be used here


async def test_the_control_shows_the_replay_beside_the_handler_counters(
    things: RecordedThings, broker: NatsBrokerConnection
) -> None:
    control = ReplayServiceControl(
        Counter, ReplayBroker(things.recording.name, speed=None, connection=broker)
    )
    assert (
        things.recording.name in control.replay_title.value and "private broker" in control.replay_title.value
    )

    await control.start()
    try:
        view = control.replay_view
        await wait_for_trait(view, "state", lambda s: s == "finished")
        assert view.published == view.total == things.count
        control.refresh()
        assert control.handler_counts["on_thing"]["received"] == things.count
        beside = [
            c for c in control.children if getattr(c, "children", None) == (control.counters_view, view)
        ]
        assert beside, "the progress sits in one row with the handler counters"
        server = control.replay_broker.server
        assert server is not None and server.url in control.replay_title.value
    finally:
        await control.stop()

    assert control.status is ServiceStatus.STOPPED and not server.is_running
    assert "into a private broker" in control.replay_title.value


async def test_stopping_the_control_stops_a_running_replay(broker: NatsBrokerConnection) -> None:
    recorded = await record_things(broker, 3, spacing=0.05)
    try:
        control = ReplayServiceControl(Counter, ReplayBroker(recorded.recording, speed=0.001))
        await control.start()
        await wait_for_trait(control.replay_view, "published", lambda n: n == 1)

        control.stop_button.click()
        await control.wait_idle()

        await wait_for_trait(control.replay_view, "state", lambda s: s == "stopped")
        assert control.status is ServiceStatus.STOPPED and control.replay_broker.server is None
    finally:
        await recorded.recording.delete()


SETUP = """
import asyncio, uuid
import fastiot_widgets
from fastiot import workbench
from fastiot.core import FastIoTService, subscribe
from fastiot.history import Recording
from fastiot.msg.thing import Thing

broker = await workbench.connection()
machine = "m" + uuid.uuid4().hex[:10]
recording = await Recording.start("kernel_" + machine, Thing.get_subject(machine + ".>"))
for i in range(20):
    thing = Thing(machine=machine, name="t", value=i)
    await broker.publish(Thing.get_subject(machine + ".temperature"), thing)
while (await recording.info()).messages < 20:
    await asyncio.sleep(0.02)
print("recorded", (await recording.info()).messages)
"""

SERVICE = """%%service --replay {recording.name} --speed max
class Watcher(FastIoTService):
    async def _start(self):
        self.values = []

    @subscribe(subject=Thing.get_subject(">"))
    async def on_thing(self, thing: Thing) -> None:
        self.values.append(thing.value)
"""

CHECK = """
from fastiot_widgets.magics import running_services

(runner,) = running_services("Watcher")
await runner.environment.replay.wait(timeout=20)
for _ in range(500):
    if len(runner.service.values) == 20:
        break
    await asyncio.sleep(0.02)
print("values", runner.service.values == list(range(20)))
print("private", runner.environment.server.url != broker.connected_url)
server = runner.environment.server
"""

STOP = """
%service_stop Watcher
print("server stopped", not server.is_running, runner.environment.server is None)
print("replay", runner.environment.replay.state.value)
await recording.delete()
"""


def test_service_replay_magic_runs_the_cell_against_a_private_broker() -> None:
    setup, service, check, stop = execute_cells([SETUP, SERVICE, CHECK, STOP])

    assert "recorded 20" in setup.text, setup
    assert not service.errors, service
    assert "ServiceControl(Watcher, running)" in service.text
    assert "values True" in check.text and "private True" in check.text, check
    assert "server stopped True True" in stop.text and "replay finished" in stop.text, stop


BAD_OPTIONS = [
    ("--replay plant --speed fast", "--speed takes a number"),
    ("--speed 10", "--speed and --since go with --replay NAME"),
    ("--replay plant --since soon", "--since: 'soon' is not a duration"),
    ("--replay plant --speed 0", "speed must be a positive number"),
    ("--replay no.dots", "InvalidRecordingError"),
]


def test_bad_replay_options_fail_before_the_cell_runs() -> None:
    cells = ["%load_ext fastiot_widgets"]
    cells += [f"%%service {line}\nran = True" for line, _error in BAD_OPTIONS]
    cells.append("print('ran' in dir())")

    results = execute_cells(cells, allow_errors=True)

    for (line, error), result in zip(BAD_OPTIONS, results[1:-1], strict=True):
        said = result.shown + " ".join(result.errors)
        assert error in said, f"%%service {line}: {said}"
    assert results[-1].text.strip() == "False", "no cell body ran"
