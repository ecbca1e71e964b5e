"""Why a first connect failed, told by a pure function (no server needed), and whom to try next."""

from __future__ import annotations

import ssl
from types import SimpleNamespace
from urllib.parse import urlparse

import nats.errors
import pytest

from fastiot.core._connect import (
    ConnectFailure,
    ReconnectServerChoice,
    classify_connect_failure,
    connect_failure_error,
)
from fastiot.exceptions import BrokerAuthenticationError, BrokerUnavailableError

REFUSED = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 4222)")


@pytest.mark.parametrize(
    ("err", "server_info", "tls", "cert", "expected"),
    [
        (nats.errors.AuthorizationError(), {}, False, False, ConnectFailure.AUTHENTICATION),
        # while reconnecting nats-py gives a plain Error with the server's text
        (nats.errors.Error("nats: 'authorization violation'"), {}, True, True, ConnectFailure.AUTHENTICATION),
        (
            nats.errors.UnexpectedEOF(),
            {"tls_verify": True},
            True,
            False,
            ConnectFailure.CLIENT_CERTIFICATE_REQUIRED,
        ),
        (nats.errors.UnexpectedEOF(), {"tls_verify": True}, True, True, ConnectFailure.UNREACHABLE),
        (ssl.SSLCertVerificationError("certificate verify failed"), {}, True, False, ConnectFailure.TLS),
        (
            nats.errors.Error("nats: no servers available for connection"),
            {"tls_required": True},
            False,
            False,
            ConnectFailure.TLS,
        ),
        (OSError("[SSL: WRONG_VERSION_NUMBER] wrong version number"), {}, True, False, ConnectFailure.TLS),
        (REFUSED, {}, False, False, ConnectFailure.UNREACHABLE),
        (TimeoutError(), {}, False, False, ConnectFailure.UNREACHABLE),
    ],
    ids=[
        "auth",
        "auth-text",
        "mtls-no-cert",
        "mtls-with-cert",
        "ssl-error",
        "server-wants-tls",
        "ssl-text",
        "refused",
        "timeout",
    ],
)
def test_classify_connect_failure(
    err: BaseException, server_info: dict[str, bool], tls: bool, cert: bool, expected: ConnectFailure
) -> None:
    assert (
        classify_connect_failure(err, server_info, tls_configured=tls, client_cert_configured=cert)
        is expected
    )


def test_each_failure_has_an_error_that_names_the_setting_to_check() -> None:
    urls = "nats://broker:4222"
    auth = connect_failure_error(
        ConnectFailure.AUTHENTICATION, nats.errors.AuthorizationError(), urls, tls_configured=False
    )
    assert isinstance(auth, BrokerAuthenticationError) and "FASTIOT_NATS_PASSWORD" in str(auth)
    mtls = connect_failure_error(
        ConnectFailure.CLIENT_CERTIFICATE_REQUIRED, REFUSED, urls, tls_configured=True
    )
    assert "FASTIOT_NATS_TLS_CERT" in str(mtls)
    tls = connect_failure_error(ConnectFailure.TLS, REFUSED, urls, tls_configured=False)
    assert "no FASTIOT_NATS_TLS_* is set" in str(tls)
    down = connect_failure_error(ConnectFailure.UNREACHABLE, REFUSED, urls, tls_configured=False)
    assert type(down) is BrokerUnavailableError and "FASTIOT_NATS_SERVERS" in str(down)
    for err in (auth, mtls, tls, down):
        assert urls in str(err)


def _servers(*netlocs: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(uri=urlparse(f"nats://{n}")) for n in netlocs]


def test_reconnect_choice_tries_every_server_once_per_round_the_lost_one_last() -> None:
    servers = _servers("a:1", "b:2", "c:3")
    choice = ReconnectServerChoice(reconnect_time_wait=1.5)
    choice.start_outage("a:1")
    first_round = [choice.choose(servers) for _ in servers]
    assert [delay for _, delay in first_round] == [0.0, 0.0, 0.0]
    assert sorted(s.uri.netloc for s, _ in first_round) == ["a:1", "b:2", "c:3"]
    assert first_round[-1][0].uri.netloc == "a:1"  # the lost server last
    _, delay = choice.choose(servers)
    assert delay == 1.5  # a new round waits
