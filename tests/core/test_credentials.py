"""TLS (with a CA, and mutual), credentials while reconnecting, and the workbench's broker on loopback only.

User/password and token from FASTIOT_NATS_* and their wrong values are in test_nats_server.py; this
file adds TLS with certificates made by the test (trustme), and what goes wrong around it. Every
failure must be a clear error within seconds, never a hang.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import trustme

from fastiot import workbench
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import BrokerAuthenticationError, BrokerUnavailableError
from fastiot.nats_server import NatsServer
from tests.core.fault_helpers import Counter, Note, StateLog, connect_and_round_trip, round_trip

FAILS_WITHIN = 4.0  # seconds; "a clear error within seconds, never a hang"


@dataclass
class Certificates:
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    other_ca: str
    stranger_cert: str  # a client certificate signed by the other CA
    stranger_key: str


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    directory: Path = tmp_path_factory.mktemp("tls")
    ca, other = trustme.CA(), trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("fastiot-client@example.org")
    stranger = other.issue_cert("stranger@example.org")

    def write(name: str, blob: trustme.Blob) -> str:
        path = directory / name
        blob.write_to_path(str(path))
        return str(path)

    return Certificates(
        ca=write("ca.pem", ca.cert_pem),
        server_cert=write("server.pem", server.cert_chain_pems[0]),
        server_key=write("server.key", server.private_key_pem),
        client_cert=write("client.pem", client.cert_chain_pems[0]),
        client_key=write("client.key", client.private_key_pem),
        other_ca=write("other-ca.pem", other.cert_pem),
        stranger_cert=write("stranger.pem", stranger.cert_chain_pems[0]),
        stranger_key=write("stranger.key", stranger.private_key_pem),
    )


@pytest.fixture(scope="module")
def tls_server(certs: Certificates) -> Iterator[NatsServer]:
    with NatsServer(tls_cert=certs.server_cert, tls_key=certs.server_key, http_port=0) as server:
        yield server


@pytest.fixture(scope="module")
def mtls_server(certs: Certificates) -> Iterator[NatsServer]:
    with NatsServer(
        tls_cert=certs.server_cert, tls_key=certs.server_key, tls_ca=certs.ca, tls_verify=True
    ) as server:
        yield server


def tls_versions(server: NatsServer, name: str) -> list[str]:
    """The TLS version of each of the server's client connections called ``name`` (from /connz)."""
    with urllib.request.urlopen(f"{server.monitor_url}/connz", timeout=5) as response:
        connz = json.load(response)
    return [c.get("tls_version", "") for c in connz["connections"] if c.get("name") == name]


async def fails_fast(match: str) -> BrokerUnavailableError:
    start = time.monotonic()
    with pytest.raises(BrokerUnavailableError, match=match) as info:
        await asyncio.wait_for(NatsBrokerConnection.connect(), FAILS_WITHIN + 10)
    elapsed = time.monotonic() - start
    assert elapsed < FAILS_WITHIN, f"took {elapsed:.1f} s"
    return info.value


async def test_tls_with_a_ca_from_the_environment(
    tls_server: NatsServer, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FASTIOT_NATS_SERVERS", tls_server.url)
    monkeypatch.setenv("FASTIOT_NATS_TLS_CA", certs.ca)
    connection = await NatsBrokerConnection.connect(name="tls-with-ca")
    try:
        assert await round_trip(connection, "over tls") == "over tls"
        # The server itself says the connection is encrypted.
        versions = await asyncio.to_thread(tls_versions, tls_server, "tls-with-ca")
        assert versions and all(v.startswith("1.") for v in versions), versions
    finally:
        await connection.close()


async def test_tls_checks_the_host_name_localhost_too(
    tls_server: NatsServer, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FASTIOT_NATS_SERVERS")
    monkeypatch.setenv("FASTIOT_NATS_HOST", "localhost")
    monkeypatch.setenv("FASTIOT_NATS_PORT", str(tls_server.port))
    monkeypatch.setenv("FASTIOT_NATS_TLS_CA", certs.ca)
    assert await connect_and_round_trip("over tls") == "over tls"


async def test_tls_with_the_wrong_ca_fails_fast_with_a_clear_error(
    tls_server: NatsServer, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FASTIOT_NATS_SERVERS", tls_server.url)
    monkeypatch.setenv("FASTIOT_NATS_TLS_CA", certs.other_ca)
    error = await fails_fast(r"TLS with the NATS server at .* failed .*CERTIFICATE_VERIFY_FAILED")
    assert "FASTIOT_NATS_TLS_CA" in str(error) and tls_server.url in str(error)
    assert not isinstance(error, BrokerAuthenticationError)


async def test_a_tls_server_without_tls_settings_fails_fast_saying_so(
    tls_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FASTIOT_NATS_SERVERS", tls_server.url)
    await fails_fast(r"the server requires TLS; no FASTIOT_NATS_TLS_\* is set")


async def test_tls_settings_never_fall_back_to_plain_text(
    nats_server: NatsServer, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nats-py upgrades to TLS only if the server asks; with a CA configured a plain server is an error."""
    monkeypatch.setenv("FASTIOT_NATS_SERVERS", nats_server.url)  # the session's server has no TLS
    monkeypatch.setenv("FASTIOT_NATS_TLS_CA", certs.ca)
    await fails_fast("does not offer TLS, so the connection would not be encrypted")


async def test_mutual_tls_with_a_client_certificate(
    mtls_server: NatsServer, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FASTIOT_NATS_SERVERS", mtls_server.url)
    monkeypatch.setenv("FASTIOT_NATS_TLS_CA", certs.ca)
    monkeypatch.setenv("FASTIOT_NATS_TLS_CERT", certs.client_cert)
    monkeypatch.setenv("FASTIOT_NATS_TLS_KEY", certs.client_key)
    assert await connect_and_round_trip("over tls") == "over tls"


async def test_mutual_tls_without_a_client_certificate_says_which_settings(
    mtls_server: NatsServer, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FASTIOT_NATS_SERVERS", mtls_server.url)
    monkeypatch.setenv("FASTIOT_NATS_TLS_CA", certs.ca)
    await fails_fast("requires a client certificate .*set FASTIOT_NATS_TLS_CERT and FASTIOT_NATS_TLS_KEY")


async def test_mutual_tls_with_a_certificate_of_another_ca_fails_fast(
    mtls_server: NatsServer, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FASTIOT_NATS_SERVERS", mtls_server.url)
    monkeypatch.setenv("FASTIOT_NATS_TLS_CA", certs.ca)
    monkeypatch.setenv("FASTIOT_NATS_TLS_CERT", certs.stranger_cert)
    monkeypatch.setenv("FASTIOT_NATS_TLS_KEY", certs.stranger_key)
    await fails_fast(r"TLS with the NATS server at .* failed.*FASTIOT_NATS_TLS_CERT")


async def test_user_and_password_over_tls(certs: Certificates, monkeypatch: pytest.MonkeyPatch) -> None:
    with NatsServer(
        user="alice", password="s3cret", tls_cert=certs.server_cert, tls_key=certs.server_key
    ) as server:
        monkeypatch.setenv("FASTIOT_NATS_SERVERS", server.url)
        monkeypatch.setenv("FASTIOT_NATS_TLS_CA", certs.ca)
        monkeypatch.setenv("FASTIOT_NATS_USER", "alice")
        monkeypatch.setenv("FASTIOT_NATS_PASSWORD", "s3cret")
        assert await connect_and_round_trip("over tls") == "over tls"
        monkeypatch.setenv("FASTIOT_NATS_PASSWORD", "wrong")
        start = time.monotonic()
        with pytest.raises(BrokerAuthenticationError, match="rejected the credentials"):
            await asyncio.wait_for(NatsBrokerConnection.connect(), FAILS_WITHIN + 10)
        assert time.monotonic() - start < FAILS_WITHIN


async def test_credentials_rejected_while_reconnecting_are_reported(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The server comes back with another password: waiting will not help, so the log says so (once),
    and the connection recovers by itself when the right password is back."""
    with NatsServer(user="alice", password="s3cret") as server:
        monkeypatch.setenv("FASTIOT_NATS_USER", "alice")
        monkeypatch.setenv("FASTIOT_NATS_PASSWORD", "s3cret")
        connection = await NatsBrokerConnection.connect(servers=server.url, reconnect_time_wait=0.1)
        log = StateLog(connection)
        rejected = Counter()

        class Watch(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if "rejected the credentials while reconnecting" in record.getMessage():
                    rejected.add()

        watch = Watch()
        logging.getLogger("fastiot.broker").addHandler(watch)
        try:
            await asyncio.to_thread(server.kill)
            await log.wait_for("reconnecting")
            server.password = "changed"
            await asyncio.to_thread(server.start)
            await rejected.wait_for(1)
            await asyncio.sleep(0.5)  # the fault lasts: about five more rejected attempts
            assert connection.failed_reconnect_attempts >= 3
            assert connection.state == "reconnecting"
            assert rejected.count == 1, "one error per outage, not one per attempt"
            assert "FASTIOT_NATS_PASSWORD" in caplog.text and server.url in caplog.text
            await asyncio.to_thread(server.kill)
            server.password = "s3cret"
            await asyncio.to_thread(server.start)
            await log.wait_for("connected")
            await connection.publish(Note.get_subject(), Note(text="back"))
            assert connection.state == "connected"
        finally:
            logging.getLogger("fastiot.broker").removeHandler(watch)
            await connection.close()


async def test_the_workbench_broker_binds_loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no FASTIOT_NATS_* set the workbench starts its own nats-server: nothing else on the
    network can reach it."""
    monkeypatch.delenv("FASTIOT_NATS_SERVERS")
    # Start our own even if a developer runs a NATS on localhost:4222.
    monkeypatch.setattr(workbench, "accepts_connections", lambda *args, **kwargs: False)
    try:
        url = await workbench.ensure_broker()
        server = workbench.started_server()
        assert server is not None and server.pid is not None and url == server.url
        listening = [
            c.laddr
            for c in psutil.Process(server.pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        ]
        assert listening, "the nats-server listens on nothing"
        assert {address.ip for address in listening} == {"127.0.0.1"}, listening
        assert server.port in {address.port for address in listening}
    finally:
        await workbench.shutdown()


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        (
            {"FASTIOT_NATS_TLS_CA": "/nonexistent/ca.pem"},
            r"FASTIOT_NATS_TLS_CA='/nonexistent/ca.pem' is not a",
        ),
        ({"FASTIOT_NATS_TLS_CA": "garbage"}, r"FASTIOT_NATS_TLS_CA='.*garbage.pem' is not a readable PEM"),
        (
            {"FASTIOT_NATS_TLS_CERT": "garbage"},
            r"FASTIOT_NATS_TLS_CERT='.*garbage.pem' and FASTIOT_NATS_TLS_KEY",
        ),
        (
            {"FASTIOT_NATS_TLS_KEY": "/some/key.pem"},
            "FASTIOT_NATS_TLS_KEY is set without FASTIOT_NATS_TLS_CERT",
        ),
    ],
    ids=["missing-ca", "garbage-ca", "garbage-cert", "key-without-cert"],
)
async def test_unusable_tls_files_name_the_setting(
    settings: dict[str, str], match: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    for name, value in settings.items():
        monkeypatch.setenv(name, str(garbage) if value == "garbage" else value)
    with pytest.raises(ValueError, match=match):
        await asyncio.wait_for(NatsBrokerConnection.connect(), FAILS_WITHIN)
