"""fastiot.env as a package: FastIoT's module paths (env, env_constants_basic) and its directories."""

from __future__ import annotations

import importlib
import os

import pytest

import fastiot.env
from fastiot.env import FASTIOT_CONFIG_DIR, FASTIOT_VOLUME_DIR, BasicEnv, BrokerEnv, env_basic, env_broker

# What other modules (and users) imported from fastiot.env while it was one module: it all stays there.
NAMES_BEFORE_THE_PACKAGE = (
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
    "BasicSettings",
    "BrokerEnv",
    "BrokerSettings",
    "env_basic",
    "env_broker",
    "redact_url",
)


@pytest.fixture
def no_dirs_set(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv(FASTIOT_CONFIG_DIR, raising=False)
    monkeypatch.delenv(FASTIOT_VOLUME_DIR, raising=False)
    return monkeypatch


def test_every_name_of_the_old_module_is_still_importable() -> None:
    missing = [name for name in NAMES_BEFORE_THE_PACKAGE if not hasattr(fastiot.env, name)]
    assert missing == []
    assert set(NAMES_BEFORE_THE_PACKAGE) <= set(fastiot.env.__all__)


def test_fastiot_env_env_holds_the_same_readers() -> None:
    from fastiot.env.env import BasicEnv as FastIoTBasicEnv
    from fastiot.env.env import BrokerEnv as FastIoTBrokerEnv
    from fastiot.env.env import env_basic as fastiot_env_basic
    from fastiot.env.env import env_broker as fastiot_env_broker

    assert fastiot_env_basic is env_basic and fastiot_env_broker is env_broker
    assert FastIoTBasicEnv is BasicEnv and FastIoTBrokerEnv is BrokerEnv


def test_importing_the_submodules_does_not_shadow_the_readers() -> None:
    # In FastIoT, importing a submodule named like a reader replaces the package's attribute with it.
    for name in ("fastiot.env.env", "fastiot.env.env_constants_basic"):
        importlib.import_module(name)
    from fastiot.env import env_basic as after
    from fastiot.env import env_broker as broker_after

    assert isinstance(after, BasicEnv) and isinstance(broker_after, BrokerEnv)


def test_env_constants_basic_has_fastiot_s_names() -> None:
    from fastiot.env import env_constants_basic as constants

    for name in (
        "FASTIOT_CONFIG_DIR",
        "FASTIOT_LOG_LEVEL",
        "FASTIOT_VOLUME_DIR",
        "FASTIOT_SERVICE_ID",
        "FASTIOT_USE_INTERNAL_HOSTNAMES",
        "FASTIOT_NATS_HOST",
        "FASTIOT_NATS_PORT",
        "FASTIOT_NATS_DEFAULT_TIMEOUT",
    ):
        assert getattr(constants, name) == name  # the variable's name is its value, as in FastIoT


def test_directories_default_to_fastiot_s(no_dirs_set: pytest.MonkeyPatch) -> None:
    assert env_basic.config_dir == "/etc/fastiot"
    assert env_basic.volume_dir == "/var/fastiot"
    assert env_basic.log_dir == os.path.join("/var/fastiot", "logs")
    assert env_basic.error_logfile == os.path.join("/var/fastiot", "logs", "error.log")


def test_directories_follow_the_environment_when_read(
    no_dirs_set: pytest.MonkeyPatch, tmp_path: os.PathLike[str]
) -> None:
    assert env_basic.config_dir == "/etc/fastiot"
    no_dirs_set.setenv(FASTIOT_CONFIG_DIR, f"{tmp_path}/config")
    no_dirs_set.setenv(FASTIOT_VOLUME_DIR, f" {tmp_path}/data ")
    assert env_basic.config_dir == f"{tmp_path}/config"
    assert env_basic.volume_dir == f"{tmp_path}/data"
    assert env_basic.log_dir == os.path.join(f"{tmp_path}/data", "logs")
    assert env_basic.error_logfile == os.path.join(f"{tmp_path}/data", "logs", "error.log")
    no_dirs_set.setenv(FASTIOT_CONFIG_DIR, "")  # blank counts as unset, as for every FASTIOT_* setting
    assert env_basic.config_dir == "/etc/fastiot"


def test_directories_are_settings_a_clean_environment_clears() -> None:
    assert {FASTIOT_CONFIG_DIR, FASTIOT_VOLUME_DIR} <= set(fastiot.env.ALL_SETTINGS)
