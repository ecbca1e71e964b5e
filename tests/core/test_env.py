"""FASTIOT_* settings: defaults, overrides, read when asked for, and clear errors for bad values."""

from __future__ import annotations

import logging
import logging.config
import sys
from pathlib import Path

import pytest

import fastiot
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.logger import LOG_FORMAT, get_log_config, setup_logger
from fastiot.env import ALL_SETTINGS, BrokerSettings, env_basic, env_broker, redact_url
from fastiot.exceptions import FastIoTError, SettingsError


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ALL_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults(clean_env: pytest.MonkeyPatch) -> None:
    assert env_broker.host == "localhost"
    assert env_broker.port == 4222
    assert env_broker.default_timeout == 30.0
    assert env_broker.servers == ["nats://localhost:4222"]
    assert not env_broker.is_configured
    assert env_broker.user is None and env_broker.password is None and env_broker.token is None
    assert env_broker.creds is None
    assert env_broker.tls_ca is None and env_broker.tls_cert is None and env_broker.tls_key is None
    assert env_basic.log_level == logging.INFO
    assert env_basic.service_id == ""


def test_host_and_port(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FASTIOT_NATS_HOST", "broker.plant.local")
    clean_env.setenv("FASTIOT_NATS_PORT", " 4333 ")
    assert env_broker.host == "broker.plant.local"
    assert env_broker.port == 4333
    assert env_broker.servers == ["nats://broker.plant.local:4333"]
    assert env_broker.is_configured


def test_servers_override_host_and_port(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FASTIOT_NATS_HOST", "ignored")
    clean_env.setenv("FASTIOT_NATS_PORT", "1")
    clean_env.setenv("FASTIOT_NATS_SERVERS", "nats://a:4222, tls://b:4223 ,c:4224,,")
    assert env_broker.servers == ["nats://a:4222", "tls://b:4223", "nats://c:4224"]


def test_settings_are_read_when_asked_for(clean_env: pytest.MonkeyPatch) -> None:
    assert env_broker.port == 4222
    clean_env.setenv("FASTIOT_NATS_PORT", "5000")
    assert env_broker.port == 5000  # no restart, no reload


def test_empty_values_count_as_unset(clean_env: pytest.MonkeyPatch) -> None:
    for name in ALL_SETTINGS:
        clean_env.setenv(name, "  ")
    assert env_broker.servers == ["nats://localhost:4222"]
    assert env_broker.default_timeout == 30.0
    assert env_broker.user is None
    assert env_basic.log_level == logging.INFO


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("abc", r"FASTIOT_NATS_PORT='abc' is not a port number"),
        ("42.5", r"FASTIOT_NATS_PORT='42.5' is not a port number"),
        ("0", r"FASTIOT_NATS_PORT=0 is out of range"),
        ("65536", r"FASTIOT_NATS_PORT=65536 is out of range"),
        ("-1", r"FASTIOT_NATS_PORT=-1 is out of range"),
    ],
)
def test_bad_port(clean_env: pytest.MonkeyPatch, value: str, match: str) -> None:
    clean_env.setenv("FASTIOT_NATS_PORT", value)
    with pytest.raises(ValueError, match=match):
        _ = env_broker.port
    with pytest.raises(ValueError, match="FASTIOT_NATS_PORT"):
        _ = env_broker.servers


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("FASTIOT_NATS_PORT", "abc", "a port number"),
        ("FASTIOT_NATS_DEFAULT_TIMEOUT", "soon", "a number of seconds"),
        ("FASTIOT_LOG_LEVEL", "loud", "a log level"),
    ],
)
def test_a_bad_value_is_a_settings_error_naming_the_variable(
    clean_env: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    clean_env.setenv(name, value)
    env = env_basic if name == "FASTIOT_LOG_LEVEL" else env_broker
    with pytest.raises(SettingsError) as info:
        _ = env.settings
    assert isinstance(info.value, FastIoTError) and isinstance(info.value, ValueError)
    assert (info.value.variable, info.value.value) == (name, value)
    assert str(info.value).startswith(f"{name}={value!r} is not {expected}")


def test_settings_snapshot_follows_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FASTIOT_NATS_USER", "alice")
    first = env_broker.settings
    assert isinstance(first, BrokerSettings) and first.user == "alice"
    assert env_broker.settings is first, "unchanged variables are not parsed again"
    clean_env.setenv("FASTIOT_NATS_USER", "bob")
    assert env_broker.user == "bob"
    clean_env.delenv("FASTIOT_NATS_USER")
    assert env_broker.user is None


@pytest.mark.parametrize(("value", "expected"), [("2.5", 2.5), ("10", 10.0), (" 0.1 ", 0.1)])
def test_default_timeout(clean_env: pytest.MonkeyPatch, value: str, expected: float) -> None:
    clean_env.setenv("FASTIOT_NATS_DEFAULT_TIMEOUT", value)
    assert env_broker.default_timeout == expected


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("soon", r"FASTIOT_NATS_DEFAULT_TIMEOUT='soon' is not a number of seconds"),
        ("0", r"FASTIOT_NATS_DEFAULT_TIMEOUT must be positive"),
        ("-3", r"FASTIOT_NATS_DEFAULT_TIMEOUT must be positive"),
    ],
)
def test_bad_default_timeout(clean_env: pytest.MonkeyPatch, value: str, match: str) -> None:
    clean_env.setenv("FASTIOT_NATS_DEFAULT_TIMEOUT", value)
    with pytest.raises(ValueError, match=match):
        _ = env_broker.default_timeout


def test_nan_default_timeout_is_rejected(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FASTIOT_NATS_DEFAULT_TIMEOUT", "nan")
    with pytest.raises(ValueError, match="FASTIOT_NATS_DEFAULT_TIMEOUT must be positive"):
        _ = env_broker.default_timeout


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("debug", logging.DEBUG),
        ("INFO", logging.INFO),
        ("Warning", logging.WARNING),
        ("error", logging.ERROR),
        ("CRITICAL", logging.CRITICAL),
        ("15", 15),
    ],
)
def test_log_level(clean_env: pytest.MonkeyPatch, value: str, expected: int) -> None:
    clean_env.setenv("FASTIOT_LOG_LEVEL", value)
    try:
        assert env_basic.log_level == expected
        assert setup_logger("env_test").getEffectiveLevel() == expected
    finally:
        clean_env.delenv("FASTIOT_LOG_LEVEL")
        setup_logger()  # leave the fastiot logger at the default level for the tests that follow


def test_bad_log_level(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FASTIOT_LOG_LEVEL", "loud")
    with pytest.raises(ValueError, match=r"FASTIOT_LOG_LEVEL='loud' is not a log level; use DEBUG, INFO"):
        _ = env_basic.log_level


def test_service_id_and_credentials(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FASTIOT_SERVICE_ID", "line_2")
    clean_env.setenv("FASTIOT_NATS_USER", "alice")
    clean_env.setenv("FASTIOT_NATS_PASSWORD", "s3cret")
    clean_env.setenv("FASTIOT_NATS_TOKEN", "tok")
    clean_env.setenv("FASTIOT_NATS_CREDS", "/etc/nats/user.creds")
    clean_env.setenv("FASTIOT_NATS_TLS_CA", "/etc/ca.pem")
    assert env_basic.service_id == "line_2"
    assert (env_broker.user, env_broker.password, env_broker.token) == ("alice", "s3cret", "tok")
    assert env_broker.creds == "/etc/nats/user.creds"
    assert env_broker.tls_ca == "/etc/ca.pem"


def test_credentials_are_passed_to_nats_py(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    creds, seed = tmp_path / "user.creds", tmp_path / "user.nk"
    creds.write_text("creds")
    seed.write_text("seed")
    clean_env.setenv("FASTIOT_NATS_USER", "alice")
    clean_env.setenv("FASTIOT_NATS_PASSWORD", "s3cret")
    clean_env.setenv("FASTIOT_NATS_CREDS", str(creds))
    clean_env.setenv("FASTIOT_NATS_NKEY", str(seed))
    clean_env.setenv("FASTIOT_NATS_INBOX_PREFIX", "_INBOX_alice.")
    options = NatsBrokerConnection._nats_options_from_env()
    assert options == {
        "user": "alice",
        "password": "s3cret",
        "user_credentials": str(creds),
        "nkeys_seed": str(seed),
        "inbox_prefix": "_INBOX_alice",
    }
    for name in ("USER", "PASSWORD", "CREDS", "NKEY", "INBOX_PREFIX"):
        clean_env.delenv(f"FASTIOT_NATS_{name}")
    clean_env.setenv("FASTIOT_NATS_TOKEN", "tok")
    assert NatsBrokerConnection._nats_options_from_env() == {"token": "tok"}


async def test_connect_with_a_bad_port_setting_says_which_setting(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FASTIOT_NATS_PORT", "nats")
    with pytest.raises(ValueError, match="FASTIOT_NATS_PORT"):
        await NatsBrokerConnection.connect()


# --- logging ---------------------------------------------------------------------------------------


def test_loggers(clean_env: pytest.MonkeyPatch) -> None:
    base = setup_logger()
    assert base.name == "fastiot"
    assert fastiot.logging is base  # `from fastiot import logging`
    child = setup_logger("my_service")
    assert child.name == "fastiot.my_service"
    assert child.parent is base
    assert setup_logger("fastiot.my_service") is child
    setup_logger()
    setup_logger("other")
    # Configuring again adds no second handler (pytest attaches its own capture handlers too).
    assert len(_fastiot_handlers(base)) == 1


def _fastiot_handlers(logger: logging.Logger) -> list[logging.Handler]:
    return [h for h in logger.handlers if h.formatter is not None and h.formatter._fmt == LOG_FORMAT]


def test_from_fastiot_import_logging_logs(
    capsys: pytest.CaptureFixture[str], clean_env: pytest.MonkeyPatch
) -> None:
    from fastiot import logging as fastiot_logging

    setup_logger()  # level from the (clean) environment: INFO, whatever an earlier test set

    # The handler was created with the stderr of the import; point it at the captured one.
    [handler] = _fastiot_handlers(fastiot_logging)
    assert isinstance(handler, logging.StreamHandler)
    old = handler.setStream(sys.stderr)
    try:
        fastiot_logging.info("service started")
        fastiot_logging.debug("not shown at INFO")
    finally:
        handler.setStream(old)
    err = capsys.readouterr().err
    assert "INFO     fastiot: service started" in err
    assert "not shown" not in err


def test_get_log_config_is_a_valid_dict_config() -> None:
    config = get_log_config(logging.DEBUG)
    assert config["version"] == 1
    assert config["root"]["level"] == logging.DEBUG
    assert "%(levelname)" in config["formatters"]["fastiot"]["format"]
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        logging.config.dictConfig(config)
        assert root.level == logging.DEBUG
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        root.setLevel(saved[0])
        for handler in saved[1]:
            root.addHandler(handler)


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("nats://alice:s3cret@broker:4222", "nats://***:***@broker:4222"),
        ("nats://mytoken@broker:4222", "nats://***@broker:4222"),
        ("nats://broker:4222", "nats://broker:4222"),
        ("tls://a:b@h:1, nats://c:d@e:2", "tls://***:***@h:1, nats://***:***@e:2"),
        # The user information runs to the last "@" before the host, as nats-py (urlparse) reads it.
        ("nats://alice:p@ss@h:4222", "nats://***:***@h:4222"),
        ("nats://al@ice:p@s:s@h:4222, nats://t@k@e:2", "nats://***:***@h:4222, nats://***@e:2"),
        ("nats://h:4222/path@x", "nats://h:4222/path@x"),
    ],
)
def test_redact_url_hides_every_user_password_and_token(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted
