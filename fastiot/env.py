"""FASTIOT_* settings, read from the environment in one place.

Every value is read when it is asked for, not at import time, so that a broker the workbench starts
(which sets ``FASTIOT_NATS_*`` for the kernel) is seen by services created later in the same process.

Example:
    >>> from fastiot.env import env_broker
    >>> env_broker.servers  # doctest: +SKIP
    ['nats://localhost:4222']
"""

from __future__ import annotations

import logging
import os
import re

__all__ = [
    "ALL_SETTINGS",
    "DEFAULT_NATS_HOST",
    "DEFAULT_NATS_PORT",
    "DEFAULT_NATS_TIMEOUT",
    "FASTIOT_LOG_LEVEL",
    "FASTIOT_NATS_CREDS",
    "FASTIOT_NATS_DEFAULT_TIMEOUT",
    "FASTIOT_NATS_HOST",
    "FASTIOT_NATS_PASSWORD",
    "FASTIOT_NATS_PORT",
    "FASTIOT_NATS_SERVERS",
    "FASTIOT_NATS_TLS_CA",
    "FASTIOT_NATS_TLS_CERT",
    "FASTIOT_NATS_TLS_KEY",
    "FASTIOT_NATS_TOKEN",
    "FASTIOT_NATS_USER",
    "FASTIOT_SERVICE_ID",
    "NATS_CONNECTION_SETTINGS",
    "BasicEnv",
    "BrokerEnv",
    "env_basic",
    "env_broker",
    "redact_url",
]

FASTIOT_NATS_HOST = "FASTIOT_NATS_HOST"
FASTIOT_NATS_PORT = "FASTIOT_NATS_PORT"
FASTIOT_NATS_SERVERS = "FASTIOT_NATS_SERVERS"
FASTIOT_NATS_DEFAULT_TIMEOUT = "FASTIOT_NATS_DEFAULT_TIMEOUT"
FASTIOT_NATS_USER = "FASTIOT_NATS_USER"
FASTIOT_NATS_PASSWORD = "FASTIOT_NATS_PASSWORD"
FASTIOT_NATS_TOKEN = "FASTIOT_NATS_TOKEN"
FASTIOT_NATS_CREDS = "FASTIOT_NATS_CREDS"
FASTIOT_NATS_TLS_CA = "FASTIOT_NATS_TLS_CA"
FASTIOT_NATS_TLS_CERT = "FASTIOT_NATS_TLS_CERT"
FASTIOT_NATS_TLS_KEY = "FASTIOT_NATS_TLS_KEY"
FASTIOT_LOG_LEVEL = "FASTIOT_LOG_LEVEL"
FASTIOT_SERVICE_ID = "FASTIOT_SERVICE_ID"

# Where the broker is and how to log in to it: what a test or a fresh environment clears.
NATS_CONNECTION_SETTINGS: tuple[str, ...] = (
    FASTIOT_NATS_SERVERS,
    FASTIOT_NATS_HOST,
    FASTIOT_NATS_PORT,
    FASTIOT_NATS_USER,
    FASTIOT_NATS_PASSWORD,
    FASTIOT_NATS_TOKEN,
    FASTIOT_NATS_CREDS,
    FASTIOT_NATS_TLS_CA,
    FASTIOT_NATS_TLS_CERT,
    FASTIOT_NATS_TLS_KEY,
)
ALL_SETTINGS: tuple[str, ...] = (
    *NATS_CONNECTION_SETTINGS,
    FASTIOT_NATS_DEFAULT_TIMEOUT,
    FASTIOT_LOG_LEVEL,
    FASTIOT_SERVICE_ID,
)

DEFAULT_NATS_HOST = "localhost"
DEFAULT_NATS_PORT = 4222
DEFAULT_NATS_TIMEOUT = 30.0


def redact_url(url: str) -> str:
    """``url`` with any user, password or token replaced by ``***``, for errors, logs and banners.

    Example:
        >>> redact_url("nats://alice:s3cret@broker:4222")
        'nats://***:***@broker:4222'
        >>> redact_url("nats://mytoken@broker:4222, nats://broker2:4222")
        'nats://***@broker:4222, nats://broker2:4222'
    """
    return _CREDENTIALS_IN_URL.sub(
        lambda m: f"{m['scheme']}***{':***' if m['password'] is not None else ''}@", url
    )


_CREDENTIALS_IN_URL = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s:,]*(?::(?P<password>[^/@\s,]*))?@"
)


def _get(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


class BrokerEnv:
    """The NATS connection settings. Each property reads the environment when accessed."""

    @property
    def host(self) -> str:
        """``FASTIOT_NATS_HOST``, default ``localhost``."""
        return _get(FASTIOT_NATS_HOST) or DEFAULT_NATS_HOST

    @property
    def port(self) -> int:
        """``FASTIOT_NATS_PORT``, default 4222."""
        raw = _get(FASTIOT_NATS_PORT)
        if raw is None:
            return DEFAULT_NATS_PORT
        try:
            port = int(raw)
        except ValueError:
            raise ValueError(
                f"{FASTIOT_NATS_PORT}={raw!r} is not a port number; set it to e.g. 4222"
            ) from None
        if not 0 < port < 65536:
            raise ValueError(f"{FASTIOT_NATS_PORT}={port} is out of range; use a port from 1 to 65535")
        return port

    @property
    def default_timeout(self) -> float:
        """``FASTIOT_NATS_DEFAULT_TIMEOUT`` in seconds, default 30."""
        raw = _get(FASTIOT_NATS_DEFAULT_TIMEOUT)
        if raw is None:
            return DEFAULT_NATS_TIMEOUT
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(
                f"{FASTIOT_NATS_DEFAULT_TIMEOUT}={raw!r} is not a number of seconds; set it to e.g. 30"
            ) from None
        if not value > 0:  # also rejects nan, which float() accepts
            raise ValueError(f"{FASTIOT_NATS_DEFAULT_TIMEOUT} must be positive, got {value}")
        return value

    @property
    def servers(self) -> list[str]:
        """The server URLs to connect to.

        ``FASTIOT_NATS_SERVERS`` (comma separated) if set, else ``nats://HOST:PORT``.
        """
        raw = _get(FASTIOT_NATS_SERVERS)
        if raw is not None:
            servers = [s.strip() for s in raw.split(",") if s.strip()]
            return [s if "://" in s else f"nats://{s}" for s in servers]
        return [f"nats://{self.host}:{self.port}"]

    @property
    def is_configured(self) -> bool:
        """True if any of FASTIOT_NATS_SERVERS / _HOST / _PORT is set."""
        return any(_get(n) is not None for n in (FASTIOT_NATS_SERVERS, FASTIOT_NATS_HOST, FASTIOT_NATS_PORT))

    @property
    def user(self) -> str | None:
        return _get(FASTIOT_NATS_USER)

    @property
    def password(self) -> str | None:
        return _get(FASTIOT_NATS_PASSWORD)

    @property
    def token(self) -> str | None:
        return _get(FASTIOT_NATS_TOKEN)

    @property
    def creds(self) -> str | None:
        return _get(FASTIOT_NATS_CREDS)

    @property
    def tls_ca(self) -> str | None:
        return _get(FASTIOT_NATS_TLS_CA)

    @property
    def tls_cert(self) -> str | None:
        return _get(FASTIOT_NATS_TLS_CERT)

    @property
    def tls_key(self) -> str | None:
        return _get(FASTIOT_NATS_TLS_KEY)


class BasicEnv:
    """Settings that are not about the broker."""

    @property
    def log_level(self) -> int:
        """``FASTIOT_LOG_LEVEL`` as a number (names like ``debug`` or ``INFO`` work too), default INFO."""
        raw = _get(FASTIOT_LOG_LEVEL)
        if raw is None:
            return logging.INFO
        if raw.isdigit():
            return int(raw)
        level = logging.getLevelName(raw.upper())
        if not isinstance(level, int):
            raise ValueError(
                f"{FASTIOT_LOG_LEVEL}={raw!r} is not a log level; use DEBUG, INFO, WARNING or ERROR"
            )
        return level

    @property
    def service_id(self) -> str:
        """``FASTIOT_SERVICE_ID``, default empty: separates several instances of one service."""
        return _get(FASTIOT_SERVICE_ID) or ""


env_broker = BrokerEnv()
env_basic = BasicEnv()
