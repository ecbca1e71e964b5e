"""``fastiot-workbench``: a broker, the demo plant and JupyterLab in one command.

Example:
    $ fastiot-workbench                      # local broker + demo plant + JupyterLab on your workspace
    $ fastiot-workbench --nats nats://broker.plant.local:4222 --no-demo
    $ fastiot-workbench --no-lab --broker-port 4222   # broker + demo only (as binder/start uses it)
    $ fastiot-workbench --mqtt               # ... and an MQTT listener for devices (1883 if free)

Its subcommands (``record``, ``export``, ...) are registered in :mod:`fastiot.cli.registry`; this module
only lists them in its parser and hands over to the one named.

Everything it starts is stopped when it ends (Ctrl-C, SIGTERM, or JupyterLab's File > Shut Down):
JupyterLab and the demo plant first, then the broker they were connected to; then one line says what
it stopped. JupyterLab's own stop messages are shown only if it fails to stop.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ipaddress
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from fastiot.cli.registry import add_subcommands, chosen_subcommand
from fastiot.env import (
    FASTIOT_MQTT_PORT,
    FASTIOT_NATS_HOST,
    FASTIOT_NATS_PASSWORD,
    FASTIOT_NATS_PORT,
    FASTIOT_NATS_SERVERS,
    FASTIOT_NATS_USER,
    env_broker,
    redact_url,
)
from fastiot.history import cli as history_cli
from fastiot.history import rolling_cli
from fastiot.lab import prepare_lab
from fastiot.nats_server import (
    LOOPBACK,
    NatsServerStartError,
    accepts_connections,
    find_free_port,
    pick_mqtt_port,
    start_child_process,
)
from fastiot.shared_broker import BROKER_USER, new_password
from fastiot.workspace import prepare_workspace

__all__ = ["build_parser", "is_loopback", "main"]

DEFAULT_LAB_PORT = 8888
DEFAULT_DEMO_RATE = 2.0
DEFAULT_NATS_PORT = 4222
_STOP_TIMEOUT = 15.0
_DRAIN_TIMEOUT = 5.0  # for a stopped child's last lines
_READY_TIMEOUT = 60.0
_PROBE_TIMEOUT = 2.0
# --ip values that mean "every interface" (JupyterLab's and the socket API's spellings).
_ALL_INTERFACES = {"", "*", "0.0.0.0", "::"}


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``fastiot-workbench``."""
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
    parser.add_argument(
        "--open-broker",
        action="store_true",
        help="start the local nats-server without a login (by default it requires a password made for this "
        "start, which the demo plant and the kernels get in FASTIOT_NATS_USER/PASSWORD): every program and "
        "user on this machine can then use it",
    )
    parser.add_argument(
        "--mqtt",
        nargs="?",
        type=int,
        const=0,
        default=None,
        metavar="PORT",
        help="give the local nats-server an MQTT 3.1.1 listener for devices on PORT (default 1883 when it is "
        "free, else a free port), bound like the NATS port; MQTT clients log in with the broker's user and "
        "password, which the kernels have in FASTIOT_NATS_USER/PASSWORD (and the port in FASTIOT_MQTT_PORT)",
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
        help="your notebook folder, which JupyterLab opens and which gets copies of the tutorials "
        "(default: workspace/ in the project's checkout, a folder git ignores; else ./fastiot-workspace)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"JupyterLab port (default {DEFAULT_LAB_PORT}, or a free one if that is taken)",
    )
    parser.add_argument(
        "--ip",
        default=LOOPBACK,
        help=f"address JupyterLab listens on (default {LOOPBACK}: this machine only); any other address "
        "lets other machines reach it, and the command warns",
    )
    parser.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    parser.add_argument(
        "--token",
        default=None,
        help="JupyterLab access token (default: a random one, printed in the URL); an empty token "
        "turns login off, refused beyond 127.0.0.1 without --allow-no-token",
    )
    parser.add_argument(
        "--allow-no-token",
        action="store_true",
        help="accept an empty --token together with a non-loopback --ip: anyone who can reach the port "
        "can run code as you",
    )
    parser.add_argument(
        "--no-lab",
        action="store_true",
        help="only run the broker and the demo plant (until Ctrl-C), no JupyterLab",
    )
    history_cli.add_store_option(parser)
    rolling_cli.add_history_options(parser)
    add_subcommands(parser)
    return parser


def _say(message: str) -> None:
    print(f"fastiot-workbench: {message}", flush=True)


def _complain(message: str) -> None:
    print(f"fastiot-workbench: {message}", file=sys.stderr, flush=True)


def is_loopback(ip: str) -> bool:
    """True if JupyterLab listening on ``ip`` is reachable from this machine only.

    Example:
        >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
        (True, True, False)
    """
    if ip == "localhost":
        return True
    try:
        return ipaddress.ip_address(ip.strip("[]")).is_loopback
    except ValueError:  # a host name, or "" / "*" for every interface
        return False


def _lab_access_problem(ip: str, token: str, allow_no_token: bool) -> str | None:
    """Why JupyterLab must not start with this address and token (None if it may)."""
    if token == "" and not is_loopback(ip) and not allow_no_token:
        where = "every network interface" if ip in _ALL_INTERFACES else ip
        return (
            f"refusing to serve JupyterLab on {where} without a token: anyone who can reach this machine "
            f"could run code as you. Leave out --token for a random one, give your own, or add "
            f"--allow-no-token if you trust every machine on this network."
        )
    return None


def _lab_access_warnings(ip: str, port: int, token: str) -> list[str]:
    """What a person should know about who can reach this JupyterLab."""
    warnings = []
    if not is_loopback(ip):
        where = "every network interface" if ip in _ALL_INTERFACES else ip
        who = f"anyone who can reach port {port}" + (" and has the token" if token else "")
        warnings.append(
            f"WARNING: JupyterLab listens on {where} (--ip {ip or repr(ip)}), not only on this machine: "
            f"{who} can run code as you. Use --ip 127.0.0.1 unless you mean it."
        )
    if token == "":
        warnings.append(
            "WARNING: JupyterLab runs without a token (--token ''): "
            + (
                "every program and user on this machine can run code in it."
                if is_loopback(ip)
                else "no login at all."
            )
        )
    return warnings


def _url_host(ip: str) -> str:
    """The host to open and probe for JupyterLab listening on ``ip``."""
    if ip in _ALL_INTERFACES:
        return "::1" if ip == "::" else LOOPBACK
    return ip


def _any_reachable(urls: list[str]) -> bool:
    for url in urls:
        try:
            parts = urlsplit(url if "://" in url else f"nats://{url}")
            host, port = parts.hostname or "localhost", parts.port or DEFAULT_NATS_PORT
        except ValueError:
            continue
        if accepts_connections(host, port, _PROBE_TIMEOUT, greeting=None):  # ws:// servers send no INFO
            return True
    return False


def _port_is_free(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class _QuietStop:
    """Copies a child's output to our stderr while it runs, and holds back what it prints while stopped.

    JupyterLab answers SIGTERM with "[C ...] received signal 15, stopping", "Shutting down 4
    extensions" and a line per kernel: alarming noise after a Ctrl-C that went well. Those lines are
    shown only if the stop fails (:meth:`show_held`), so a clean stop ends with the one calm line.
    """

    _MAX_HELD_LINES = 1000  # a stop that goes wrong explains itself in far fewer lines
    _MAX_LINE = 64 * 1024

    def __init__(self, name: str, output: IO[bytes]) -> None:
        self._output = output
        self._lock = threading.Lock()
        self._holding = False
        self._held: collections.deque[bytes] = collections.deque(maxlen=self._MAX_HELD_LINES)
        self._dropped = 0
        self._thread = threading.Thread(target=self._relay, name=f"{name} output", daemon=True)
        self._thread.start()

    def _relay(self) -> None:
        # Read to the end whatever happens: a child writing into a full pipe would hang.
        for line in iter(lambda: self._output.readline(self._MAX_LINE), b""):
            with self._lock:
                if self._holding:
                    if len(self._held) == self._held.maxlen:
                        self._dropped += 1  # the oldest goes
                    self._held.append(line)
                    continue
            _write_stderr(line)

    def hold(self) -> None:
        """From now on keep the child's lines instead of printing them."""
        with self._lock:
            self._holding = True

    def show_held(self) -> None:
        """Print the lines held so far, and every later one as it comes: the stop went wrong."""
        with self._lock:
            self._holding = False
            if self._dropped:
                _write_stderr(f"... ({self._dropped} earlier lines not kept)\n".encode())
            for line in self._held:
                _write_stderr(line)
            self._held.clear()
            self._dropped = 0

    def finish(self) -> None:
        """Wait (bounded) for the child's last lines after it ended, then close the pipe.

        A lingering grandchild may hold the pipe open: the pipe is then left to the daemon thread,
        which ends with this process (closing it under a blocked read would block too).
        """
        self._thread.join(_DRAIN_TIMEOUT)
        if not self._thread.is_alive():
            self._output.close()


def _write_stderr(data: bytes) -> None:
    with contextlib.suppress(OSError, ValueError):  # a closed terminal must not stop the relay
        sys.stderr.write(data.decode(errors="replace"))
        sys.stderr.flush()


@contextlib.contextmanager
def _child(
    name: str, args: list[str], env: dict[str, str], *, quiet_stop: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a child until the block ends, then stop it (SIGTERM, then SIGKILL after a timeout).

    With ``quiet_stop`` its output goes through :class:`_QuietStop`: what it prints while being
    stopped is shown only if it has to be killed or exits with an error.
    """
    process = start_child_process(
        args,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if quiet_stop else None,
        stderr=subprocess.STDOUT if quiet_stop else None,
        # Own session: a terminal's Ctrl-C reaches only us, and we stop the children in order
        # (JupyterLab would otherwise ask "Shutdown this Jupyter server (y/[n])?").
        start_new_session=True,
    )
    relay = _QuietStop(name, process.stdout) if process.stdout is not None else None
    try:
        yield process
    finally:
        if relay is not None:
            relay.hold()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                if relay is not None:
                    relay.show_held()
                _complain(f"{name} did not stop in {_STOP_TIMEOUT:g} s; killing it")
                process.kill()
                process.wait(_STOP_TIMEOUT)
        if relay is not None:
            relay.finish()
            if process.returncode != 0:  # killed, failed to start, or failed to stop: say why
                relay.show_held()


def _wait_for_port(host: str, port: int, process: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if accepts_connections(host, port, 0.5, greeting=None):
            return True
        time.sleep(0.1)
    return False


def _say_stopped(started: list[str]) -> None:
    """The one calm last line, naming what was stopped in the order it was stopped."""
    if started:
        names = list(reversed(started))
        listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
        _say(f"stopped {listed}")


class _Exit(Exception):
    """Ends :func:`main` with ``status`` after the reason was printed; the ExitStack stops the rest."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _broker(
    args: argparse.Namespace, env: dict[str, str], stack: contextlib.ExitStack, started: list[str]
) -> str:
    """Use the configured broker or start one; sets the children's ``env``; returns the banner text."""
    if args.nats:
        env[FASTIOT_NATS_SERVERS] = args.nats
        os.environ[FASTIOT_NATS_SERVERS] = args.nats
    if args.mqtt is not None and (args.nats or env_broker.is_configured):
        _complain(
            "--mqtt gives an MQTT listener to the broker fastiot-workbench starts; the broker you configured "
            "(--nats / FASTIOT_NATS_*) has its own configuration: add an `mqtt { listen: ... }` block there, "
            "and set FASTIOT_MQTT_PORT for the kernels"
        )
        raise _Exit(2)
    if args.nats or env_broker.is_configured:
        urls = env_broker.servers
        if not _any_reachable(urls):
            _complain(
                f"no NATS server answers at {redact_url(', '.join(urls))}; start it, fix --nats / "
                f"FASTIOT_NATS_*, or unset them to let the workbench start a local one"
            )
            raise _Exit(2)
        return redact_url(", ".join(urls))
    if args.broker_port is None and accepts_connections("localhost", DEFAULT_NATS_PORT):
        if args.mqtt is not None:
            _complain(
                f"--mqtt: a NATS server already runs on localhost:{DEFAULT_NATS_PORT}, and fastiot-workbench "
                f"uses it instead of starting one; give --broker-port PORT to start its own with MQTT"
            )
            raise _Exit(2)
        return f"nats://localhost:{DEFAULT_NATS_PORT}"
    # A password made for this start, as JupyterLab makes its token: other local users cannot use the
    # broker. Its children log in through FASTIOT_NATS_USER/PASSWORD; it is never printed.
    user, password = (None, None) if args.open_broker else (BROKER_USER, new_password())
    try:
        history = rolling_cli.settings_from_arguments(args)
    except ValueError as e:  # a FASTIOT_HISTORY_* setting that is no duration or size
        _complain(str(e))
        raise _Exit(2) from None
    try:
        # Entered first, so the ExitStack stops it after every child that uses it.
        mqtt_port = None if args.mqtt is None else pick_mqtt_port(args.mqtt)
        server, store = history_cli.workbench_server(
            args.broker_port, args, user=user, password=password, mqtt_port=mqtt_port
        )
        stack.enter_context(server)
    except NatsServerStartError as e:
        _complain(f"the local NATS server did not start: {e}")
        raise _Exit(1) from None
    started.append("the NATS broker")
    env[FASTIOT_NATS_HOST], env[FASTIOT_NATS_PORT] = server.host, str(server.port)
    if server.mqtt_port is not None:
        env[FASTIOT_MQTT_PORT] = str(server.mqtt_port)
    else:
        env.pop(FASTIOT_MQTT_PORT, None)  # a port of another broker would lead MQTT publishes astray
    login = None if user is None or password is None else (user, password)
    # The stream exists before the demo plant publishes; the keeper logs in through its environment.
    keeper = rolling_cli.prepare_for_cli(server.url, history, login=login)
    if login is None:
        env.pop(FASTIOT_NATS_USER, None)
        env.pop(FASTIOT_NATS_PASSWORD, None)
    else:
        env[FASTIOT_NATS_USER], env[FASTIOT_NATS_PASSWORD] = login
    if keeper is not None:
        stack.enter_context(_child("history keeper", keeper, env))
        store = f"{store}, {history.describe()}"
    if login is None:
        _complain(
            f"--open-broker: the NATS broker at {server.url} requires no login; every program and user "
            f"on this machine can read and publish on it"
        )
        return f"{server.url} (started by fastiot-workbench, no login, {store})"
    url = redact_url(f"nats://{user}:{password}@{server.host}:{server.port}")
    return f"{url} (started by fastiot-workbench, login in the kernels' FASTIOT_NATS_USER/PASSWORD, {store})"


def _mqtt_banner(env: dict[str, str]) -> str:
    """Where MQTT clients connect, the login masked as in the NATS line."""
    host, port = env[FASTIOT_NATS_HOST], env[FASTIOT_MQTT_PORT]
    user, password = env.get(FASTIOT_NATS_USER), env.get(FASTIOT_NATS_PASSWORD)
    if user is None or password is None:
        return f"mqtt://{host}:{port} (no login)"
    # The password is never printed; a notebook shows it with fastiot.mqtt.endpoint().password.
    return f"mqtt://{host}:{port} (login: user {user}, password *** as the NATS broker's)"


def _lab(
    args: argparse.Namespace, token: str, env: dict[str, str], stack: contextlib.ExitStack, started: list[str]
) -> subprocess.Popen[bytes]:
    """Start JupyterLab (stopped when ``stack`` unwinds) and print where it is."""
    try:
        workspace = prepare_workspace(args.notebook_dir)
    except OSError as e:
        _complain(f"--notebook-dir: {e}")
        raise _Exit(2) from None
    notebook_dir = workspace.folder
    host = _url_host(args.ip)
    port = args.port
    if port is None:
        # Another Jupyter often holds 8888 already; a port given explicitly is never changed.
        port = DEFAULT_LAB_PORT if _port_is_free(host, DEFAULT_LAB_PORT) else find_free_port()
    for warning in _lab_access_warnings(args.ip, port, token):
        _complain(warning)
    setup = prepare_lab(Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fastiot-lab-"))))
    lab_args = [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--ServerApp.root_dir={notebook_dir}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.ip={args.ip}",
        f"--IdentityProvider.token={token}",
    ]
    if args.no_browser:
        lab_args.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        lab_args.append("--allow-root")  # containers and CI run as root
    lab = stack.enter_context(_child("JupyterLab", lab_args, setup.environment(env), quiet_stop=True))
    started.append("JupyterLab")
    if not _wait_for_port(host, port, lab, _READY_TIMEOUT):
        _complain(f"JupyterLab did not start on port {port}")
        raise _Exit(1)
    url_host = f"[{host}]" if ":" in host else host
    query = f"?token={token}" if token else ""
    _say(f"JupyterLab at http://{url_host}:{port}/lab{query}")
    _say(f"notebooks in {notebook_dir}{workspace.describe_copied()}; Ctrl-C stops everything")
    return lab


def main(argv: list[str] | None = None) -> int:
    """Run the workbench; returns the exit status (0 after Ctrl-C or SIGTERM)."""
    args = build_parser().parse_args(argv)
    subcommand = chosen_subcommand(args)
    if subcommand is not None:
        return int(subcommand.run(args))
    if args.demo_rate <= 0:
        _complain("--demo-rate must be positive")
        return 2
    token = secrets.token_hex(16) if args.token is None else args.token
    if not args.no_lab:
        problem = _lab_access_problem(args.ip, token, args.allow_no_token)
        if problem is not None:
            _complain(problem)
            return 2

    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()  # a second Ctrl-C while stopping changes nothing: the stop runs to its end

    started: list[str] = []  # what this command started, for the last line
    with contextlib.ExitStack() as stack:
        # Unwound in reverse: children first, then the broker they use, then the one calm last line;
        # the signal handlers stay ours until then.
        for sig in (signal.SIGINT, signal.SIGTERM):
            stack.callback(signal.signal, sig, signal.signal(sig, on_signal))
        stack.callback(_say_stopped, started)
        try:
            env = dict(os.environ)
            _say(f"NATS broker {_broker(args, env, stack, started)}")
            if args.mqtt is not None:
                _say(f"MQTT listener {_mqtt_banner(env)}")
            children: list[tuple[str, subprocess.Popen[bytes]]] = []
            if not args.no_demo:
                demo = [sys.executable, "-m", "fastiot.demo", "--quiet", "--rate", str(args.demo_rate)]
                children.append(("demo plant", stack.enter_context(_child("demo plant", demo, env))))
                started.append("the demo plant")
                _say(f"demo plant publishing {args.demo_rate:g} values/s per sensor")
            lab: subprocess.Popen[bytes] | None = None
            if args.no_lab:
                _say("running without JupyterLab; Ctrl-C stops everything")
            else:
                lab = _lab(args, token, env, stack, started)
                children.append(("JupyterLab", lab))
        except _Exit as e:
            return e.status

        while not stopping.wait(0.2):
            for name, process in children:
                if process.poll() is not None:
                    _complain(f"{name} exited with status {process.returncode}")
                    return 0 if process is lab and process.returncode == 0 else 1
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
