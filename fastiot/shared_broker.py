"""One broker per user and machine for the kernels that start one on demand, with a login of its own.

Two notebooks in a JupyterLab not started by ``fastiot-workbench`` (the user's own JupyterLab, VS Code,
JupyterHub) would each start a broker, and a service prototyped in one would be invisible to a
SubjectBrowser in the other. So the first kernel starts a detached supervisor (``python -m
fastiot.shared_broker``) that runs the real ``nats-server`` with a random password made for this
start; later kernels find it and join it. Its address and login are in ``broker.json`` in
:func:`runtime_dir` (a folder only the user can enter, the file readable by the user only), next to a
lock file, so that two kernels starting at once start one broker, and one file per joined kernel
(``kernels/<pid>``).

The supervisor stops the broker when no joined kernel is alive any more and no client has been
connected for :data:`DEFAULT_IDLE_TIMEOUT` seconds (``$FASTIOT_SHARED_BROKER_IDLE``): it watches the
kernels' process ids and the server's connection count on its monitoring port (loopback only).

Example:
    >>> from fastiot import shared_broker
    >>> broker = shared_broker.join()  # doctest: +SKIP
    >>> broker.url, broker.nats_env()["FASTIOT_NATS_PASSWORD"] == broker.password  # doctest: +SKIP
    ('nats://127.0.0.1:40313', True)
    >>> shared_broker.leave()  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from fastiot.env import (
    FASTIOT_MQTT_PORT,
    FASTIOT_NATS_HOST,
    FASTIOT_NATS_PASSWORD,
    FASTIOT_NATS_PORT,
    FASTIOT_NATS_SERVERS,
    FASTIOT_NATS_USER,
    mqtt_port,
)
from fastiot.exceptions import NatsServerStartError
from fastiot.nats_server import (
    DEFAULT_PROBE_TIMEOUT,
    NatsServer,
    accepts_connections,
    pick_mqtt_port,
    start_child_process,
)

__all__ = [
    "BROKER_USER",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_JOIN_TIMEOUT",
    "IDLE_ENV",
    "RUNTIME_DIR_ENV",
    "SharedBroker",
    "join",
    "leave",
    "new_password",
    "runtime_dir",
]

BROKER_USER = "fastiot"
"""The user name of the brokers the workbench starts (the password is what is secret)."""
DEFAULT_IDLE_TIMEOUT = 60.0
"""Seconds the shared broker waits, with no kernel and no client left, before it stops."""
DEFAULT_JOIN_TIMEOUT = 20.0
"""Seconds :func:`join` waits for the lock and for a broker it started to come up."""
RUNTIME_DIR_ENV = "FASTIOT_SHARED_BROKER_DIR"
"""Where the shared broker's files are, instead of the default of :func:`runtime_dir`."""
IDLE_ENV = "FASTIOT_SHARED_BROKER_IDLE"
"""Seconds instead of :data:`DEFAULT_IDLE_TIMEOUT`."""

_INFO = "broker.json"
_LOCK = "broker.lock"
_KERNELS = "kernels"
_POLL = 0.2
_KEEPER_STOP_TIMEOUT = 5.0


def new_password() -> str:
    """A fresh random password for a broker the workbench starts (as JupyterLab makes its token)."""
    return secrets.token_urlsafe(24)


def runtime_dir() -> Path:
    """The folder of the shared broker's files.

    ``$FASTIOT_SHARED_BROKER_DIR``, else ``$XDG_RUNTIME_DIR/fastiot-workbench``, else
    ``~/.cache/fastiot-workbench/run``.
    """
    given = os.environ.get(RUNTIME_DIR_ENV, "").strip()
    if given:
        return Path(given).expanduser()
    xdg = os.environ.get("XDG_RUNTIME_DIR", "").strip()
    if xdg and Path(xdg).is_dir():
        return Path(xdg) / "fastiot-workbench"
    return Path.home() / ".cache" / "fastiot-workbench" / "run"


@dataclass(frozen=True)
class SharedBroker:
    """Where the shared broker is and how to log in (what ``broker.json`` holds)."""

    host: str
    port: int
    user: str
    password: str
    pid: int
    """The nats-server's process id."""
    supervisor_pid: int
    mqtt_port: int | None = None
    """The port of its MQTT listener (``None``: it has none), asked for with ``FASTIOT_MQTT_PORT``."""

    @property
    def url(self) -> str:
        """``nats://HOST:PORT``, without the login."""
        return f"nats://{self.host}:{self.port}"

    @property
    def is_running(self) -> bool:
        """Whether its nats-server still accepts connections."""
        return _alive(self.pid) and accepts_connections(self.host, self.port, DEFAULT_PROBE_TIMEOUT)

    def nats_env(self) -> dict[str, str]:
        """The ``FASTIOT_NATS_*`` settings that lead a client (kernel, service, CLI) to it."""
        env = {
            FASTIOT_NATS_HOST: self.host,
            FASTIOT_NATS_PORT: str(self.port),
            FASTIOT_NATS_USER: self.user,
            FASTIOT_NATS_PASSWORD: self.password,
        }
        if self.mqtt_port is not None:
            env[FASTIOT_MQTT_PORT] = str(self.mqtt_port)
        return env

    def __repr__(self) -> str:  # never the password, not even in a traceback
        return f"SharedBroker({self.url}, pid={self.pid})"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed process whose parent has not collected it yet is a zombie: it has left.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


@contextlib.contextmanager
def _locked(folder: Path, timeout: float) -> Iterator[None]:
    import fcntl

    with open(folder / _LOCK, "a") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise NatsServerStartError(
                        f"another kernel holds {folder / _LOCK} for more than {timeout:g} s while starting "
                        f"the shared broker; try again, or remove the folder if no kernel is running"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read(folder: Path) -> SharedBroker | None:
    try:
        return SharedBroker(**json.loads((folder / _INFO).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _write(folder: Path, broker: SharedBroker) -> None:
    # Written whole under another name, owner-only from its creation, then renamed: a reader never
    # sees half a file, and nobody else ever sees the password.
    partial = folder / f".{_INFO}.{os.getpid()}"
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(asdict(broker), file)
    partial.replace(folder / _INFO)


def join(timeout: float = DEFAULT_JOIN_TIMEOUT) -> SharedBroker:
    """Join this user's shared broker, starting it if none runs.

    This process counts as a kernel of it until :func:`leave` or its end.

    Raises:
        NatsServerStartError: The broker did not come up within ``timeout`` seconds.

    Example:
        >>> os.environ.update(join().nats_env())  # doctest: +SKIP
    """
    folder = _private_dir(runtime_dir())
    kernels = _private_dir(folder / _KERNELS)
    with _locked(folder, timeout):
        broker = _read(folder)
        if broker is None or not _alive(broker.supervisor_pid) or not broker.is_running:
            (folder / _INFO).unlink(missing_ok=True)
            broker = _start_supervisor(folder, timeout)
        (kernels / str(os.getpid())).touch()
    return broker


def leave() -> None:
    """This process no longer uses the shared broker (it stops once nobody does)."""
    (runtime_dir() / _KERNELS / str(os.getpid())).unlink(missing_ok=True)


def _start_supervisor(folder: Path, timeout: float) -> SharedBroker:
    log = folder / "supervisor.log"
    with open(log, "ab") as out:
        os.chmod(log, 0o600)
        # Detached on purpose (its own session, not a child that dies with this kernel): it outlives
        # the kernel that started it as long as other kernels use the broker.
        process = subprocess.Popen(
            [sys.executable, "-m", "fastiot.shared_broker", "--dir", str(folder)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            cwd=folder,  # not the kernel's folder, which may go away while the broker runs
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        broker = _read(folder)
        if broker is not None and broker.supervisor_pid == process.pid:
            return broker
        if process.poll() is not None:
            break
        time.sleep(0.05)
    if process.poll() is None:
        process.terminate()
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-10:])
    raise NatsServerStartError(f"the shared NATS broker did not start within {timeout:g} s:\n{tail}")


# --- the supervisor (python -m fastiot.shared_broker) ---------------------------------------------------


def _connections(monitor_url: str) -> int:
    with urllib.request.urlopen(f"{monitor_url}/varz", timeout=2) as response:
        return int(json.load(response).get("connections", 0))


def _kernels_alive(kernels: Path) -> int:
    alive = 0
    for entry in kernels.iterdir():
        if entry.name.isdigit() and _alive(int(entry.name)):
            alive += 1
        else:
            entry.unlink(missing_ok=True)
    return alive


def supervise(folder: Path, idle_timeout: float) -> None:
    """Run the shared broker until no kernel and no client has used it for ``idle_timeout`` seconds."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    password = new_password()
    wanted_mqtt = mqtt_port()  # the joining kernel's FASTIOT_MQTT_PORT, inherited
    server = NatsServer(
        jetstream=True,
        user=BROKER_USER,
        password=password,
        http_port=0,
        mqtt_port=None if wanted_mqtt is None else pick_mqtt_port(wanted_mqtt),
    ).start()
    assert server.pid is not None and server.monitor_url is not None
    me = SharedBroker(
        server.host, server.port, BROKER_USER, password, server.pid, os.getpid(), server.mqtt_port
    )
    kernels = _private_dir(folder / _KERNELS)
    keeper: subprocess.Popen[bytes] | None = None
    try:
        keeper = _start_history_keeper(server.url, password)
        # The keeper's own connection is no user of the broker: it must not keep it from stopping.
        own_connections = 0 if keeper is None else 1
        _write(folder, me)
        idle_since: float | None = None
        while not stop.wait(_POLL) and server.is_running:
            try:
                busy = _kernels_alive(kernels) > 0 or _connections(server.monitor_url) > own_connections
            except OSError:
                busy = True  # the monitoring port did not answer this time: not a reason to stop
            if busy:
                idle_since = None
                continue
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since < idle_timeout:
                continue
            # Decided under the lock, so that a kernel joining right now either is seen here or
            # finds no broker.json and starts a new broker.
            with _locked(folder, DEFAULT_JOIN_TIMEOUT):
                if _kernels_alive(kernels) == 0:
                    if _read(folder) == me:
                        (folder / _INFO).unlink(missing_ok=True)
                    break
    finally:
        if _read(folder) == me:
            (folder / _INFO).unlink(missing_ok=True)
        if keeper is not None and keeper.poll() is None:
            keeper.terminate()
            try:
                keeper.wait(_KEEPER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                keeper.kill()
        server.stop()


def _start_history_keeper(url: str, password: str) -> subprocess.Popen[bytes] | None:
    """The rolling history of the shared broker (``FASTIOT_HISTORY*``).

    Its stream now, its keeper as a child of this supervisor, which logs in through its environment (never
    on its command line).
    """
    from fastiot.history.rolling import HistorySettings
    from fastiot.history.rolling_cli import prepare_for_cli

    command = prepare_for_cli(url, HistorySettings.from_env(), login=(BROKER_USER, password))
    if command is None:
        return None
    env = {**os.environ, FASTIOT_NATS_USER: BROKER_USER, FASTIOT_NATS_PASSWORD: password}
    for name in (FASTIOT_NATS_SERVERS, FASTIOT_NATS_HOST, FASTIOT_NATS_PORT):
        env.pop(name, None)
    return start_child_process(command, env=env, stdin=subprocess.DEVNULL)


def _idle_timeout() -> float:
    raw = os.environ.get(IDLE_ENV, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_IDLE_TIMEOUT
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise SystemExit(f"{IDLE_ENV}={raw!r} is not a number of seconds; set it to e.g. 60")
    return value


def main(argv: list[str] | None = None) -> int:
    """``python -m fastiot.shared_broker --dir DIR``: what :func:`join` starts."""
    parser = argparse.ArgumentParser(prog="python -m fastiot.shared_broker")
    parser.add_argument("--dir", type=Path, required=True, help="the runtime folder (see runtime_dir())")
    args = parser.parse_args(argv)
    supervise(_private_dir(args.dir), _idle_timeout())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
