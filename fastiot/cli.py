"""``fastiot-workbench``: a broker, the demo plant and JupyterLab in one command.

Example:
    $ fastiot-workbench                      # local broker + demo plant + JupyterLab on ./notebooks
    $ fastiot-workbench --nats nats://broker.plant.local:4222 --no-demo
    $ fastiot-workbench --no-lab --broker-port 4222   # broker + demo only (as binder/start uses it)
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from fastiot.env import FASTIOT_NATS_HOST, FASTIOT_NATS_PORT, FASTIOT_NATS_SERVERS, env_broker
from fastiot.nats_server import LOOPBACK, NatsServer, die_with_parent, find_free_port

__all__ = ["build_parser", "default_notebook_dir", "main"]

DEFAULT_LAB_PORT = 8888
DEFAULT_DEMO_RATE = 2.0
_STOP_TIMEOUT = 15.0
_READY_TIMEOUT = 60.0


def default_notebook_dir() -> Path:
    """``./notebooks`` if it exists, else the project's notebooks folder (editable installs), else ``.``."""
    here = Path.cwd() / "notebooks"
    if here.is_dir():
        return here
    project = Path(__file__).resolve().parent.parent / "notebooks"
    if project.is_dir():
        return project
    return Path.cwd()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastiot-workbench",
        description=(
            "Start the fastiot workbench: use the configured NATS broker (FASTIOT_NATS_* or --nats) or start "
            "a local one on 127.0.0.1, run the demo plant, and open JupyterLab with every kernel pointed at "
            "that broker. Ctrl-C or SIGTERM stops everything it started."
        ),
    )
    parser.add_argument(
        "--nats",
        metavar="URL",
        help="NATS server URL(s), comma separated (overrides FASTIOT_NATS_SERVERS/HOST/PORT); "
        "default: the FASTIOT_NATS_* settings, else a local nats-server started for this session",
    )
    parser.add_argument(
        "--broker-port",
        type=int,
        default=None,
        metavar="PORT",
        help="client port of the local nats-server when one is started (default: a free port)",
    )
    parser.add_argument("--no-demo", action="store_true", help="do not start the simulated demo plant")
    parser.add_argument(
        "--demo-rate",
        type=float,
        default=DEFAULT_DEMO_RATE,
        metavar="HZ",
        help=f"demo values per second per sensor (default {DEFAULT_DEMO_RATE:g})",
    )
    parser.add_argument(
        "--notebook-dir",
        type=Path,
        default=None,
        help="folder JupyterLab opens (default: ./notebooks, else the project's notebooks folder)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"JupyterLab port (default {DEFAULT_LAB_PORT}, or a free one if that is taken)",
    )
    parser.add_argument("--ip", default=LOOPBACK, help=f"address JupyterLab listens on (default {LOOPBACK})")
    parser.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    parser.add_argument(
        "--token",
        default=None,
        help="JupyterLab access token (default: a random one, printed in the URL)",
    )
    parser.add_argument(
        "--no-lab",
        action="store_true",
        help="only run the broker and the demo plant (until Ctrl-C), no JupyterLab",
    )
    return parser


class _Stack:
    """The processes this command started, stopped in reverse order."""

    def __init__(self) -> None:
        self.server: NatsServer | None = None
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            args,
            env=env,
            stdin=subprocess.DEVNULL,
            # Own session: a terminal's Ctrl-C reaches only us, and we stop the children in order
            # (JupyterLab would otherwise ask "Shutdown this Jupyter server (y/[n])?").
            start_new_session=True,
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
        )
        self.processes.append((name, process))
        return process

    def stop(self) -> None:
        for name, process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(_STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    print(
                        f"fastiot-workbench: {name} did not stop in {_STOP_TIMEOUT:g} s; killing it",
                        file=sys.stderr,
                    )
                    process.kill()
                    process.wait(_STOP_TIMEOUT)
        self.processes.clear()
        if self.server is not None:
            self.server.stop()
            self.server = None


def _reachable(urls: list[str]) -> bool:
    for url in urls:
        hostport = url.split("://", 1)[-1].rsplit("@", 1)[-1]
        host, _, port = hostport.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "localhost", int(port or 4222)), timeout=2):
                return True
        except (OSError, ValueError):
            continue
    return False


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _wait_for_port(host: str, port: int, process: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def main(argv: list[str] | None = None) -> int:
    """Run the workbench; returns the exit status (0 after Ctrl-C or SIGTERM)."""
    args = build_parser().parse_args(argv)
    if args.demo_rate <= 0:
        print("fastiot-workbench: --demo-rate must be positive", file=sys.stderr)
        return 2
    stack = _Stack()
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        env = dict(os.environ)
        if args.nats:
            env[FASTIOT_NATS_SERVERS] = args.nats
            os.environ[FASTIOT_NATS_SERVERS] = args.nats
        if args.nats or env_broker.is_configured:
            urls = env_broker.servers
            if not _reachable(urls):
                print(
                    f"fastiot-workbench: no NATS server answers at {', '.join(urls)}; start it, fix --nats / "
                    f"FASTIOT_NATS_*, or unset them to let the workbench start a local one",
                    file=sys.stderr,
                )
                return 2
            broker = ", ".join(urls)
        elif args.broker_port is None and _reachable(["nats://localhost:4222"]):
            broker = "nats://localhost:4222"
        else:
            stack.server = NatsServer(args.broker_port, jetstream=True).start()
            env[FASTIOT_NATS_HOST], env[FASTIOT_NATS_PORT] = stack.server.host, str(stack.server.port)
            broker = f"{stack.server.url} (started by fastiot-workbench, JetStream on)"
        print(f"fastiot-workbench: NATS broker {broker}", flush=True)

        if not args.no_demo:
            stack.spawn(
                "demo plant", [sys.executable, "-m", "fastiot.demo", "--rate", str(args.demo_rate)], env
            )
            print(
                f"fastiot-workbench: demo plant publishing {args.demo_rate:g} values/s per sensor", flush=True
            )

        lab: subprocess.Popen[bytes] | None = None
        if not args.no_lab:
            notebook_dir = (args.notebook_dir or default_notebook_dir()).resolve()
            if not notebook_dir.is_dir():
                print(f"fastiot-workbench: --notebook-dir {notebook_dir} is not a folder", file=sys.stderr)
                return 2
            token = secrets.token_hex(16) if args.token is None else args.token
            host = "127.0.0.1" if args.ip in ("0.0.0.0", "", "*") else args.ip
            if args.port is None:
                # Another Jupyter often holds 8888 already; a port given explicitly is never changed.
                args.port = DEFAULT_LAB_PORT if _port_is_free(host, DEFAULT_LAB_PORT) else find_free_port()
            lab_args = [
                sys.executable,
                "-m",
                "jupyterlab",
                f"--ServerApp.root_dir={notebook_dir}",
                f"--ServerApp.port={args.port}",
                "--ServerApp.port_retries=0",
                f"--ServerApp.ip={args.ip}",
                f"--IdentityProvider.token={token}",
            ]
            if args.no_browser:
                lab_args.append("--no-browser")
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                lab_args.append("--allow-root")  # containers and CI run as root
            lab = stack.spawn("JupyterLab", lab_args, env)
            if not _wait_for_port(host, args.port, lab, _READY_TIMEOUT):
                print(f"fastiot-workbench: JupyterLab did not start on port {args.port}", file=sys.stderr)
                return 1
            query = f"?token={token}" if token else ""
            print(f"fastiot-workbench: JupyterLab at http://{host}:{args.port}/lab{query}", flush=True)
            print(f"fastiot-workbench: notebooks in {notebook_dir}; Ctrl-C stops everything", flush=True)
        else:
            print("fastiot-workbench: running without JupyterLab; Ctrl-C stops everything", flush=True)

        while not stopping.wait(0.2):
            for name, process in stack.processes:
                if process.poll() is not None:
                    print(
                        f"fastiot-workbench: {name} exited with status {process.returncode}", file=sys.stderr
                    )
                    return 0 if process is lab and process.returncode == 0 else 1
        return 0
    finally:
        print("fastiot-workbench: stopping", flush=True)
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    raise SystemExit(main())
