"""FastIoT's older path of :func:`fastiot.util.config_helper.read_config`; deprecated there since 0.9.29.

Example:
    >>> from fastiot.util.read_yaml import read_config  # prefer fastiot.util.config_helper
    >>> read_config("my_config.yaml")  # doctest: +SKIP
    {'sensors': ['temperature', 'pressure']}
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from fastiot.util import config_helper

if TYPE_CHECKING:
    from fastiot.core.service import FastIoTService

__all__ = ["read_config"]


def read_config(service: FastIoTService | str) -> dict[str, Any]:
    """:func:`fastiot.util.config_helper.read_config`, with FastIoT's ``DeprecationWarning``."""
    warnings.warn(
        "The method `fastiot.util.read.yaml.read_config` is deprecated. Please use "
        "`fastiot.util.config_helper.read_config` instead.",
        DeprecationWarning,
        stacklevel=2,
    )
    return config_helper.read_config(service)
