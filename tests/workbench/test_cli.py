"""fastiot-workbench: broker, demo plant and JupyterLab from one command, nothing left behind."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from jupyter_client import BlockingKernelClient

from fastiot.cli import build_parser
from fastiot.cli.supervisor import _child
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import BrokerAuthenticationError
from fastiot.msg.thing import Thing
from fastiot.nats_server import NatsServer, find_free_port
from tests.workbench.cli_process import CLI, WorkbenchCommand

# What a clean stop must never print.
ALARMING = ("unexpected EOF", "lost the connection", "discarded", "Traceback", "ERROR", "WARNING")


def _stop_and_check_nothing_left(command: WorkbenchCommand, sig: int) -> None:
    children = command.children()
    assert children, "the command should have started child processes"
    assert command.stop(sig) == 0, command.output
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left behind: {[p.cmdline() for p in alive]}"


async def _one_demo_value(port: int, login: dict[str, str], machine: str = "press_1") -> Thing:
    broker = await NatsBrokerConnection.connect(servers=f"nats://127.0.0.1:{port}", **login)
    got: asyncio.Queue[Thing] = asyncio.Queue()

    async def on_thing(thing: Thing) -> None:
        await got.put(thing)

    await broker.subscribe(Thing.get_subject(f"{machine}.>"), on_thing)
    try:
        return await asyncio.wait_for(got.get(), 20)
    finally:
        await broker.close()


def test_help_documents_every_option() -> None:
    result = subprocess.run([*CLI, "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    for action in build_parser()._actions:
        for option in action.option_strings:
            assert option in result.stdout
        if action.help and action.dest != "help":
            assert action.help.split()[0] in result.stdout


def test_unreachable_configured_broker_is_a_clear_error() -> None:
    url = f"nats://127.0.0.1:{find_free_port()}"
    result = subprocess.run([*CLI, "--nats", url, "--no-lab"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert url in result.stderr


def test_broker_and_demo_without_lab_started_and_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FASTIOT_NATS_SERVERS")
    port = find_free_port()
    with WorkbenchCommand(["--no-lab", "--broker-port", str(port), "--demo-rate", "20"]) as command:
        command.wait_for("running without JupyterLab", 30)
        login = command.broker_login()
        assert asyncio.run(_one_demo_value(port, login)).machine == "press_1"
        # The broker is the user's alone: nats://127.0.0.1:PORT without the login is refused.
        with pytest.raises(BrokerAuthenticationError):
            asyncio.run(_one_demo_value(port, {}))
        assert login["password"] not in command.output
        assert f"NATS broker nats://***:***@127.0.0.1:{port} (started by fastiot-workbench" in command.output
        _stop_and_check_nothing_left(command, signal.SIGINT)


def test_open_broker_needs_no_login_and_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FASTIOT_NATS_SERVERS")
    port = find_free_port()
    with WorkbenchCommand(
        ["--no-lab", "--open-broker", "--broker-port", str(port), "--demo-rate", "20"]
    ) as command:
        command.wait_for("running without JupyterLab", 30)
        assert asyncio.run(_one_demo_value(port, {})).machine == "press_1"
        assert "--open-broker: the NATS broker at" in command.output
        assert "every program and user on this machine" in command.output
        _stop_and_check_nothing_left(command, signal.SIGINT)


def test_ctrl_c_stops_the_broker_last_and_says_one_calm_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C in a terminal sends SIGINT to the whole foreground process group, not just the command."""
    monkeypatch.delenv("FASTIOT_NATS_SERVERS")
    port = find_free_port()
    args = ["--no-lab", "--broker-port", str(port), "--demo-rate", "50"]
    with WorkbenchCommand(args, own_process_group=True) as command:
        command.wait_for("running without JupyterLab", 30)
        asyncio.run(_one_demo_value(port, command.broker_login()))  # the demo plant is publishing
        os.killpg(command.process.pid, signal.SIGINT)
        assert command.wait() == 0, command.output
    for alarming in ALARMING:
        assert alarming not in command.output, command.output
    after_ctrl_c = command.output.split("Ctrl-C stops everything\n", 1)[1].splitlines()
    assert after_ctrl_c == ["fastiot-workbench: stopped the demo plant and the NATS broker"], command.output


def test_credentials_in_the_broker_url_are_never_printed() -> None:
    with NatsServer(user="alice", password="s3cret") as server:
        url = f"nats://alice:s3cret@127.0.0.1:{server.port}"
        with WorkbenchCommand(["--nats", url, "--no-lab", "--no-demo"]) as command:
            command.wait_for("running without JupyterLab", 30)
            assert command.stop() == 0
    assert "s3cret" not in command.output and "alice" not in command.output, command.output
    assert f"NATS broker nats://***:***@127.0.0.1:{server.port}" in command.output


def test_unreachable_broker_error_hides_the_credentials() -> None:
    url = f"nats://alice:s3cret@127.0.0.1:{find_free_port()}"
    result = subprocess.run([*CLI, "--nats", url, "--no-lab"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "s3cret" not in result.stdout + result.stderr
    assert url.replace("alice:s3cret", "***:***") in result.stderr


# --- with JupyterLab -----------------------------------------------------------------------------------


def _lab(tmp_path: Path, *args: str, token: str = "t0k") -> WorkbenchCommand:
    return WorkbenchCommand(
        ["--no-browser", "--no-demo", "--token", token, "--notebook-dir", str(tmp_path), *args]
    )


def _lab_url(command: WorkbenchCommand) -> str:
    return command.wait_for("JupyterLab at", 90).split("JupyterLab at ", 1)[1].strip()


def _check_lab_answers_then_stop(command: WorkbenchCommand, port: int) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token=t0k", timeout=10) as response:
        assert "started" in json.load(response)
    _stop_and_check_nothing_left(command, signal.SIGTERM)


def test_lab_uses_the_configured_broker_and_stops_cleanly(nats_server: NatsServer, tmp_path: Path) -> None:
    port = find_free_port()
    with _lab(tmp_path, "--port", str(port)) as command:
        url = _lab_url(command)
        assert url == f"http://127.0.0.1:{port}/lab?token=t0k"
        assert nats_server.url in command.output
        assert "WARNING" not in command.output, "the defaults are safe: nothing to warn about"
        _check_lab_answers_then_stop(command, port)


@pytest.fixture
def port_8888_taken() -> Iterator[None]:
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        blocker.bind(("127.0.0.1", 8888))
        blocker.listen()
    except OSError:
        pass  # something on this machine holds 8888 already: the same situation
    try:
        yield
    finally:
        blocker.close()


def test_default_lab_port_moves_when_8888_is_taken(port_8888_taken: None, tmp_path: Path) -> None:
    with _lab(tmp_path) as command:
        url = _lab_url(command)
        assert ":8888/" not in url
        _check_lab_answers_then_stop(command, int(url.split(":")[2].split("/")[0]))


def test_lab_beyond_loopback_is_a_clear_warning(tmp_path: Path) -> None:
    port = find_free_port()
    with _lab(tmp_path, "--ip", "0.0.0.0", "--port", str(port)) as command:
        _lab_url(command)
        assert command.stop() == 0
    assert "WARNING: JupyterLab listens on every network interface (--ip 0.0.0.0)" in command.output
    assert f"anyone who can reach port {port} and has the token can run code as you" in command.output
    assert "Use --ip 127.0.0.1 unless you mean it" in command.output


def test_empty_token_on_loopback_is_a_warning(tmp_path: Path) -> None:
    with _lab(tmp_path, "--port", str(find_free_port()), token="") as command:
        assert "?token" not in _lab_url(command)
        assert command.stop() == 0
    assert "WARNING: JupyterLab runs without a token" in command.output
    assert "listens on every network interface" not in command.output


def test_no_token_beyond_loopback_is_refused(tmp_path: Path) -> None:
    args = ["--no-demo", "--no-browser", "--ip", "0.0.0.0", "--token", "", "--notebook-dir", str(tmp_path)]
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "refusing to serve JupyterLab on every network interface without a token" in result.stderr
    assert "--allow-no-token" in result.stderr
    assert "JupyterLab at" not in result.stdout, "nothing may be served"


def test_allow_no_token_beyond_loopback_goes_ahead_with_a_warning(tmp_path: Path) -> None:
    # An open JupyterLab on every interface is not something a test should serve, even briefly: the
    # port is taken, so the command gets past the check and JupyterLab then fails to listen.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["--ip", "0.0.0.0", "--allow-no-token", "--port", str(port)]
        with _lab(tmp_path, *args, token="") as command:
            assert command.wait(90) == 1
    assert "refusing" not in command.output
    assert "WARNING: JupyterLab listens on every network interface (--ip 0.0.0.0)" in command.output
    assert f"anyone who can reach port {port} can run code as you" in command.output
    assert "fastiot-workbench: stopped JupyterLab" in command.output, "JupyterLab was started"


def _start_kernel(port: int, token: str, runtime_dir: Path) -> None:
    """Open a kernel in the command's JupyterLab and wait until it answers."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/kernels",
        data=json.dumps({"name": "python3"}).encode(),
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        kernel_id = json.load(response)["id"]
    client = BlockingKernelClient(connection_file=str(runtime_dir / f"kernel-{kernel_id}.json"))
    client.load_connection_file()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
    finally:
        client.stop_channels()


def test_ctrl_c_with_jupyterlab_and_a_kernel_says_only_the_calm_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """JupyterLab's own stop messages ("received signal 15, stopping", "Shutting down 4 extensions",
    "Kernel shutdown: ...") stay out of the terminal when the stop goes well."""
    monkeypatch.delenv("FASTIOT_NATS_SERVERS")
    runtime_dir = tmp_path / "runtime"  # where the kernel's connection file is
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime_dir))
    broker_port, lab_port = find_free_port(), find_free_port()
    args = ["--no-browser", "--token", "t0k", "--notebook-dir", str(tmp_path), "--port", str(lab_port)]
    args += ["--broker-port", str(broker_port), "--demo-rate", "20"]
    with WorkbenchCommand(args, own_process_group=True) as command:
        command.wait_for("Ctrl-C stops everything", 90)
        asyncio.run(_one_demo_value(broker_port, command.broker_login()))  # the demo plant is publishing
        _start_kernel(lab_port, "t0k", runtime_dir)
        children = command.children()
        assert any("ipykernel" in " ".join(p.cmdline()) for p in children), "a kernel is open"
        before_ctrl_c = len(command.lines)
        os.killpg(command.process.pid, signal.SIGINT)
        assert command.wait() == 0, command.output
        after_ctrl_c = command.lines[before_ctrl_c:]
    assert after_ctrl_c == ["fastiot-workbench: stopped JupyterLab, the demo plant and the NATS broker\n"], (
        command.output
    )
    for jupyter_stop_message in ("received signal", "Shutting down", "Kernel shutdown"):
        assert jupyter_stop_message not in command.output, command.output
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left behind: {[p.cmdline() for p in alive]}"


# A child that, like JupyterLab, says something when it is stopped, and exits with {status}.
_TALKATIVE_CHILD = """
import signal, sys
def stop(*_):
    print("[C ServerApp] received signal 15, stopping")
    sys.exit({status})
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
signal.pause()
"""


class _Terminal(io.StringIO):
    """Our stderr, noticing when the child said it is ready."""

    def __init__(self) -> None:
        super().__init__()
        self.ready = threading.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        if "ready" in self.getvalue():
            self.ready.set()
        return written


@pytest.mark.parametrize(("status", "shown"), [(0, False), (3, True)])
def test_what_a_child_says_while_stopped_is_shown_only_if_the_stop_fails(
    status: int, shown: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    child = [sys.executable, "-c", _TALKATIVE_CHILD.format(status=status)]
    with _child("talkative child", child, dict(os.environ), quiet_stop=True) as process:
        assert terminal.ready.wait(30), "what a child prints while it runs is shown at once"
    assert process.returncode == status
    assert ("received signal 15, stopping" in terminal.getvalue()) is shown, terminal.getvalue()
