"""The README's production nats-server configuration, run as it is printed there.

The block under ``<!-- production-config -->`` in README.md is given to a real nats-server (on a free
loopback port, its store in a temporary folder): the engineer may do everything, the viewer may read
``v1.>``, recordings and buckets, and whatever else it tries is refused at once.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import PermissionDeniedError
from fastiot.history import Bucket, Recording
from fastiot.msg.thing import Thing
from fastiot.nats_server import LOOPBACK, accepts_connections, find_free_port, find_nats_server_binary
from tests.waits import wait_until, wait_until_sync

README = Path(__file__).parents[2] / "README.md"
PASSWORDS = {"ENGINEER_PASSWORD": "engineer-secret", "VIEWER_PASSWORD": "viewer-secret"}
BOUND = 4.0


def production_config() -> str:
    text = README.read_text()
    found = re.search(r"<!-- production-config -->\s*```\n(.*?)```", text, re.DOTALL)
    assert found is not None, "README.md lost its production-config block"
    return found.group(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("production")
    config = folder / "nats-server.conf"
    config.write_text(production_config().replace("/var/lib/nats", str(folder / "js")))
    port = find_free_port(LOOPBACK)
    process = subprocess.Popen(
        [find_nats_server_binary(), "-c", str(config), "-a", LOOPBACK, "-p", str(port)],
        env={**os.environ, **PASSWORDS},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_sync(
            lambda: process.poll() is not None or accepts_connections(LOOPBACK, port), 20, "nats-server"
        )
        assert process.poll() is None, process.communicate()[0].decode()
        yield f"{LOOPBACK}:{port}"
    finally:
        process.terminate()
        process.wait(10)


async def _connect(server: str, user: str) -> NatsBrokerConnection:
    password = PASSWORDS[f"{user.upper()}_PASSWORD"]
    return await NatsBrokerConnection.connect(servers=f"nats://{user}:{password}@{server}")


@pytest.fixture
async def engineer(server: str) -> AsyncIterator[NatsBrokerConnection]:
    connection = await _connect(server, "engineer")
    yield connection
    await connection.close()


@pytest.fixture
async def viewer(server: str) -> AsyncIterator[NatsBrokerConnection]:
    connection = await _connect(server, "viewer")
    yield connection
    await connection.close()


async def test_the_viewer_reads_the_plant_its_recordings_and_buckets(
    engineer: NatsBrokerConnection, viewer: NatsBrokerConnection
) -> None:
    seen: list[str] = []

    async def on_msg(msg: object) -> None:
        seen.append(getattr(msg, "subject", ""))

    sub = await viewer.subscribe_raw("v1.>", on_msg)
    recording = await Recording.start("readme_plant", "v1.thing.>", connection=engineer)
    for n in range(3):
        await engineer.publish(
            Thing.get_subject("press_1.temp"), Thing(name="temp", machine="press_1", value=n)
        )
    await engineer.flush()
    await wait_until(lambda: len(seen) == 3, BOUND, "the viewer's live messages")
    kv = await engineer.client.jetstream().create_key_value(bucket="readme_kv")
    await kv.put("press_1", b'{"state": "on"}')

    frame = await asyncio.wait_for(recording.to_dataframe(connection=viewer), BOUND)
    assert list(frame["value"]) == [0, 1, 2]
    entry = await asyncio.wait_for(Bucket("readme_kv").get("press_1", connection=viewer), BOUND)
    assert entry is not None and entry.value == {"state": "on"}
    await sub.unsubscribe()


async def test_the_viewer_may_change_nothing_and_hears_so_at_once(viewer: NatsBrokerConnection) -> None:
    await viewer.publish_raw("v1.thing.press_1.cmd", b"stop")
    with pytest.raises(PermissionDeniedError):
        await asyncio.wait_for(viewer.flush(), BOUND)
    with pytest.raises(PermissionDeniedError) as caught:
        await asyncio.wait_for(Recording.start("readme_viewer", "v1.x.>", connection=viewer), BOUND)
    assert caught.value.operation == "STREAM.CREATE"
    with pytest.raises(PermissionDeniedError):
        await asyncio.wait_for(viewer.subscribe_raw(">", _ignore), BOUND)


async def _ignore(msg: object) -> None:
    pass
