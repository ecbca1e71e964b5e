"""From a cell to a file: the exported module runs, and the pytest file written beside it passes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import nats.errors
import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import ServiceExportError
from fastiot.services import export_service
from fastiot.services.export import module_source
from tests.services_export.generated import run_generated_test

IMPORTS = """
%load_ext fastiot_widgets
import math
from fastiot import workbench
from fastiot.core import FastIoTPublish, FastIoTRequest, FastIoTResponse, FastIoTService, reply, subscribe
from fastiot.msg.thing import Thing
import pandas as pd
"""
CONNECT = "broker = await workbench.connection()\nprint(broker)\n"
MODELS = """
class ExportAlarm(FastIoTPublish):
    machine: str
    value: float


class ExportCount(FastIoTResponse):
    alarms: int
    threshold: float


class ExportCountRequest(FastIoTRequest):
    _reply_cls = ExportCount


class Unused(FastIoTPublish):
    x: int


LIMIT = math.floor(56.5)
"""
SERVICE = """
import asyncio

class ExportWatch(FastIoTService):
    \"\"\"Counts press temperatures above a limit.\"\"\"

    THRESHOLD = LIMIT

    async def _start(self):
        self.alarms = 0

    @subscribe(subject=Thing.get_subject("*.export_temperature"))
    async def on_temperature(self, subject_name: str, thing: Thing) -> None:
        if thing.value > self.THRESHOLD:
            self.alarms += 1
            alarm = ExportAlarm(machine=thing.machine, value=thing.value)
            await self.broker_connection.publish(ExportAlarm.get_subject(), alarm)

    @reply(subject=ExportCountRequest.get_reply_subject())
    async def count(self, request: ExportCountRequest) -> ExportCount:
        return ExportCount(alarms=self.alarms, threshold=self.THRESHOLD)
"""
HISTORY = [IMPORTS, CONNECT, MODELS]


def defined_service() -> type[Any]:
    """The cells run as a notebook runs them (without the magic and the connection)."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(IMPORTS.replace("%load_ext fastiot_widgets", ""), namespace)
    exec(MODELS, namespace)
    exec(SERVICE, namespace)
    return namespace["ExportWatch"]  # type: ignore[no-any-return]


def child_env() -> dict[str, str]:
    # The repository on the path only for `tests`; the exported files import fastiot as any user's would.
    return {**os.environ, "PYTHONPATH": ""}


def test_the_module_holds_the_imports_and_definitions_the_class_uses() -> None:
    source, unresolved = module_source("ExportWatch", SERVICE, HISTORY)
    assert unresolved == ()
    assert "import math" in source  # used by LIMIT, which the class uses
    assert "from fastiot.msg.thing import Thing" in source
    assert "import asyncio" in source  # the cell's own imports are kept
    assert "pandas" not in source and "Unused" not in source and "from fastiot import workbench" not in source
    assert "await" not in source.split("class ExportWatch")[0]  # the connection cell is no definition
    # Definitions come before the class, in notebook order, and a __main__ calls main().
    assert (
        source.index("class ExportCount(")
        < source.index("class ExportCountRequest(")
        < source.index("class ExportWatch(")
    )
    assert source.rstrip().endswith('if __name__ == "__main__":\n    main()')
    compile(source, "exported.py", "exec")


def test_a_name_no_cell_binds_is_imported_from_the_namespace_or_reported() -> None:
    from fastiot.msg.thing import Thing

    cell = "class Svc(FastIoTService):\n    model = Thing\n"
    from fastiot.core import FastIoTService

    source, unresolved = module_source(
        "Svc", cell, namespace={"FastIoTService": FastIoTService, "Thing": Thing}
    )
    assert "from fastiot.msg.thing import Thing" in source
    assert "from fastiot.core.service import FastIoTService" in source
    assert unresolved == ()
    _, unresolved = module_source("Svc", cell)
    assert unresolved == ("FastIoTService", "Thing")


def test_the_exported_module_runs_as_a_process(tmp_path: Path, nats_env: str) -> None:
    exported = export_service(defined_service(), tmp_path / "export_watch.py", cell=SERVICE, history=HISTORY)
    assert (
        exported.module == tmp_path / "export_watch.py" and exported.test == tmp_path / "test_export_watch.py"
    )
    process = subprocess.Popen(
        [sys.executable, str(exported.module)],
        env=child_env(),
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        answer = _ask_count(process)
        assert answer == {"alarms": 0, "threshold": 56.0}
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr


def _ask_count(process: subprocess.Popen[str]) -> dict[str, Any]:
    import asyncio

    from fastiot.core import ReplySubject

    async def ask() -> dict[str, Any]:
        broker = await NatsBrokerConnection.connect()
        try:
            subject = ReplySubject(name="v1.export_count_request", msg_cls=dict, reply_cls=dict)
            answers: list[dict[str, Any]] = []

            async def answered() -> bool:
                try:
                    answers.append(await broker.request(subject, {}, timeout=1))
                except (TimeoutError, nats.errors.NoRespondersError):  # not subscribed yet
                    assert process.poll() is None, "the exported module ended"
                    await asyncio.sleep(0.1)
                    return False
                return True

            deadline = asyncio.get_running_loop().time() + 60
            while not await answered():
                assert asyncio.get_running_loop().time() < deadline, "the exported service never answered"
            return answers[0]
        finally:
            await broker.close()

    return asyncio.run(ask())


def test_the_generated_test_passes_under_pytest(tmp_path: Path, nats_env: str) -> None:
    exported = export_service(defined_service(), tmp_path / "export_watch.py", cell=SERVICE, history=HISTORY)
    result = run_generated_test(exported.test, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_recorded_messages_are_replayed_by_the_generated_test(tmp_path: Path, nats_env: str) -> None:
    recorded = [
        (
            "v1.thing.press_1.export_temperature",
            {"machine": "press_1", "name": "export_temperature", "value": 80.0},
        ),
        ("v1.thing.press_2.other", {"machine": "press_2", "name": "other", "value": 1.0}),
    ]
    exported = export_service(
        defined_service(),
        tmp_path / "watch.py",
        cell=SERVICE,
        history=HISTORY,
        messages=recorded,
        recording="plant",
    )
    text = exported.test.read_text()
    assert "the first ones of the recording 'plant'" in text
    assert "v1.thing.press_1.export_temperature" in text and "v1.thing.press_2.other" not in text
    result = run_generated_test(exported.test, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_bad_exports_are_refused_with_what_to_do(tmp_path: Path) -> None:
    service = defined_service()
    with pytest.raises(ServiceExportError, match="defines no class ExportWatch"):
        export_service(service, tmp_path / "a.py", cell="x = 1\n", history=HISTORY)
    with pytest.raises(ServiceExportError, match="no module name"):
        export_service(service, tmp_path / "export-watch.py", cell=SERVICE, history=HISTORY)
    export_service(service, tmp_path / "w.py", cell=SERVICE, history=HISTORY)
    with pytest.raises(ServiceExportError, match="exists; pass overwrite=True"):
        export_service(service, tmp_path / "w.py", cell=SERVICE, history=HISTORY)
    export_service(service, tmp_path / "w.py", cell=SERVICE, history=HISTORY, overwrite=True)


async def test_recorded_messages_are_the_first_ones_on_each_handlers_subject(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    from fastiot.core.serialization import pack
    from fastiot.history.recording import Recording
    from fastiot.services.recorded import recorded_messages

    name = "export_" + prefix.rsplit(".", 1)[-1]
    rec = await Recording.start(
        name, ["v1.thing.*.export_temperature", "v1.thing.*.other"], connection=broker
    )
    try:
        js = broker.client.jetstream()
        for i in range(5):
            for sensor in ("export_temperature", "other"):
                payload = {"machine": f"press_{i}", "name": sensor, "value": 50.0 + i}
                await js.publish(f"v1.thing.press_{i}.{sensor}", pack(payload), timeout=10)
        await js.publish("v1.thing.bad.export_temperature", pack({"not": "a thing"}), timeout=10)
        found = await recorded_messages(defined_service(), name, per_handler=3, connection=broker)
    finally:
        await rec.delete(connection=broker)
    assert [(s, p["value"]) for s, p in found] == [
        ("v1.thing.press_0.export_temperature", 50.0),
        ("v1.thing.press_1.export_temperature", 51.0),
        ("v1.thing.press_2.export_temperature", 52.0),
    ]


def test_the_generated_test_fails_when_a_handler_fails(tmp_path: Path, nats_env: str) -> None:
    broken = SERVICE.replace("if thing.value > self.THRESHOLD:", "if thing.value > self.no_such_attribute:")
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(IMPORTS.replace("%load_ext fastiot_widgets", ""), namespace)
    exec(MODELS, namespace)
    exec(broken, namespace)
    exported = export_service(
        namespace["ExportWatch"], tmp_path / "broken_watch.py", cell=broken, history=HISTORY
    )
    result = run_generated_test(exported.test, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "'on_temperature'" in result.stdout and "'errors': 3" in result.stdout
