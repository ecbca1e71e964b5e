"""One user's on-demand kernels share one broker, which requires its own login and stops after them.

Kernels are played by plain Python processes that take the on-demand path (``workbench.connection()``
with nothing configured) or call ``shared_broker.join()``, as two notebooks in a JupyterLab not started
by ``fastiot-workbench`` would.
"""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.env import NATS_CONNECTION_SETTINGS
from fastiot.exceptions import BrokerAuthenticationError
from fastiot.shared_broker import SharedBroker
from tests.waits import wait_until_gone

# A kernel: connects on demand, says where, round-trips a value with the other kernel, waits for stdin.
KERNEL = textwrap.dedent(
    """
    import asyncio, sys
    from fastiot import workbench
    from fastiot.msg.thing import Thing

    workbench.accepts_connections = lambda *args, **kwargs: False  # never a NATS on localhost:4222

    async def main():
        broker = await workbench.connection()
        server = workbench.started_server()
        print("broker", server.pid, server.url, flush=True)
        got = asyncio.Queue()

        async def on_thing(thing):
            await got.put(thing)

        await broker.subscribe(Thing.get_subject("shared.>"), on_thing)
        await broker.flush()
        print("subscribed", flush=True)
        line = await asyncio.to_thread(sys.stdin.readline)
        if line.strip() == "publish":
            await broker.publish(Thing.get_subject("shared.value"), Thing(machine="a", name="value", value=1))
            await broker.flush()
        else:
            print("received", (await asyncio.wait_for(got.get(), 10)).value, flush=True)
        await workbench.shutdown()

    asyncio.run(main())
    """
)


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in NATS_CONNECTION_SETTINGS}


def _kernel() -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", KERNEL],
        env=_clean_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _read_line(process: subprocess.Popen[str], marker: str) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()  # bounded by the test's timeout; the kernel prints or exits
    assert line.startswith(marker), (line, process.stderr.read() if process.poll() is not None else "")
    return line


@pytest.mark.timeout(90)
def test_two_kernels_share_one_broker_that_stops_after_both_left(shared_broker_dir: Path) -> None:
    first, second = _kernel(), _kernel()
    try:
        _, first_pid, first_url = _read_line(first, "broker").split()
        _, second_pid, second_url = _read_line(second, "broker").split()
        assert (first_pid, first_url) == (second_pid, second_url), "two kernels, two brokers"
        _read_line(first, "subscribed")
        _read_line(second, "subscribed")
        # What one kernel publishes, the other receives: one broker.
        assert second.stdin is not None and first.stdin is not None
        first.stdin.write("receive\n")
        first.stdin.flush()
        second.stdin.write("publish\n")
        second.stdin.flush()
        assert second.wait(30) == 0, second.stderr.read() if second.stderr else ""
        assert _read_line(first, "received").split() == ["received", "1"]
        assert first.wait(30) == 0
        wait_until_gone(int(first_pid), 10, "the shared nats-server to stop after the last kernel left")
        assert not (shared_broker_dir / "broker.json").exists()
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.kill()
                process.wait(10)


JOIN = textwrap.dedent(
    """
    import sys
    from fastiot import shared_broker
    broker = shared_broker.join()
    print(broker.pid, broker.supervisor_pid, flush=True)
    sys.stdin.readline()
    """
)


async def _refused_then_served(broker: SharedBroker) -> None:
    # nats://127.0.0.1:PORT without the login is refused; with it, it is served.
    with pytest.raises(BrokerAuthenticationError):
        await NatsBrokerConnection.connect(servers=broker.url)
    conn = await NatsBrokerConnection.connect(servers=broker.url, user=broker.user, password=broker.password)
    await conn.close()


@pytest.mark.timeout(90)
def test_concurrent_starts_make_one_broker_with_a_private_login(shared_broker_dir: Path) -> None:
    kernels = [
        subprocess.Popen(
            [sys.executable, "-c", JOIN],
            env=_clean_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        seen = {kernel.stdout.readline().strip() for kernel in kernels if kernel.stdout is not None}
        assert len(seen) == 1, f"concurrent starts made several brokers: {seen}"
        supervisors = [
            p
            for p in psutil.process_iter(["cmdline"])
            if "fastiot.shared_broker" in (p.info["cmdline"] or [])
            and str(shared_broker_dir) in p.info["cmdline"]
        ]
        assert len(supervisors) == 1, supervisors

        # The login is in a file only this user can read, in a folder only this user can enter.
        info = shared_broker_dir / "broker.json"
        assert stat.S_IMODE(shared_broker_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE(info.stat().st_mode) == 0o600
        broker = SharedBroker(**json.loads(info.read_text()))
        assert broker.password not in repr(broker)
        asyncio.run(_refused_then_served(broker))
    finally:
        for kernel in kernels:
            kernel.communicate("\n", timeout=30)
    wait_until_gone(broker.pid, 10, "the shared nats-server to stop after the last kernel left")
