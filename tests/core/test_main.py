"""FastIoTService.main() in a real process: graceful stop on SIGTERM / SIGINT, exit codes, errors."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import nats.errors
import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.data_models import FastIoTRequest, FastIoTResponse
from fastiot.msg.thing import Thing
from fastiot.nats_server import NatsServer, find_free_port

START_TIMEOUT = 20.0  # a cold interpreter importing pydantic and nats on a busy machine
STOP_TIMEOUT = 15.0

# The service tells the test what it does by publishing acks on v1.thing.main_test.ack.<what>, so the
# test waits for events instead of polling; _stop() leaves its state in a file, after the broker is gone.
SERVICE_MODULE = textwrap.dedent(
    """
    import asyncio
    import json
    import os
    from pathlib import Path

    from fastiot.core import FastIoTRequest, FastIoTResponse, FastIoTService, loop, reply, subscribe
    from fastiot.msg.thing import Thing

    OUT = Path(os.environ["TEST_OUT_DIR"])


    class CountReply(FastIoTResponse):
        things: int


    class CountRequest(FastIoTRequest):
        _reply_cls = CountReply


    class Recorder(FastIoTService):
        drain_timeout = float(os.environ.get("TEST_DRAIN_TIMEOUT", "5"))

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.started = False
            self.things = 0
            self.slow_done = 0
            self.loop_runs = 0

        async def ack(self, what, value=0):
            subject = Thing.get_subject(f"main_test.ack.{what}")
            await self.broker_connection.publish(subject, Thing(machine="main_test", name=what, value=value))

        async def _start(self):
            self.started = True

        async def _stop(self):
            state = {"started": self.started, "things": self.things, "slow_done": self.slow_done,
                     "loop_runs": self.loop_runs, "reason": self.shutdown_reason}
            (OUT / "stopped.json").write_text(json.dumps(state))

        @subscribe(subject=Thing.get_subject("main_test.fast.>"))
        async def on_thing(self, thing):
            self.things += 1
            await self.ack("thing", self.things)

        @subscribe(subject=Thing.get_subject("main_test.slow"))
        async def on_slow(self, thing):
            await self.ack("slow_started")
            await asyncio.sleep(0.5)  # still running when the signal arrives: stopping must wait for it
            self.slow_done += 1

        @subscribe(subject=Thing.get_subject("main_test.hang"))
        async def on_hang(self, thing):
            await self.ack("hang_started")
            await asyncio.Event().wait()  # never returns

        @reply(subject=CountRequest.get_reply_subject("main_test"))
        async def count(self, request):
            return CountReply(things=self.things)

        @loop
        async def tick(self):
            self.loop_runs += 1
            if self.loop_runs == 1:
                await self.ack("ready")  # subscriptions are set up before loops start
            if os.environ.get("TEST_FAIL_LOOP") and self.loop_runs == 2:
                raise RuntimeError("the loop failed on purpose")
            return asyncio.sleep(0.05)


    if __name__ == "__main__":
        Recorder.main()
    """
)


class CountReply(FastIoTResponse):
    things: int


class CountRequest(FastIoTRequest):
    _reply_cls = CountReply


@pytest.fixture
def service_script(tmp_path: Path) -> Path:
    script = tmp_path / "recorder_service.py"
    script.write_text(SERVICE_MODULE)
    (tmp_path / "out").mkdir()
    return script


def start_service(script: Path, servers: str, **extra_env: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTIOT_")}
    env.update(
        FASTIOT_NATS_SERVERS=servers,
        TEST_OUT_DIR=str(script.parent / "out"),
        PYTHONUNBUFFERED="1",
        **extra_env,
    )
    # An empty working directory: main() needs no project layout or configuration files.
    workdir = script.parent / "cwd"
    workdir.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, str(script)],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Services started by a test; killed at the end if a failing test left one running."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=STOP_TIMEOUT)


async def expect_ack(
    acks: asyncio.Queue[Thing], what: str, process: subprocess.Popen[str], timeout: float = STOP_TIMEOUT
) -> Thing:
    try:
        ack = await asyncio.wait_for(acks.get(), timeout)
    except asyncio.TimeoutError:
        if process.poll() is not None:
            raise AssertionError(
                f"the service exited ({process.returncode}): {process.communicate()}"
            ) from None
        raise AssertionError(f"no {what!r} ack from the service within {timeout} s") from None
    assert ack.name == what
    return ack


async def start_and_wait_until_ready(
    broker: NatsBrokerConnection,
    script: Path,
    servers: str,
    processes: list[subprocess.Popen[str]],
    **extra_env: str,
) -> tuple[asyncio.Queue[Thing], subprocess.Popen[str]]:
    """Start the service process and wait for its "ready" ack; returns the queue of its further acks."""
    acks: asyncio.Queue[Thing] = asyncio.Queue()
    await broker.subscribe_msg_queue(Thing.get_subject("main_test.ack.>"), acks)
    await broker.flush()
    process = start_service(script, servers, **extra_env)
    processes.append(process)
    await expect_ack(acks, "ready", process, START_TIMEOUT)
    return acks, process


async def wait_for_exit(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    stdout, stderr = await asyncio.wait_for(asyncio.to_thread(process.communicate), STOP_TIMEOUT)
    return process.returncode, stdout, stderr


def read_state(service_script: Path) -> dict[str, object]:
    return json.loads((service_script.parent / "out" / "stopped.json").read_text())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_main_runs_and_stops_gracefully_on_signal(
    sig: signal.Signals,
    service_script: Path,
    nats_server: NatsServer,
    broker: NatsBrokerConnection,
    processes: list[subprocess.Popen[str]],
) -> None:
    acks, process = await start_and_wait_until_ready(broker, service_script, nats_server.url, processes)

    for n in range(5):
        thing = Thing(machine="m", name=f"s{n}", value=n)
        await broker.publish(Thing.get_subject(f"main_test.fast.s{n}"), thing)
    assert [(await expect_ack(acks, "thing", process)).value for _ in range(5)] == [1, 2, 3, 4, 5]
    reply = await broker.request(CountRequest.get_reply_subject("main_test"), CountRequest(), timeout=5.0)
    assert reply.things == 5

    # A message still being handled when the signal arrives is finished before the service stops.
    await broker.publish(Thing.get_subject("main_test.slow"), Thing(machine="m", name="slow", value=0))
    await expect_ack(acks, "slow_started", process)
    assert process.poll() is None
    process.send_signal(sig)

    returncode, _stdout, stderr = await wait_for_exit(process)
    assert returncode == 0, stderr
    state = read_state(service_script)  # written by _stop()
    assert state["started"] is True
    assert state["things"] == 5
    assert state["slow_done"] == 1
    assert isinstance(state["loop_runs"], int) and state["loop_runs"] >= 1
    assert state["reason"] == f"received {sig.name}"
    assert f"received {sig.name}" in stderr
    assert "Traceback" not in stderr
    # It is gone from the broker too.
    with pytest.raises((nats.errors.NoRespondersError, nats.errors.TimeoutError)):
        await broker.request(CountRequest.get_reply_subject("main_test"), CountRequest(), timeout=0.5)


async def test_main_exits_0_on_sigterm_when_a_handler_never_returns(
    service_script: Path,
    nats_server: NatsServer,
    broker: NatsBrokerConnection,
    processes: list[subprocess.Popen[str]],
) -> None:
    acks, process = await start_and_wait_until_ready(
        broker, service_script, nats_server.url, processes, TEST_DRAIN_TIMEOUT="0.2"
    )
    await broker.publish(Thing.get_subject("main_test.hang"), Thing(machine="m", name="hang", value=0))
    await expect_ack(acks, "hang_started", process)
    process.send_signal(signal.SIGTERM)

    returncode, _stdout, stderr = await wait_for_exit(process)
    assert returncode == 0, stderr
    assert read_state(service_script)["reason"] == "received SIGTERM", "_stop() ran"
    assert "on_hang" in stderr and "WARNING" in stderr, "a warning names the handler"
    assert "Traceback" not in stderr
    with pytest.raises(nats.errors.NoRespondersError):
        await broker.request(CountRequest.get_reply_subject("main_test"), CountRequest(), timeout=5.0)


async def test_main_exits_1_when_a_loop_fails(
    service_script: Path, nats_server: NatsServer, processes: list[subprocess.Popen[str]]
) -> None:
    process = start_service(service_script, nats_server.url, TEST_FAIL_LOOP="1")
    processes.append(process)
    returncode, _stdout, stderr = await wait_for_exit(process)
    assert returncode == 1, stderr
    assert "the loop failed on purpose" in stderr
    state = read_state(service_script)  # stopped gracefully all the same
    assert state["loop_runs"] == 2
    assert "the loop failed on purpose" in str(state["reason"])


async def test_main_with_an_unreachable_broker_exits_1_with_a_clear_message(
    service_script: Path, processes: list[subprocess.Popen[str]]
) -> None:
    url = f"nats://127.0.0.1:{find_free_port()}"  # nothing listens there
    start = time.monotonic()
    process = start_service(service_script, url)
    processes.append(process)
    returncode, _stdout, stderr = await wait_for_exit(process)
    assert returncode == 1, stderr
    assert time.monotonic() - start < STOP_TIMEOUT
    assert f"no NATS server accepted a connection at {url}" in stderr
    assert "FASTIOT_NATS_SERVERS" in stderr  # says what to set
    assert "Traceback" not in stderr
    assert not (service_script.parent / "out" / "stopped.json").exists()  # the service never started


async def test_main_with_a_wrong_credential_exits_1_and_says_so(
    service_script: Path, processes: list[subprocess.Popen[str]]
) -> None:
    async with NatsServer(user="alice", password="s3cret") as server:
        start = time.monotonic()
        process = start_service(
            service_script, server.url, FASTIOT_NATS_USER="alice", FASTIOT_NATS_PASSWORD="wrong"
        )
        processes.append(process)
        returncode, _stdout, stderr = await wait_for_exit(process)
    assert returncode == 1, stderr
    assert time.monotonic() - start < STOP_TIMEOUT
    assert "rejected the credentials" in stderr
    assert "FASTIOT_NATS_PASSWORD" in stderr
    assert "Traceback" not in stderr
