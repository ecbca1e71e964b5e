"""Connecting to NATS: options from ``FASTIOT_NATS_*``, why a connect failed, whom to try next.

Pure functions and one small policy object, so each is tested without a server;
:meth:`fastiot.core.broker_connection.NatsBrokerConnection.connect` puts them together.

Example:
    >>> import nats.errors
    >>> classify_connect_failure(nats.errors.AuthorizationError(), {}, tls_configured=False,
    ...                          client_cert_configured=False)
    <ConnectFailure.AUTHENTICATION: 'authentication'>
"""

from __future__ import annotations

import importlib.util
import os
import random
import ssl
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

import nats.errors

from fastiot.env import env_broker, redact_url
from fastiot.exceptions import BrokerAuthenticationError, BrokerUnavailableError

__all__ = [
    "ConnectFailure",
    "ReconnectServerChoice",
    "classify_connect_failure",
    "connect_failure_error",
    "is_authorization_error",
    "nats_options_from_env",
]


class ConnectFailure(str, Enum):
    """Why the first connect to NATS failed."""

    AUTHENTICATION = "authentication"
    """The server rejected the credentials."""
    CLIENT_CERTIFICATE_REQUIRED = "client certificate required"
    """The server wants a client certificate (mutual TLS) and none is configured."""
    TLS = "tls"
    """The TLS handshake failed, or the server requires TLS and none is configured."""
    UNREACHABLE = "unreachable"
    """No server accepted a connection."""


def is_authorization_error(err: BaseException) -> bool:
    """Whether ``err`` says the server rejected the credentials.

    nats-py raises ``AuthorizationError`` at the first connect, but a plain ``Error`` with the server's
    text ("authorization violation") while reconnecting.
    """
    return isinstance(err, nats.errors.AuthorizationError) or "authorization" in str(err).lower()


def classify_connect_failure(
    err: BaseException,
    server_info: Mapping[str, Any],
    *,
    tls_configured: bool,
    client_cert_configured: bool,
) -> ConnectFailure:
    """Tell why a first connect failed, from the error and the server's INFO (if it sent one).

    Args:
        err: The last error of the connect attempts.
        server_info: The server's INFO (``tls_required``, ``tls_verify``); empty if none arrived.
        tls_configured: Whether a TLS context was given (``FASTIOT_NATS_TLS_*``).
        client_cert_configured: Whether a client certificate was given (``FASTIOT_NATS_TLS_CERT``).
    """
    if is_authorization_error(err):
        return ConnectFailure.AUTHENTICATION
    if server_info.get("tls_verify") and tls_configured and not client_cert_configured:
        return ConnectFailure.CLIENT_CERTIFICATE_REQUIRED
    text = f"{type(err).__name__}: {err}".lower()
    if isinstance(err, ssl.SSLError) or "ssl" in text or "tls" in text or server_info.get("tls_required"):
        return ConnectFailure.TLS
    return ConnectFailure.UNREACHABLE


def connect_failure_error(
    failure: ConnectFailure, err: BaseException, urls: str, *, tls_configured: bool
) -> BrokerUnavailableError:
    """The error to raise for a failed first connect: what happened and which setting to check.

    Args:
        failure: From :func:`classify_connect_failure`.
        err: The last error of the connect attempts.
        urls: The server URLs tried, as shown to the user (redacted by the caller; the error's text is
            redacted here).
        tls_configured: Whether a TLS context was given.
    """
    text = redact_url(f"{type(err).__name__}: {err}".strip())
    if failure is ConnectFailure.AUTHENTICATION:
        return BrokerAuthenticationError(
            f"the NATS server at {urls} rejected the credentials ({text}); check FASTIOT_NATS_USER / "
            f"FASTIOT_NATS_PASSWORD, FASTIOT_NATS_TOKEN or FASTIOT_NATS_CREDS"
        )
    if failure is ConnectFailure.CLIENT_CERTIFICATE_REQUIRED:
        return BrokerUnavailableError(
            f"the NATS server at {urls} requires a client certificate (mutual TLS) and closed the "
            f"connection ({text}); set FASTIOT_NATS_TLS_CERT and FASTIOT_NATS_TLS_KEY"
        )
    if failure is ConnectFailure.TLS:
        hint = "" if tls_configured else " (the server requires TLS; no FASTIOT_NATS_TLS_* is set)"
        return BrokerUnavailableError(
            f"TLS with the NATS server at {urls} failed ({text}){hint}; check FASTIOT_NATS_TLS_CA "
            f"(the CA that signed the server's certificate), FASTIOT_NATS_TLS_CERT and "
            f"FASTIOT_NATS_TLS_KEY"
        )
    return BrokerUnavailableError(
        f"no NATS server accepted a connection at {urls} ({text}); "
        f"start one or set FASTIOT_NATS_SERVERS / FASTIOT_NATS_HOST / FASTIOT_NATS_PORT"
    )


def _readable(path: str, variable: str, what: str) -> str:
    # nats-py reads these files only while connecting, where a missing one surfaces as a bare
    # FileNotFoundError (or, without the nkeys package, a ModuleNotFoundError) that names no setting.
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise ValueError(f"{variable}={path!r} is not a readable {what}; give the path of one")
    if importlib.util.find_spec("nkeys") is None:
        raise ValueError(
            f"{variable} needs the nkeys package, which signs the login: "
            f"pip install 'nats-py[nkeys]' (a dependency of fastiot-workbench)"
        )
    return path


def nats_options_from_env() -> dict[str, Any]:
    """``nats.connect`` options for the credentials and TLS settings in ``FASTIOT_NATS_*``.

    Raises:
        ValueError: A ``FASTIOT_NATS_TLS_*``, ``_CREDS`` or ``_NKEY`` setting names a missing or
            unreadable file, or the key is set without the certificate.
    """
    options: dict[str, Any] = {}
    if env_broker.user is not None:
        options["user"] = env_broker.user
        options["password"] = env_broker.password or ""
    if env_broker.token is not None:
        options["token"] = env_broker.token
    if env_broker.creds is not None:
        options["user_credentials"] = _readable(env_broker.creds, "FASTIOT_NATS_CREDS", "credentials file")
    if env_broker.nkey is not None:
        options["nkeys_seed"] = _readable(env_broker.nkey, "FASTIOT_NATS_NKEY", "NKey seed file")
    if env_broker.inbox_prefix is not None:
        options["inbox_prefix"] = env_broker.inbox_prefix
    tls_ca, tls_cert, tls_key = env_broker.tls_ca, env_broker.tls_cert, env_broker.tls_key
    if tls_key is not None and tls_cert is None:
        raise ValueError(
            "FASTIOT_NATS_TLS_KEY is set without FASTIOT_NATS_TLS_CERT; set both for a client "
            "certificate (mutual TLS), or neither"
        )
    if tls_ca is not None or tls_cert is not None:
        # ssl's own errors name neither the setting nor the file ("[SSL] PEM lib", "No such file").
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls_ca)
        except (OSError, ssl.SSLError) as e:
            raise ValueError(
                f"FASTIOT_NATS_TLS_CA={tls_ca!r} is not a readable PEM file of CA certificates ({e})"
            ) from None
        if tls_cert is not None:
            try:
                context.load_cert_chain(tls_cert, tls_key)
            except (OSError, ssl.SSLError) as e:
                raise ValueError(
                    f"FASTIOT_NATS_TLS_CERT={tls_cert!r} and FASTIOT_NATS_TLS_KEY={tls_key!r} are not a "
                    f"readable PEM certificate and its private key ({e})"
                ) from None
        options["tls"] = context
    return options


class ReconnectServerChoice:
    """Which server to try next while reconnecting (nats-py's ``reconnect_to_server_handler``).

    In a round every known server is tried once, the one just lost last, without waiting; between
    rounds it waits ``reconnect_time_wait``. nats-py's own choice may retry the dead server first and
    then wait ``reconnect_time_wait`` before trying a live one, so a cluster failover took a second in a
    third of the cases instead of milliseconds.

    Args:
        reconnect_time_wait: Seconds to wait between two rounds.
    """

    def __init__(self, reconnect_time_wait: float) -> None:
        self.reconnect_time_wait: float = reconnect_time_wait
        self._lost_server: str | None = None
        self._tried_this_round: set[str] = set()

    def start_outage(self, lost_server: str | None) -> None:
        """A new outage begins; ``lost_server`` (its ``host:port``) is the one just lost."""
        self._lost_server = lost_server
        self._tried_this_round = set()

    def choose(self, servers: Sequence[Any]) -> tuple[Any, float]:
        """The server to try next (one of nats-py's ``Srv``) and the seconds to wait before."""
        untried = [s for s in servers if s.uri.netloc not in self._tried_this_round]
        delay = 0.0
        if not untried:
            self._tried_this_round.clear()
            untried = list(servers)
            delay = self.reconnect_time_wait
        others = [s for s in untried if s.uri.netloc != self._lost_server]
        choice = random.choice(others) if others else untried[0]
        self._tried_this_round.add(choice.uri.netloc)
        return choice, delay
