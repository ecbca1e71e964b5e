"""fastiot.util: FastIoT's helpers for service authors (YAML configuration, dicts to models, ports)."""

from __future__ import annotations

import logging
import socket
from datetime import datetime
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from fastiot.core import FastIoTPublish, FastIoTService
from fastiot.core.broker_connection import BrokerConnectionDummy
from fastiot.env import FASTIOT_CONFIG_DIR
from fastiot.exceptions import ConfigFileNotFoundError, FastIoTError
from fastiot.msg.thing import Thing
from fastiot.util.case_conversions import kebab_case_to_snake_case
from fastiot.util.config_helper import FastIoTConfigModel, read_config
from fastiot.util.object_helper import parse_object, parse_object_list
from fastiot.util.ports import get_local_random_port

CONFIG_YAML = """
config item 1:
  foo: bar
  key: value

config item 2:
  the answer: 42
"""
CONFIG = {"config item 1": {"foo": "bar", "key": "value"}, "config item 2": {"the answer": 42}}


class PressService(FastIoTService):
    """Reads its configuration."""


class PressConfig(FastIoTConfigModel):
    sensor_names: list[str]
    max_rate: float = 10.0
    limits: list[dict[str, float]] = []


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(FASTIOT_CONFIG_DIR, str(tmp_path))
    return tmp_path


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> PressService:
    monkeypatch.setenv("FASTIOT_SERVICE_ID", "7")
    return PressService(broker_connection=BrokerConnectionDummy())


# --- read_config ----------------------------------------------------------------------------------


def test_read_config_of_a_service(config_dir: Path, service: PressService) -> None:
    (config_dir / "PressService.yaml").write_text(CONFIG_YAML)
    assert read_config(service) == CONFIG


def test_read_config_prefers_the_instance_s_file(config_dir: Path, service: PressService) -> None:
    (config_dir / "PressService.yaml").write_text("which: service")
    (config_dir / "PressService_7.yaml").write_text("which: instance")
    assert read_config(service) == {"which": "instance"}


def test_read_config_by_file_name_or_path(config_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    (config_dir / "myconfig.yaml").write_text(CONFIG_YAML)
    assert read_config("myconfig.yaml") == CONFIG
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "other.yaml"
    elsewhere.write_text("a: 1")
    assert read_config(str(elsewhere)) == {"a": 1}


@pytest.mark.parametrize(
    ("content", "warning"),
    [
        (None, "No configuration for service PressService"),
        ("", "Could not parse yaml file"),
        ("a: [1, 2", "Could not open or parse yaml file"),
        ("- just\n- a list", "not a mapping"),
    ],
    ids=["no file", "empty", "broken", "list"],
)
def test_read_config_gives_an_empty_dict_and_a_warning(
    config_dir: Path,
    service: PressService,
    caplog: pytest.LogCaptureFixture,
    content: str | None,
    warning: str,
) -> None:
    if content is not None:
        (config_dir / "PressService.yaml").write_text(content)
    with caplog.at_level(logging.WARNING, logger="yaml_config"):
        assert read_config(service) == {}
    assert warning in caplog.text


def test_read_config_of_a_missing_file_name_warns(config_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="yaml_config"):
        assert read_config("nowhere.yaml") == {}
    assert "nowhere.yaml could not be found" in caplog.text


def test_read_yaml_is_the_deprecated_path(config_dir: Path, service: PressService) -> None:
    from fastiot.util.read_yaml import read_config as old_read_config

    (config_dir / "PressService.yaml").write_text(CONFIG_YAML)
    with pytest.deprecated_call(match="fastiot.util.config_helper.read_config"):
        assert old_read_config(service) == CONFIG


# --- FastIoTConfigModel ---------------------------------------------------------------------------


def test_config_model_from_service_converts_kebab_case_keys(config_dir: Path, service: PressService) -> None:
    (config_dir / "PressService.yaml").write_text(
        "sensor-names: [temperature, pressure]\nmax-rate: 2.5\nlimits:\n  - upper-bound: 80\n"
    )
    config = PressConfig.from_service(service)
    assert config == PressConfig(
        sensor_names=["temperature", "pressure"], max_rate=2.5, limits=[{"upper_bound": 80}]
    )
    assert PressConfig.from_service("PressService.yaml") == config


def test_config_model_from_an_empty_file_uses_the_defaults(tmp_path: Path) -> None:
    class Defaults(FastIoTConfigModel):
        max_rate: float = 10.0

    (tmp_path / "empty.yaml").write_text("")
    assert Defaults.from_yaml_file(tmp_path / "empty.yaml") == Defaults()


def test_config_model_says_which_field_does_not_fit(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("max-rate: fast\n")
    with pytest.raises(ValidationError, match="sensor_names") as raised:
        PressConfig.from_yaml_file(tmp_path / "bad.yaml")
    assert "max_rate" in str(raised.value)


def test_config_model_without_a_file_names_the_files_to_create(
    config_dir: Path, service: PressService
) -> None:
    with pytest.raises(ConfigFileNotFoundError) as raised:
        PressConfig.from_service(service)
    message = str(raised.value)
    assert str(config_dir / "PressService.yaml") in message and "PressService_7.yaml" in message
    assert FASTIOT_CONFIG_DIR in message
    assert isinstance(raised.value, FileNotFoundError) and isinstance(raised.value, FastIoTError)
    with pytest.raises(ConfigFileNotFoundError, match=r"nowhere\.yaml"):
        PressConfig.from_service("nowhere.yaml")


def test_kebab_case_to_snake_case_goes_into_nested_dicts_and_lists() -> None:
    config = {"a-b": {"c-d": [{"e-f": 1}, [{"g-h": 2}]]}, 3: "not a string key", "plain": 0}
    kebab_case_to_snake_case(config)
    assert config == {"a_b": {"c_d": [{"e_f": 1}, [{"g_h": 2}]]}, 3: "not a string key", "plain": 0}


# --- object_helper ------------------------------------------------------------------------------


class Complex(FastIoTPublish):
    real: float
    img: float


class Pair(FastIoTPublish):
    x: Complex
    y: Complex


class Pairs(FastIoTPublish):
    values: list[Pair]


def _thing(i: int) -> Thing:
    return Thing(
        machine="m", name=f"sensor_{i}", measurement_id="1", value=i, timestamp=datetime(2022, 10, 10)
    )


def test_parse_object_builds_the_model() -> None:
    assert parse_object(_thing(0).model_dump(), Thing) == _thing(0)
    pairs = Pairs(values=[Pair(x=Complex(real=1, img=2), y=Complex(real=3, img=4))])
    assert parse_object(pairs.model_dump(), Pairs) == pairs

    class Plain(BaseModel):
        a: int

    assert parse_object({"a": "1"}, Plain) == Plain(a=1)


def test_parse_object_list_keeps_the_order() -> None:
    things = [_thing(i) for i in range(3)]
    assert parse_object_list([t.model_dump() for t in things], Thing) == things
    assert parse_object_list([], Thing) == []


def test_parse_object_of_a_class_that_is_no_model_gives_none(caplog: pytest.LogCaptureFixture) -> None:
    class NotAModel:
        def __init__(self, a: int) -> None:
            self.a = a

    with caplog.at_level(logging.ERROR):
        assert parse_object({"a": 1}, NotAModel) is None  # type: ignore[type-var]
    assert "FastIoTData" in caplog.text


def test_parse_object_raises_for_a_dict_that_does_not_fit() -> None:
    with pytest.raises(ValidationError, match="value"):
        parse_object({"machine": "m", "name": "n"}, Thing)


# --- ports ----------------------------------------------------------------------------------------


def test_get_local_random_port_can_be_bound() -> None:
    port = get_local_random_port()
    assert 0 < port < 65536
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # free right after it was handed out
