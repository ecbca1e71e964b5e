"""``fastiot-workbench record`` / ``export`` and the workbench broker's ``--store`` that survives restarts."""

from __future__ import annotations

import argparse
import ast
import asyncio
import os
import signal
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.serialization import pack
from fastiot.exceptions import NatsServerStartError
from fastiot.history import Recording
from fastiot.history import cli as history_cli
from fastiot.nats_server import NatsServer, find_free_port
from tests.history.conftest import publish, things
from tests.waits import wait_until
from tests.workbench.cli_process import CLI, WorkbenchCommand


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)


async def test_record_returns_at_once_and_the_broker_records(
    js_server: NatsServer, connection: NatsBrokerConnection, name: str
) -> None:
    done = await asyncio.to_thread(
        run, "record", "v1.thing.>", "v1.alarm.*", "--name", name, "--max-age", "1d", "--nats", js_server.url
    )
    assert done.returncode == 0, done.stderr
    assert f"'{name}'" in done.stdout and "v1.thing.>" in done.stdout
    # The command has exited; the recording goes on in the broker.
    await publish(connection, things(7))
    info = await (await Recording.open(name, connection=connection)).info()
    assert (info.messages, info.subjects, info.max_age) == (
        7,
        ["v1.thing.>", "v1.alarm.*"],
        timedelta(days=1),
    )


async def test_record_again_counts_what_is_recorded_and_names_the_code_that_stops_it(
    js_server: NatsServer, connection: NatsBrokerConnection, name: str
) -> None:
    first = await asyncio.to_thread(run, "record", "v1.thing.>", "--name", name, "--nats", js_server.url)
    assert first.returncode == 0, first.stderr
    assert "(0 messages so far)" in first.stdout
    await publish(connection, things(1))
    again = await asyncio.to_thread(run, "record", "v1.thing.>", "--name", name, "--nats", js_server.url)
    assert again.returncode == 0, again.stderr
    assert "(1 message so far)" in again.stdout, again.stdout
    # The code it quotes runs as a notebook cell (top-level await).
    stop_code = again.stdout.split("`")[1]
    assert stop_code == f"await (await Recording.open({name!r})).stop()"
    compile(stop_code, "<cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


async def test_export_writes_a_parquet_dataset_of_the_last_hour(
    js_server: NatsServer, connection: NatsBrokerConnection, name: str, tmp_path: Path
) -> None:
    await Recording.start(name, "v1.thing.>", connection=connection)
    await publish(connection, things(25))
    done = await asyncio.to_thread(
        run, "export", name, "--parquet", str(tmp_path / "out"), "--since", "1h", "--nats", js_server.url
    )
    assert done.returncode == 0, done.stderr
    assert str(tmp_path / "out") in done.stdout
    assert sorted(pd.read_parquet(tmp_path / "out")["n"].tolist()) == list(range(25))


async def test_bad_input_on_the_command_line_is_a_clear_error(js_server: NatsServer, tmp_path: Path) -> None:
    bad_name = await asyncio.to_thread(run, "record", "v1.>", "--name", "a.b", "--nats", js_server.url)
    assert bad_name.returncode == 2 and "not a valid recording name" in bad_name.stderr
    missing = await asyncio.to_thread(
        run, "export", "nothing", "--parquet", str(tmp_path), "--nats", js_server.url
    )
    assert missing.returncode == 2 and "no recording" in missing.stderr
    bad_age = await asyncio.to_thread(run, "record", "v1.>", "--name", "x", "--max-age", "soon")
    assert bad_age.returncode == 2 and "not a duration" in bad_age.stderr


def test_the_default_store_is_a_per_user_data_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(history_cli.STORE_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    if sys.platform.startswith("linux"):
        assert history_cli.default_store_dir() == tmp_path / "fastiot-workbench" / "jetstream"
    monkeypatch.setenv(history_cli.STORE_ENV, str(tmp_path / "mine"))
    assert history_cli.default_store_dir() == tmp_path / "mine"


@pytest.mark.timeout(180)
async def test_the_workbench_broker_keeps_recordings_across_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in [k for k in os.environ if k.startswith("FASTIOT_NATS_")]:
        monkeypatch.delenv(variable)  # the workbench is to start its own broker, not use the tests' one
    store, port = tmp_path / "store", find_free_port()
    for day, expected in (("yesterday", 0), ("today", 5)):
        # --open-broker: this test connects from outside, where no child's FASTIOT_NATS_PASSWORD reaches.
        with WorkbenchCommand(
            ["--no-lab", "--no-demo", "--open-broker", "--broker-port", str(port), "--store", str(store)]
        ) as command:
            await asyncio.to_thread(command.wait_for, "running without JupyterLab", 60)
            assert f"JetStream store {store}" in command.output
            assert stat.S_IMODE(store.stat().st_mode) == 0o700, "recordings are the user's alone"
            conn = await NatsBrokerConnection.connect(servers=f"nats://127.0.0.1:{port}")
            rec = await Recording.start("plant", "v1.thing.>", connection=conn)
            assert (await rec.info()).messages == expected, day  # yesterday's recording is still there
            if day == "yesterday":
                for subject, payload in things(5):  # plain publishes: the rolling history does not ack
                    await conn.publish_raw(subject, pack(payload))
                await conn.flush()

                async def copied(rec: Recording = rec) -> bool:  # the broker's history has v1: copied from it
                    return (await rec.info()).messages == 5

                await wait_until(copied, 10.0, "the recording to copy the five messages", interval=0.05)
            await conn.close()
            assert await asyncio.to_thread(command.stop, signal.SIGINT, 30) == 0


def test_a_busy_default_store_falls_back_to_a_temporary_one_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(history_cli.STORE_ENV, str(tmp_path / "store"))
    with NatsServer(store_dir=tmp_path / "store"):  # another workbench uses the default store
        server, description = history_cli.workbench_server(None, argparse.Namespace(store=None))
        try:
            assert server.is_running and server.store_dir is None
            assert "temporary store" in description and "--store" in description
        finally:
            server.stop()
        with pytest.raises(NatsServerStartError, match="in use by another nats-server"):
            history_cli.workbench_server(None, argparse.Namespace(store=tmp_path / "store"))


async def test_the_workbench_broker_keeps_a_rolling_history_unless_told_not_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastiot.history.rolling import HISTORY_STREAM

    for variable in [k for k in os.environ if k.startswith("FASTIOT_NATS_")]:
        monkeypatch.delenv(variable)
    port = find_free_port()
    args = [
        "--no-lab",
        "--no-demo",
        "--open-broker",
        "--broker-port",
        str(port),
        "--store",
        str(tmp_path / "store"),
    ]
    with WorkbenchCommand([*args, "--history-max-age", "2h", "--history-max-bytes", "64MiB"]) as command:
        await asyncio.to_thread(command.wait_for, "running without JupyterLab", 60)
        assert "rolling history 'fastiot_history': 2 h / 0.0625 GiB" in command.output
        conn = await NatsBrokerConnection.connect(servers=f"nats://127.0.0.1:{port}")
        jsm = conn.client.jsm()
        config = (await jsm.stream_info(HISTORY_STREAM)).config
        assert (config.max_age, config.max_bytes, config.no_ack) == (7200, 64 * 1024**2, True)
        assert [p for p in command.children() if "fastiot.history.rolling_cli" in " ".join(p.cmdline())]

        async def learned() -> bool:  # the keeper, a child of the command (starting still), learns "plant"
            await conn.publish_raw("plant.hall", b"1")
            return "plant.>" in ((await jsm.stream_info(HISTORY_STREAM)).config.subjects or [])

        await wait_until(learned, 30.0, "the keeper to add plant.> to the history", interval=0.1)
        await conn.close()
        assert await asyncio.to_thread(command.stop, signal.SIGINT, 30) == 0
    with WorkbenchCommand([*args, "--no-history"]) as command:
        await asyncio.to_thread(command.wait_for, "running without JupyterLab", 60)
        conn = await NatsBrokerConnection.connect(servers=f"nats://127.0.0.1:{port}")
        # The store keeps the stream of the run before; this run runs no keeper for it.
        assert "rolling history" not in command.output
        keepers = [p for p in command.children() if "fastiot.history.rolling_cli" in " ".join(p.cmdline())]
        assert keepers == []
        await conn.close()
        assert await asyncio.to_thread(command.stop, signal.SIGINT, 30) == 0
    monkeypatch.setenv("FASTIOT_HISTORY_MAX_BYTES", "lots")
    run = [*CLI, *args]
    result = await asyncio.to_thread(subprocess.run, run, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "FASTIOT_HISTORY_MAX_BYTES" in result.stderr
    assert "'lots' is not a size" in result.stderr


async def test_the_history_keeper_logs_in_to_the_workbench_broker_that_requires_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastiot.history.rolling import HISTORY_STREAM

    for variable in [k for k in os.environ if k.startswith("FASTIOT_NATS_")]:
        monkeypatch.delenv(variable)
    port = find_free_port()
    args = ["--no-lab", "--no-demo", "--broker-port", str(port), "--store", str(tmp_path / "store")]
    with WorkbenchCommand(args) as command:
        await asyncio.to_thread(command.wait_for, "running without JupyterLab", 60)
        keeper = [p for p in command.children() if "fastiot.history.rolling_cli" in " ".join(p.cmdline())]
        assert keeper, command.output
        login = command.broker_login()
        assert login["password"] not in " ".join(keeper[0].cmdline())  # never on a command line
        conn = await NatsBrokerConnection.connect(
            servers=f"nats://{login['user']}:{login['password']}@127.0.0.1:{port}"
        )
        jsm = conn.client.jsm()

        async def learned() -> bool:  # only a keeper that logged in can add a first token
            await conn.publish_raw("hall.door", b"1")
            return "hall.>" in ((await jsm.stream_info(HISTORY_STREAM)).config.subjects or [])

        await wait_until(learned, 30.0, "the keeper to add hall.> to the history", interval=0.1)
        await conn.close()
        assert await asyncio.to_thread(command.stop, signal.SIGINT, 30) == 0
