"""fastiot-workbench: broker, demo plant and JupyterLab from one command, nothing left behind."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from fastiot.cli import build_parser
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.msg.thing import Thing
from fastiot.nats_server import find_free_port

CLI = [sys.executable, "-m", "fastiot.cli"]


def _read_until(process: subprocess.Popen[str], marker: str, timeout: float) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    os.set_blocking(process.stdout.fileno(), False)
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line:
            lines.append(line)
            if marker in line:
                return lines
        elif process.poll() is not None:
            break
        else:
            time.sleep(0.05)
    raise AssertionError(f"{marker!r} not printed within {timeout} s; got {lines}")


def _stop_and_check_nothing_left(process: subprocess.Popen[str], sig: int) -> None:
    children = psutil.Process(process.pid).children(recursive=True)
    assert children, "the command should have started child processes"
    process.send_signal(sig)
    assert process.wait(30) == 0
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left behind: {[p.cmdline() for p in alive]}"


def test_help_documents_every_option() -> None:
    result = subprocess.run([*CLI, "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    for action in build_parser()._actions:
        for option in action.option_strings:
            assert option in result.stdout
        if action.help and action.dest != "help":
            assert action.help.split()[0] in result.stdout


def test_unreachable_configured_broker_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"nats://127.0.0.1:{find_free_port()}"
    result = subprocess.run([*CLI, "--nats", url, "--no-lab"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert url in result.stderr


def test_broker_and_demo_without_lab_started_and_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FASTIOT_NATS_SERVERS")
    port = find_free_port()
    process = subprocess.Popen(
        [*CLI, "--no-lab", "--broker-port", str(port), "--demo-rate", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        _read_until(process, "running without JupyterLab", 30)

        async def one_demo_value() -> Thing:
            broker = await NatsBrokerConnection.connect(servers=f"nats://127.0.0.1:{port}")
            got: asyncio.Queue[Thing] = asyncio.Queue()

            async def on_thing(thing: Thing) -> None:
                await got.put(thing)

            await broker.subscribe(Thing.get_subject("press_1.>"), on_thing)
            try:
                return await asyncio.wait_for(got.get(), 20)
            finally:
                await broker.close()

        assert asyncio.run(one_demo_value()).machine == "press_1"
        _stop_and_check_nothing_left(process, signal.SIGINT)
    finally:
        if process.poll() is None:
            process.kill()


def _run_lab(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    """Start the command with JupyterLab and return it and the URL it printed."""
    process = subprocess.Popen(
        [*CLI, "--no-browser", "--no-demo", "--token", "t0k", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        lines = _read_until(process, "JupyterLab at", 90)
    except BaseException:
        process.kill()
        raise
    return process, "".join(lines)


def _check_lab_answers_then_stop(process: subprocess.Popen[str], port: int) -> None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token=t0k", timeout=10) as response:
            assert "started" in json.load(response)
        _stop_and_check_nothing_left(process, signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()


def test_lab_uses_the_configured_broker_and_stops_cleanly(nats_server, tmp_path: Path) -> None:
    port = find_free_port()
    process, output = _run_lab(["--port", str(port), "--notebook-dir", str(tmp_path)])
    assert nats_server.url in output
    assert f"http://127.0.0.1:{port}/lab?token=t0k" in output.splitlines()[-1]
    _check_lab_answers_then_stop(process, port)


def test_default_lab_port_moves_when_8888_is_taken(nats_server, tmp_path: Path) -> None:
    import socket

    blocker: socket.socket | None = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        blocker.bind(("127.0.0.1", 8888))
        blocker.listen()
    except OSError:
        blocker.close()
        blocker = None  # something on this machine holds 8888 already: the same situation
    try:
        process, output = _run_lab(["--notebook-dir", str(tmp_path)])
        url = output.splitlines()[-1].split("JupyterLab at ", 1)[1].strip()
        assert ":8888/" not in url
        _check_lab_answers_then_stop(process, int(url.split(":")[2].split("/")[0]))
    finally:
        if blocker is not None:
            blocker.close()
