"""FASTIOT_* settings, read from the environment in one place (pydantic-settings).

FastIoT's module paths sit beside this one: :mod:`fastiot.env.env` (``env_basic``, ``env_broker``) and
:mod:`fastiot.env.env_constants_basic` (the variable names), so service code written for FastIoT imports
them unchanged.

Every value is read when it is asked for, not at import time, so that a broker the workbench starts
(which sets ``FASTIOT_NATS_*`` for the kernel) is seen by services created later in the same process.
A value that does not fit raises :class:`~fastiot.exceptions.SettingsError` (a ``ValueError``) naming
the variable and what it expects. Empty or blank variables count as unset.

Example:
    >>> from fastiot.env import env_broker
    >>> env_broker.servers  # doctest: +SKIP
    ['nats://localhost:4222']
"""

from __future__ import annotations

import logging
import os
import re
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BeforeValidator, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fastiot.exceptions import SettingsError

__all__ = [
    "ALL_SETTINGS",
    "DEFAULT_CONFIG_DIR",
    "DEFAULT_NATS_HOST",
    "DEFAULT_NATS_PORT",
    "DEFAULT_NATS_TIMEOUT",
    "DEFAULT_VOLUME_DIR",
    "FASTIOT_CONFIG_DIR",
    "FASTIOT_LOG_LEVEL",
    "FASTIOT_MQTT_PORT",
    "FASTIOT_NATS_CREDS",
    "FASTIOT_NATS_DEFAULT_TIMEOUT",
    "FASTIOT_NATS_HOST",
    "FASTIOT_NATS_INBOX_PREFIX",
    "FASTIOT_NATS_JS_DOMAIN",
    "FASTIOT_NATS_NKEY",
    "FASTIOT_NATS_PASSWORD",
    "FASTIOT_NATS_PORT",
    "FASTIOT_NATS_SERVERS",
    "FASTIOT_NATS_TLS_CA",
    "FASTIOT_NATS_TLS_CERT",
    "FASTIOT_NATS_TLS_KEY",
    "FASTIOT_NATS_TOKEN",
    "FASTIOT_NATS_USER",
    "FASTIOT_SERVICE_ID",
    "FASTIOT_VOLUME_DIR",
    "NATS_CONNECTION_SETTINGS",
    "BasicEnv",
    "BasicSettings",
    "BrokerEnv",
    "BrokerSettings",
    "env_basic",
    "env_broker",
    "mqtt_port",
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
# What a locked-down account needs: an NKey seed file, its own reply inboxes, a JetStream domain.
FASTIOT_NATS_NKEY = "FASTIOT_NATS_NKEY"
FASTIOT_NATS_INBOX_PREFIX = "FASTIOT_NATS_INBOX_PREFIX"
FASTIOT_NATS_JS_DOMAIN = "FASTIOT_NATS_JS_DOMAIN"
FASTIOT_LOG_LEVEL = "FASTIOT_LOG_LEVEL"
FASTIOT_MQTT_PORT = "FASTIOT_MQTT_PORT"
"""The broker's MQTT listener: where it is (set by the workbench for its kernels), or, before a broker is
started on demand, that it should have one (``0``: 1883 when free, else a free port)."""
FASTIOT_SERVICE_ID = "FASTIOT_SERVICE_ID"
FASTIOT_CONFIG_DIR = "FASTIOT_CONFIG_DIR"
FASTIOT_VOLUME_DIR = "FASTIOT_VOLUME_DIR"

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
    FASTIOT_NATS_NKEY,
    FASTIOT_NATS_INBOX_PREFIX,
    FASTIOT_NATS_JS_DOMAIN,
    FASTIOT_MQTT_PORT,
)
ALL_SETTINGS: tuple[str, ...] = (
    *NATS_CONNECTION_SETTINGS,
    FASTIOT_NATS_DEFAULT_TIMEOUT,
    FASTIOT_LOG_LEVEL,
    FASTIOT_SERVICE_ID,
    FASTIOT_CONFIG_DIR,
    FASTIOT_VOLUME_DIR,
)

DEFAULT_NATS_HOST = "localhost"
DEFAULT_NATS_PORT = 4222
DEFAULT_NATS_TIMEOUT = 30.0
# FastIoT's defaults: where its deployments mount configuration and data into a service's container.
DEFAULT_CONFIG_DIR = "/etc/fastiot"
DEFAULT_VOLUME_DIR = "/var/fastiot"


def redact_url(url: str) -> str:
    """``url`` with any user, password or token replaced by ``***``, for errors, logs and banners.

    Example:
        >>> redact_url("nats://alice:s3cret@broker:4222")
        'nats://***:***@broker:4222'
        >>> redact_url("nats://mytoken@broker:4222, nats://broker2:4222")
        'nats://***@broker:4222, nats://broker2:4222'
    """
    return _CREDENTIALS_IN_URL.sub(
        lambda m: f"{m['scheme']}***{':***' if ':' in m['userinfo'] else ''}@", url
    )


# The user information runs to the LAST "@" before the host (the greedy match backs off to it), as nats-py
# reads it (urlparse), so a password with an "@" in it is hidden whole; a ":" in it means user:password.
_CREDENTIALS_IN_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s,]*)@")


# --- the checks: each error names the variable, the value, and what it should be ----------------------


def _port(raw: Any) -> int:
    try:
        port = int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{FASTIOT_NATS_PORT}={raw!r} is not a port number; set it to e.g. 4222") from None
    if not 0 < port < 65536:
        raise ValueError(f"{FASTIOT_NATS_PORT}={port} is out of range; use a port from 1 to 65535")
    return port


def mqtt_port() -> int | None:
    """``FASTIOT_MQTT_PORT`` as a number (``0``: the default port), ``None`` when unset or blank.

    Raises:
        SettingsError: It is set to something that is no port number.

    Example:
        >>> os.environ["FASTIOT_MQTT_PORT"] = "1883"
        >>> mqtt_port()
        1883
        >>> del os.environ["FASTIOT_MQTT_PORT"]
    """
    raw = os.environ.get(FASTIOT_MQTT_PORT, "").strip()
    if not raw:
        return None
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 <= port < 65536:
        raise SettingsError(
            FASTIOT_MQTT_PORT,
            raw,
            f"{FASTIOT_MQTT_PORT}={raw!r} is not a port number; set it to e.g. 1883 "
            f"(0: 1883 when free, else a free port)",
        )
    return port


def _seconds(raw: Any) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(
            f"{FASTIOT_NATS_DEFAULT_TIMEOUT}={raw!r} is not a number of seconds; set it to e.g. 30"
        ) from None
    if not value > 0:  # also rejects nan, which float() accepts
        raise ValueError(f"{FASTIOT_NATS_DEFAULT_TIMEOUT} must be positive, got {value}")
    return value


def _log_level(raw: Any) -> int:
    if isinstance(raw, int) or str(raw).isdigit():
        return int(raw)
    level = logging.getLevelName(str(raw).upper())
    if not isinstance(level, int):
        raise ValueError(f"{FASTIOT_LOG_LEVEL}={raw!r} is not a log level; use DEBUG, INFO, WARNING or ERROR")
    return level


def _inbox_prefix(raw: Any) -> str | None:
    if raw is None:  # pydantic-settings validates the default too
        return None
    prefix = str(raw).rstrip(".")
    if not prefix or any(c in prefix for c in " \t*>") or ".." in prefix or prefix.startswith("."):
        raise ValueError(
            f"{FASTIOT_NATS_INBOX_PREFIX}={raw!r} is not a subject prefix; use dot separated tokens "
            f"without wildcards, e.g. _INBOX_alice"
        )
    return prefix


def _js_domain(raw: Any) -> str | None:
    if raw is None:
        return None
    if not re.fullmatch(r"[A-Za-z0-9_-]+", str(raw)):
        raise ValueError(
            f"{FASTIOT_NATS_JS_DOMAIN}={raw!r} is not a JetStream domain; use the server's "
            f"`jetstream {{ domain: ... }}` name (letters, digits, - and _), e.g. hub"
        )
    return str(raw)


class _FromEnvironment(BaseSettings):
    """What both settings models share: exact variable names; blank counts as unset; values stripped."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        if isinstance(data, dict):
            stripped = {k: v.strip() if isinstance(v, str) else v for k, v in data.items()}
            return {k: v for k, v in stripped.items() if v != ""}
        return data


def _variable(name: str, default: Any = None) -> Any:
    # The environment variable is the field's alias, so pydantic's errors name the variable itself.
    return Field(default, validation_alias=name)


class BrokerSettings(_FromEnvironment):
    """The NATS connection settings as one validated snapshot of the environment.

    Example:
        >>> BrokerSettings().port  # doctest: +SKIP
        4222
    """

    host: str = _variable(FASTIOT_NATS_HOST, DEFAULT_NATS_HOST)
    port: Annotated[int, BeforeValidator(_port)] = _variable(FASTIOT_NATS_PORT, DEFAULT_NATS_PORT)
    servers: str | None = _variable(FASTIOT_NATS_SERVERS)
    default_timeout: Annotated[float, BeforeValidator(_seconds)] = _variable(
        FASTIOT_NATS_DEFAULT_TIMEOUT, DEFAULT_NATS_TIMEOUT
    )
    user: str | None = _variable(FASTIOT_NATS_USER)
    password: str | None = _variable(FASTIOT_NATS_PASSWORD)
    token: str | None = _variable(FASTIOT_NATS_TOKEN)
    creds: str | None = _variable(FASTIOT_NATS_CREDS)
    tls_ca: str | None = _variable(FASTIOT_NATS_TLS_CA)
    tls_cert: str | None = _variable(FASTIOT_NATS_TLS_CERT)
    tls_key: str | None = _variable(FASTIOT_NATS_TLS_KEY)
    nkey: str | None = _variable(FASTIOT_NATS_NKEY)
    inbox_prefix: Annotated[str | None, BeforeValidator(_inbox_prefix)] = _variable(FASTIOT_NATS_INBOX_PREFIX)
    js_domain: Annotated[str | None, BeforeValidator(_js_domain)] = _variable(FASTIOT_NATS_JS_DOMAIN)


class BasicSettings(_FromEnvironment):
    """Settings that are not about the broker, as one validated snapshot of the environment."""

    log_level: Annotated[int, BeforeValidator(_log_level)] = _variable(FASTIOT_LOG_LEVEL, logging.INFO)
    service_id: str = _variable(FASTIOT_SERVICE_ID, "")
    config_dir: str = _variable(FASTIOT_CONFIG_DIR, DEFAULT_CONFIG_DIR)
    volume_dir: str = _variable(FASTIOT_VOLUME_DIR, DEFAULT_VOLUME_DIR)


_S = TypeVar("_S", bound=_FromEnvironment)


class _Reader(Generic[_S]):
    """Reads a settings model from the environment, again whenever one of its variables changed.

    Comparing the raw values first keeps a read cheap (it sits on the request path) while a change of
    ``os.environ`` still takes effect at the next access.
    """

    def __init__(self, model: type[_S]) -> None:
        self._model = model
        self._names: tuple[str, ...] = tuple(
            str(f.validation_alias) for f in model.model_fields.values() if f.validation_alias
        )
        self._cached: tuple[tuple[str | None, ...], _S] | None = None

    def read(self) -> _S:
        key = tuple(os.environ.get(name) for name in self._names)
        cached = self._cached
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            settings = self._model()
        except ValidationError as e:
            raise _settings_error(e) from None
        self._cached = (key, settings)
        return settings


def _settings_error(error: ValidationError) -> SettingsError:
    first = error.errors()[0]
    variable = str(first["loc"][0]) if first["loc"] else "a FASTIOT_* variable"
    value = first.get("input")
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, ValueError):  # our checks wrote the whole message
        return SettingsError(variable, value, str(cause))
    return SettingsError(variable, value, f"{variable}={value!r} is not valid: {first['msg']}")


class BrokerEnv:
    """The NATS connection settings. Each property reads the environment when accessed."""

    def __init__(self) -> None:
        self._reader = _Reader(BrokerSettings)

    @property
    def settings(self) -> BrokerSettings:
        """All of them, validated, as they are in the environment now.

        Raises:
            SettingsError: A variable has a value that does not fit (the message names it).
        """
        return self._reader.read()

    @property
    def host(self) -> str:
        """``FASTIOT_NATS_HOST``, default ``localhost``."""
        return self.settings.host

    @property
    def port(self) -> int:
        """``FASTIOT_NATS_PORT``, default 4222."""
        return self.settings.port

    @property
    def default_timeout(self) -> float:
        """``FASTIOT_NATS_DEFAULT_TIMEOUT`` in seconds, default 30."""
        return self.settings.default_timeout

    @property
    def servers(self) -> list[str]:
        """The server URLs to connect to.

        ``FASTIOT_NATS_SERVERS`` (comma separated) if set, else ``nats://HOST:PORT``.
        """
        settings = self.settings
        if settings.servers is not None:
            servers = [s.strip() for s in settings.servers.split(",") if s.strip()]
            if servers:
                return [s if "://" in s else f"nats://{s}" for s in servers]
        return [f"nats://{settings.host}:{settings.port}"]

    @property
    def is_configured(self) -> bool:
        """True if any of FASTIOT_NATS_SERVERS / _HOST / _PORT is set."""
        return bool(self.settings.model_fields_set & {"servers", "host", "port"})

    @property
    def user(self) -> str | None:
        """``FASTIOT_NATS_USER``."""
        return self.settings.user

    @property
    def password(self) -> str | None:
        """``FASTIOT_NATS_PASSWORD``."""
        return self.settings.password

    @property
    def token(self) -> str | None:
        """``FASTIOT_NATS_TOKEN``."""
        return self.settings.token

    @property
    def creds(self) -> str | None:
        """``FASTIOT_NATS_CREDS``: a NATS credentials file."""
        return self.settings.creds

    @property
    def nkey(self) -> str | None:
        """``FASTIOT_NATS_NKEY``: the path of an NKey seed file (a user with an ``nkey`` login)."""
        return self.settings.nkey

    @property
    def inbox_prefix(self) -> str | None:
        """``FASTIOT_NATS_INBOX_PREFIX``: reply inboxes start with this instead of ``_INBOX``."""
        return self.settings.inbox_prefix

    @property
    def js_domain(self) -> str | None:
        """``FASTIOT_NATS_JS_DOMAIN``: the JetStream domain (leaf nodes, hub and spoke)."""
        return self.settings.js_domain

    @property
    def tls_ca(self) -> str | None:
        """``FASTIOT_NATS_TLS_CA``."""
        return self.settings.tls_ca

    @property
    def tls_cert(self) -> str | None:
        """``FASTIOT_NATS_TLS_CERT``."""
        return self.settings.tls_cert

    @property
    def tls_key(self) -> str | None:
        """``FASTIOT_NATS_TLS_KEY``."""
        return self.settings.tls_key


class BasicEnv:
    """Settings that are not about the broker. Each property reads the environment when accessed."""

    def __init__(self) -> None:
        self._reader = _Reader(BasicSettings)

    @property
    def settings(self) -> BasicSettings:
        """All of them, validated, as they are in the environment now."""
        return self._reader.read()

    @property
    def log_level(self) -> int:
        """``FASTIOT_LOG_LEVEL`` as a number (names like ``debug`` or ``INFO`` work too), default INFO."""
        return self.settings.log_level

    @property
    def service_id(self) -> str:
        """``FASTIOT_SERVICE_ID``, default empty: separates several instances of one service."""
        return self.settings.service_id

    @property
    def config_dir(self) -> str:
        """``FASTIOT_CONFIG_DIR``, default ``/etc/fastiot``: where a service's YAML configuration is.

        :func:`fastiot.util.config_helper.read_config` looks for ``<ServiceClass>.yaml`` here.
        """
        return self.settings.config_dir

    @property
    def volume_dir(self) -> str:
        """``FASTIOT_VOLUME_DIR``, default ``/var/fastiot``: where a service keeps data that outlives it."""
        return self.settings.volume_dir

    @property
    def log_dir(self) -> str:
        """``logs`` in :attr:`volume_dir`."""
        return os.path.join(self.volume_dir, "logs")

    @property
    def error_logfile(self) -> str:
        """``error.log`` in :attr:`log_dir`."""
        return os.path.join(self.log_dir, "error.log")


env_broker = BrokerEnv()
env_basic = BasicEnv()
