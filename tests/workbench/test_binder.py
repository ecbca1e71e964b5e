"""binder/start brings up the broker and the demo plant for the command, and stops them after it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from fastiot.nats_server import find_free_port

START = Path(__file__).resolve().parents[2] / "binder" / "start"

CHECK = textwrap.dedent(
    """
    import asyncio, os
    from fastiot.core.broker_connection import NatsBrokerConnection
    from fastiot.msg.thing import Thing

    async def main():
        broker = await NatsBrokerConnection.connect()  # FASTIOT_NATS_HOST/PORT from binder/start
        got = asyncio.Queue()
        async def on_thing(subject_name, thing):
            await got.put(subject_name)
        await broker.subscribe(Thing.get_subject(">"), on_thing)
        subject = await asyncio.wait_for(got.get(), 30)
        print("demo", subject, "port", os.environ["FASTIOT_NATS_PORT"], "pid", os.getppid(), flush=True)
        await broker.close()

    asyncio.run(main())
    """
)


def _processes_using_port(port: int) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            environ = proc.environ()
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        if str(port) in (environ.get("FASTIOT_NATS_PORT"), environ.get("FASTIOT_BINDER_NATS_PORT")):
            found.append(proc)
    return found


def _wait_gone(port: int) -> bool:
    _, alive = psutil.wait_procs(_processes_using_port(port), timeout=10)
    return not alive


def _binder_env(port: int | None = None) -> dict[str, str]:
    """This environment with binder/start's broker port and this venv's commands first on PATH."""
    return dict(
        os.environ,
        FASTIOT_BINDER_NATS_PORT=str(port or find_free_port()),
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    )


def test_binder_start_runs_command_with_broker_and_demo_then_stops_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FASTIOT_NATS_SERVERS")
    port = find_free_port()
    process = subprocess.Popen(
        ["bash", str(START), sys.executable, "-c", CHECK],
        env=_binder_env(port),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        started = psutil.Process(process.pid)
        out, _ = process.communicate(timeout=90)
        assert not _processes_using_port(port) or _wait_gone(port)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert f"port {port}" in out
    assert "demo v1.thing." in out
    # Nothing binder/start brought up (workbench, demo plant, broker) survives it.
    assert not _processes_using_port(port)
    assert not started.is_running() or started.status() == psutil.STATUS_ZOMBIE
    with pytest.raises(OSError):
        import socket

        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_binder_start_returns_the_command_status(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FASTIOT_NATS_SERVERS")
    result = subprocess.run(["bash", str(START), "sh", "-c", "exit 7"], env=_binder_env(), timeout=90)
    assert result.returncode == 7


def test_binder_start_gives_jupyter_the_workbench_kernels_and_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FASTIOT_NATS_SERVERS")
    check = (
        "from jupyter_client.kernelspec import KernelSpecManager\n"
        "from jupyter_server.services.config.manager import ConfigManager\n"
        "print(KernelSpecManager().get_kernel_spec('python3').argv)\n"
        "print(ConfigManager(config_dir_name='labconfig').get('default_setting_overrides'))\n"
    )
    result = subprocess.run(
        ["bash", str(START), sys.executable, "-c", check],
        env=_binder_env(),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    assert "--ext=fastiot_widgets" in result.stdout  # what JupyterLab starts a python3 kernel with
    assert "'fetchNews': 'false'" in result.stdout  # the settings JupyterLab reads: no news question
