"""FastIoT's ``fastiot.env.env_constants_basic``: the names of FastIoT's basic environment variables.

Example:
    >>> import os
    >>> from fastiot.env.env_constants_basic import FASTIOT_CONFIG_DIR
    >>> os.environ[FASTIOT_CONFIG_DIR] = "/srv/my_project/config"  # doctest: +SKIP
"""

from __future__ import annotations

from fastiot.env import (
    FASTIOT_CONFIG_DIR,
    FASTIOT_LOG_LEVEL,
    FASTIOT_NATS_DEFAULT_TIMEOUT,
    FASTIOT_NATS_HOST,
    FASTIOT_NATS_PORT,
    FASTIOT_SERVICE_ID,
    FASTIOT_VOLUME_DIR,
)

__all__ = [
    "FASTIOT_CONFIG_DIR",
    "FASTIOT_LOG_LEVEL",
    "FASTIOT_NATS_DEFAULT_TIMEOUT",
    "FASTIOT_NATS_HOST",
    "FASTIOT_NATS_PORT",
    "FASTIOT_SERVICE_ID",
    "FASTIOT_USE_INTERNAL_HOSTNAMES",
    "FASTIOT_VOLUME_DIR",
]

FASTIOT_USE_INTERNAL_HOSTNAMES = "FASTIOT_USE_INTERNAL_HOSTNAMES"
"""FastIoT's tests read it to reach brokers in Docker by container name. Only the name is here: the
workbench's tests start their broker on loopback and never read it."""
