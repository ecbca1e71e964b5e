"""fastiot.testlib: populate_test_env and BackgroundProcess, as FastIoT's, without its project layout."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap

import pytest

import fastiot.testlib
from fastiot.core import FastIoTService, ReplySubject, reply
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.env import ALL_SETTINGS
from fastiot.exceptions import BackgroundProcessError
from fastiot.msg.thing import Thing
from fastiot.testlib import BackgroundProcess, populate_test_env
from tests.services import CrashingStart

WHO = ReplySubject(name="v1.testlib.who", msg_cls=dict, reply_cls=dict)
STOPPED = Thing.get_subject("testlib.stopped")


class WhoAmI(FastIoTService):
    """Answers with its process id; says goodbye when it stops."""

    @reply(WHO)
    async def who(self, _msg: dict) -> dict:
        return {"pid": os.getpid()}

    async def _stop(self) -> None:
        assert self.broker_connection is not None
        await self.broker_connection.publish(
            STOPPED, Thing(machine="testlib", name="stopped", value=os.getpid())
        )


# --- populate_test_env --------------------------------------------------------------------------------------


def test_populate_test_env_keeps_a_configured_broker(nats_env: str) -> None:
    assert populate_test_env() == nats_env
    assert os.environ["FASTIOT_NATS_SERVERS"] == nats_env
    assert fastiot.testlib._server is None, "no broker may be started when one is configured"


def test_populate_test_env_ignores_a_deployment_name_with_a_warning(
    nats_env: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert populate_test_env("integration_test") == nats_env
    assert "no FastIoT deployments" in caplog.text


PROCESS_WITHOUT_BROKER = textwrap.dedent(
    """
    import asyncio, json, os
    import fastiot.testlib
    from fastiot.core.broker_connection import NatsBrokerConnection
    from fastiot.testlib import populate_test_env

    async def main():
        url = populate_test_env()
        assert populate_test_env() == url, "one broker per process"
        broker = await NatsBrokerConnection.connect()  # FASTIOT_NATS_* only, as FastIoT tests connect
        await broker.flush()
        await broker.close()
        env = {k: os.environ.get(k) for k in ("FASTIOT_NATS_HOST", "FASTIOT_NATS_PORT")}
        print(json.dumps({"url": url, "pid": fastiot.testlib._server.pid, "env": env}))

    asyncio.run(main())
    """
)


def test_populate_test_env_starts_a_broker_that_lives_as_long_as_the_process(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ALL_SETTINGS}
    # An empty directory: no FastIoT project layout (configure.py, deployments) anywhere.
    done = subprocess.run(
        [sys.executable, "-c", PROCESS_WITHOUT_BROKER],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["url"] == f"nats://127.0.0.1:{report['env']['FASTIOT_NATS_PORT']}"
    assert report["env"]["FASTIOT_NATS_HOST"] == "127.0.0.1"
    # The process has ended, and its broker with it (stopped and reaped at exit).
    with pytest.raises(ProcessLookupError):
        os.kill(report["pid"], 0)


# --- BackgroundProcess --------------------------------------------------------------------------------------


async def test_background_process_runs_the_service_in_another_process(broker: NatsBrokerConnection) -> None:
    goodbyes: asyncio.Queue[Thing] = asyncio.Queue()
    await broker.subscribe_msg_queue(STOPPED, goodbyes)  # type: ignore[arg-type]
    async with BackgroundProcess(WhoAmI, startup_time=0) as background:
        # Entered once the service has started: its @reply answers at once.
        answer = await broker.request(WHO, {}, timeout=10)
        assert answer["pid"] == background.process.pid != os.getpid()
    # Left once the process has ended, after a graceful stop (SIGTERM: _stop ran, exit code 0).
    assert background.exitcode == 0
    goodbye = await asyncio.wait_for(goodbyes.get(), 10)
    assert goodbye.value == answer["pid"]


async def test_background_process_reports_the_services_handler_counters(broker: NatsBrokerConnection) -> None:
    async with BackgroundProcess(WhoAmI, startup_time=0) as background:
        assert await asyncio.to_thread(background.handler_counts) == {"who": {"received": 0, "errors": 0}}
        await broker.request(WHO, {}, timeout=10)
        await broker.request(WHO, {}, timeout=10)
        assert await asyncio.to_thread(background.handler_counts) == {"who": {"received": 2, "errors": 0}}
    with pytest.raises(BackgroundProcessError, match="inside the `with` block"):
        background.handler_counts()


def test_background_process_as_in_fastiot_with_a_plain_with(nats_env: str) -> None:
    with BackgroundProcess(WhoAmI) as background:  # FastIoT's defaults: startup_time=0.2, stop_time=0.05
        answer = asyncio.run(_ask_who())
    assert answer["pid"] == background.process.pid
    assert background.exitcode == 0


async def _ask_who() -> dict:
    broker = await NatsBrokerConnection.connect()
    try:
        return await broker.request(WHO, {}, timeout=10)
    finally:
        await broker.close()


def test_a_service_that_fails_to_start_raises_with_its_exit_code(nats_env: str) -> None:
    with pytest.raises(
        BackgroundProcessError, match="CrashingStart ended with exit code 1 before it started"
    ):
        with BackgroundProcess(CrashingStart, startup_time=0):
            pass


def test_a_service_another_process_cannot_import_is_refused_up_front() -> None:
    class Local(FastIoTService):
        pass

    with pytest.raises(BackgroundProcessError, match=r"top level of a \.py module"):
        BackgroundProcess(Local).start()


def test_background_process_needs_a_service_class() -> None:
    with pytest.raises(TypeError, match="FastIoTService subclass"):
        BackgroundProcess(WhoAmI())  # type: ignore[arg-type]
