"""A service's YAML configuration, read from ``FASTIOT_CONFIG_DIR`` as FastIoT reads it.

A service ``MyService`` finds its configuration in ``$FASTIOT_CONFIG_DIR/MyService_<service id>.yaml``
if that exists (``FASTIOT_SERVICE_ID`` tells instances apart), else in ``MyService.yaml``.
``FASTIOT_CONFIG_DIR`` defaults to ``/etc/fastiot``, FastIoT's place for it in a container.

Example:
    >>> from fastiot.core import FastIoTService
    >>> from fastiot.util.config_helper import FastIoTConfigModel, read_config
    >>> class PressConfig(FastIoTConfigModel):
    ...     sensor_names: list[str]
    ...     max_rate: float = 10.0
    >>> class PressService(FastIoTService):
    ...     def __init__(self, **kwargs):
    ...         super().__init__(**kwargs)
    ...         self.config = PressConfig.from_service(self)  # PressService.yaml, keys like max-rate work
    ...         self.raw = read_config(self)  # the same file as a dict; {} if there is none
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any, TypeVar

import yaml
from pydantic import BaseModel

from fastiot.env import FASTIOT_CONFIG_DIR, env_basic
from fastiot.exceptions import ConfigFileNotFoundError
from fastiot.util.case_conversions import kebab_case_to_snake_case

if TYPE_CHECKING:
    from fastiot.core.service import FastIoTService

__all__ = ["FastIoTConfigModel", "read_config"]

# FastIoT's logger name, so that code silencing it (as FastIoT's tests do) keeps working.
_logger = logging.getLogger("yaml_config")

_C = TypeVar("_C", bound="FastIoTConfigModel")


class FastIoTConfigModel(BaseModel):
    """Base class of a service's configuration model, read from a YAML file.

    Keys written ``like-this`` in the file fill fields named ``like_this``.

    Example:
        >>> class PressConfig(FastIoTConfigModel):
        ...     max_rate: float = 10.0
        >>> PressConfig.from_yaml_file("press.yaml")  # doctest: +SKIP
        PressConfig(max_rate=2.5)
    """

    @classmethod
    def from_yaml_file(cls: type[_C], filename: str | os.PathLike[str]) -> _C:
        """The configuration in the YAML file ``filename`` (an empty file gives the defaults).

        Raises:
            FileNotFoundError: There is no such file.
            yaml.YAMLError: The file is not valid YAML.
            pydantic.ValidationError: Its content does not fit the model.
        """
        with open(filename, "rb") as config_file:
            config = yaml.safe_load(config_file)
        if config is None:
            config = {}
        if isinstance(config, dict):
            kebab_case_to_snake_case(config)
        return cls.model_validate(config)

    @classmethod
    def from_service(cls: type[_C], service: FastIoTService | str) -> _C:
        """The configuration of ``service``, or of the file named ``service`` (as :func:`read_config`).

        ``MyService_<service id>.yaml`` in ``FASTIOT_CONFIG_DIR`` is preferred to ``MyService.yaml``.

        Raises:
            ConfigFileNotFoundError: (a ``FileNotFoundError``) Neither file exists; the message names
                the folder and the file names looked for.
            yaml.YAMLError: The file is not valid YAML.
            pydantic.ValidationError: Its content does not fit the model.
        """
        filename = _get_config_file_name(service)
        if filename is None:
            raise ConfigFileNotFoundError(_not_found_message(service))
        return cls.from_yaml_file(filename)


def _candidates(service: FastIoTService) -> tuple[str, str]:
    """The configuration files of ``service``: its instance's first, then its class's."""
    name = type(service).__name__
    return (
        os.path.join(env_basic.config_dir, f"{name}_{service.service_id}.yaml"),
        os.path.join(env_basic.config_dir, f"{name}.yaml"),
    )


def _get_config_file_name(service: FastIoTService | str) -> str | None:
    """The YAML file to read for ``service`` (a service or a file name), or ``None`` if there is none.

    A string is looked up in ``FASTIOT_CONFIG_DIR`` first, then taken as a path if it starts with
    ``/`` or ``.``. Not finding one is logged as a warning.
    """
    if isinstance(service, str):
        config_file = os.path.join(env_basic.config_dir, service)
        if os.path.isfile(config_file):
            return config_file
        if service.startswith(("/", ".")) and os.path.isfile(service):
            return service
        _logger.warning("Provided config file %s could not be found.", service)
        return None
    for config_file in _candidates(service):
        if os.path.isfile(config_file):
            return config_file
    _logger.warning(
        "No configuration for service %s was found in %s!", type(service).__name__, env_basic.config_dir
    )
    return None


def _not_found_message(service: FastIoTService | str) -> str:
    folder = env_basic.config_dir
    if isinstance(service, str):
        return (
            f"no configuration file {service!r} in {folder} ({FASTIOT_CONFIG_DIR}); put it there, "
            f"or give a path starting with '/' or '.'"
        )
    per_instance, per_service = _candidates(service)
    return (
        f"no configuration for {type(service).__name__}: create {per_service} (or {per_instance} for "
        f"this instance), or set {FASTIOT_CONFIG_DIR} to the folder that has it"
    )


def read_config(service: FastIoTService | str) -> dict[str, Any]:
    """The YAML configuration of ``service`` as a dict; ``{}`` if there is none.

    ``service`` is the service itself (preferred: ``read_config(self)``) or the name of a file in
    ``FASTIOT_CONFIG_DIR``. As in FastIoT this never raises: a missing, unreadable or empty file, or
    one that is no mapping of keys to values, gives ``{}`` and a warning on the ``yaml_config`` logger.
    Use :meth:`FastIoTConfigModel.from_service` to get errors instead.

    Example:
        >>> from fastiot.util.config_helper import read_config
        >>> read_config("my_config.yaml")  # doctest: +SKIP
        {'sensors': ['temperature', 'pressure']}
    """
    config_file = _get_config_file_name(service)
    if config_file is None:
        return {}
    try:
        with open(config_file, "rb") as file:
            result = yaml.safe_load(file)
    except (OSError, yaml.YAMLError) as e:
        _logger.warning("Could not open or parse yaml file %s: %s", config_file, e)
        return {}
    if not result:
        _logger.warning("Could not parse yaml file %s", config_file)
        return {}
    if not isinstance(result, dict):
        _logger.warning(
            "yaml file %s holds a %s, not a mapping of keys to values; ignored", config_file, type(result)
        )
        return {}
    _logger.info("Successfully read configuration %s", config_file)
    return result
