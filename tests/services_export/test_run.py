"""``fastiot-workbench run``: a service module runs with main(); ``--reload`` restarts it on a change."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import nats.errors

from fastiot.core import ReplySubject
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.nats_server import NatsServer

VERSION = ReplySubject(name="v1.run_test_version", msg_cls=dict, reply_cls=dict)

MODULE = """
from fastiot.core import FastIoTService, ReplySubject, reply

VERSION = ReplySubject(name="v1.run_test_version", msg_cls=dict, reply_cls=dict)


class Versioned(FastIoTService):
    @reply(subject=VERSION)
    async def version(self, request: dict) -> dict:
        return {{"version": {version!r}, "pid": __import__("os").getpid()}}
"""


def write(path: Path, version: str, extra: str = "") -> None:
    path.write_text(MODULE.format(version=version) + textwrap.dedent(extra))


def start(nats_server: NatsServer, *args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "FASTIOT_NATS_SERVERS": nats_server.url, "PYTHONPATH": ""}
    return subprocess.Popen(
        [sys.executable, "-m", "fastiot.cli", "run", *args],
        env=env,
        cwd=cwd,
        stderr=subprocess.PIPE,
        text=True,
    )


async def answer_with(
    version: str, process: subprocess.Popen[str], timeout: float = 60, not_pid: int | None = None
) -> dict:
    """The service's answer once it is the one of ``version`` (and not of process ``not_pid``): it may
    still be starting or restarting."""
    broker = await NatsBrokerConnection.connect()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            assert process.poll() is None, (
                f"the command ended: {process.stderr.read() if process.stderr else ''}"
            )
            assert asyncio.get_running_loop().time() < deadline, f"no answer of version {version}"
            try:
                answer = await broker.request(VERSION, {}, timeout=1)
                if answer["version"] == version and answer["pid"] != not_pid:
                    return answer
            except (TimeoutError, nats.errors.NoRespondersError):
                pass
            await asyncio.sleep(0.1)
    finally:
        await broker.close()


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    return process.returncode, stderr


async def test_run_runs_the_module_until_sigterm(nats_server: NatsServer, tmp_path: Path) -> None:
    write(tmp_path / "versioned.py", "v1")
    process = start(nats_server, "versioned.py", cwd=tmp_path)
    try:
        answer = await answer_with("v1", process)
        assert answer["pid"] == process.pid  # no child process without --reload
    finally:
        code, stderr = stop(process)
    assert code == 0, stderr


async def test_run_reload_restarts_the_service_when_the_file_changes(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    module = tmp_path / "versioned.py"
    write(module, "v1")
    process = start(nats_server, f"{module}:Versioned", "--reload", "--poll-interval", "0.1", cwd=tmp_path)
    try:
        first = await answer_with("v1", process)
        write(module, "v2")
        second = await answer_with("v2", process)
        assert second["pid"] != first["pid"] != process.pid  # a fresh child process
        (tmp_path / "helper.py").write_text("X = 1\n")  # a neighbour it may import: watched too
        third = await answer_with("v2", process, not_pid=second["pid"])
        write(module, "v3")
        third = await answer_with("v3", process)
    finally:
        code, stderr = stop(process)
    assert code == 0, stderr
    assert "versioned.py changed; restarting" in stderr
    assert "helper.py changed; restarting" in stderr
    # The service's child process ended with the supervisor.
    try:
        os.kill(third["pid"], 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError("the service's process outlived `run --reload`")


def test_run_names_the_classes_when_a_module_defines_several(nats_server: NatsServer, tmp_path: Path) -> None:
    write(
        tmp_path / "two.py",
        "v1",
        "\nclass Other(Versioned):\n    pass\n\nclass Third(FastIoTService):\n    pass\n",
    )
    process = start(nats_server, "two.py", cwd=tmp_path)
    assert process.wait(60) == 2
    assert process.stderr is not None
    assert "defines several services (Other, Third); name one: two.py:Other" in process.stderr.read()
    process = start(nats_server, "missing.py", cwd=tmp_path)
    assert process.wait(60) == 2
    assert process.stderr is not None
    assert "no file" in process.stderr.read()
