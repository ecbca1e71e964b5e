"""One rule for the connection an API uses when it is given none (``workbench.use_connection``).

The shared connection of the running loop: in a notebook (and once ``workbench.connection()`` was
called) it stays open; in a plain script the last user closes it. pytest runs these tests as a plain
script; the notebook case is also run in a real kernel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from fastiot import workbench
from fastiot.capture import MessageCapture
from fastiot.core import FastIoTService
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.serialization import pack
from fastiot.history import Bucket
from fastiot.nats_server import NatsServer
from fastiot.runner import ServiceRunner
from fastiot.subjects import SubjectIndex
from tests.kernel_util import execute_cells

Opened = list[tuple[NatsBrokerConnection, str]]


@pytest.fixture(autouse=True)
async def clean_workbench():
    yield
    await workbench.shutdown()


class Idle(FastIoTService):
    pass


async def test_in_a_script_apis_share_one_connection_and_the_last_user_closes_it(
    prefix: str, nats_server: NatsServer, opened_connections: Opened
) -> None:
    capture = await MessageCapture(f"{prefix}.>").start()
    index = await SubjectIndex(f"{prefix}.>").start()
    runner = ServiceRunner(Idle)
    await runner.start()
    shared = capture.connection
    assert isinstance(shared, NatsBrokerConnection)
    assert index.connection is shared and runner.service.broker_connection is shared
    assert [url for _, url in opened_connections] == [nats_server.url], "one connection for all of them"
    assert {capture, index, runner} <= set(workbench.registered())
    await shared.publish_raw(f"{prefix}.a", pack({"v": 1}))
    await capture.wait_for(1, timeout=10)
    await capture.stop()
    await runner.stop()
    assert shared.state == "connected", "the index still uses it"
    await index.stop()
    assert shared.state == "closed", "a script's last user closes the shared connection"
    assert workbench.registered() == []
    # The next user opens it again.
    async with MessageCapture(f"{prefix}.>") as again:
        assert again.connection is not shared and again.connection.state == "connected"
    assert len(opened_connections) == 2 and all(c.state == "closed" for c, _ in opened_connections)


async def test_a_given_connection_is_used_and_left_open(broker: NatsBrokerConnection, prefix: str) -> None:
    async with MessageCapture(f"{prefix}.>", broker) as capture:
        assert capture.connection is broker
        assert capture not in workbench.registered(), "the caller owns what runs on its connection"
    lease = await workbench.use_connection(broker)
    assert lease.connection is broker and not lease.is_shared
    await lease.release()
    assert broker.state == "connected"


async def test_after_workbench_connection_the_shared_one_stays_open_until_shutdown(prefix: str) -> None:
    kept = await workbench.connection()
    async with MessageCapture(f"{prefix}.>") as capture:
        assert capture.connection is kept
    assert kept.state == "connected"
    assert await workbench.connection() is kept
    await workbench.shutdown()
    assert kept.state == "closed"


async def test_in_a_notebook_the_shared_connection_outlives_its_users(
    prefix: str, monkeypatch: pytest.MonkeyPatch, opened_connections: Opened
) -> None:
    monkeypatch.setattr(workbench, "in_notebook", lambda: True)
    async with MessageCapture(f"{prefix}.>") as capture:
        shared = capture.connection
    async with workbench.use_connection() as broker:
        assert broker is shared
    assert shared.state == "connected", "the next cell uses it again"
    assert len(opened_connections) == 1


async def test_a_failed_start_gives_the_shared_connection_back(opened_connections: Opened) -> None:
    watch = Bucket("no_such_bucket_anywhere").watch()
    with pytest.raises(Exception, match="no_such_bucket_anywhere"):
        await watch.start()
    assert watch not in workbench.registered()
    assert opened_connections and all(c.state == "closed" for c, _ in opened_connections)


async def test_async_with_use_connection_releases_at_the_end_of_the_block(opened_connections: Opened) -> None:
    async with workbench.use_connection() as broker:
        assert broker.state == "connected"
    assert broker.state == "closed"


# A user's plain script: captures and an index without a connection, then blocking calls.
PLAIN_SCRIPT = textwrap.dedent(
    """
    import asyncio
    import warnings

    from fastiot import workbench
    from fastiot.capture import MessageCapture
    from fastiot.core.serialization import pack
    from fastiot.subjects import SubjectIndex

    warnings.simplefilter("error", ResourceWarning)


    def reentrant(loop):
        try:
            loop.run_until_complete(asyncio.sleep(0))
            return True
        except RuntimeError:
            return False


    async def main():
        loop = asyncio.get_running_loop()
        async with MessageCapture("v1.script.>") as capture, SubjectIndex("v1.script.>") as index:
            shared = capture.connection
            print("shared", shared is index.connection, flush=True)
            await shared.publish_raw("v1.script.a", pack({"v": 1}))
            await capture.wait_for(1, timeout=10)
        print("after", shared.state, "reentrant", reentrant(loop), flush=True)
        broker = await workbench.connection()
        print("sync", broker.run_threadsafe(asyncio.sleep(0, result="done"), timeout=5), flush=True)
        print("reentrant", reentrant(loop), flush=True)
        await workbench.shutdown()
        print("end", broker.state, "server", workbench.started_server(), flush=True)


    asyncio.run(main())
    """
)


def test_a_plain_script_leaves_nothing_open_and_patches_the_loop_only_for_a_blocking_call(
    nats_server: NatsServer,
) -> None:
    env = {**os.environ, "FASTIOT_NATS_SERVERS": nats_server.url, "PYTHONDEVMODE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", PLAIN_SCRIPT], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:-1] == [
        "shared True",
        "after closed reentrant False",
        "sync done",
        "reentrant True",
        "end closed server None",
    ]
    assert "nclosed" not in result.stderr, result.stderr  # no "unclosed transport/socket"


KERNEL_CELLS = [
    "from fastiot import workbench\n"
    "from fastiot.capture import MessageCapture\n"
    "from fastiot.history import Recording\n"
    "capture = await MessageCapture('v1.kernel_policy.>').start()\n"
    "shared = capture.connection\n"
    "await capture.stop()\n"
    "await Recording.list()\n"
    "print('kept', shared.state, shared is await workbench.connection())",
]


def test_in_a_real_kernel_every_api_uses_the_kernel_wide_connection_and_keeps_it(nats_server) -> None:
    (result,) = execute_cells(KERNEL_CELLS, timeout=60)
    assert not result.errors, result.errors
    assert "kept connected True" in result.text
