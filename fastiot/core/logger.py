"""Logging for fastiot services: ``from fastiot import logging``.

The level comes from ``FASTIOT_LOG_LEVEL`` (default INFO).

Example:
    >>> from fastiot import logging
    >>> logging.info("service started")  # doctest: +SKIP
"""

from __future__ import annotations

import logging as _logging
from typing import Any

from fastiot.env import env_basic

__all__ = ["LOG_FORMAT", "get_log_config", "setup_logger"]

LOG_FORMAT = "%(asctime)s: %(levelname)-8s %(name)s: %(message)s"


def get_log_config(level: int = _logging.INFO) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` configuration: ``timestamp: LEVEL module: message`` on the console.

    Example:
        >>> import logging.config
        >>> logging.config.dictConfig(get_log_config(logging.DEBUG))  # doctest: +SKIP
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"fastiot": {"format": LOG_FORMAT}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "fastiot", "level": level},
        },
        "root": {"handlers": ["console"], "level": level},
    }


def setup_logger(name: str = "root") -> _logging.Logger:
    """A logger at ``FASTIOT_LOG_LEVEL`` that prints ``timestamp: LEVEL name: message``.

    ``name="root"`` gives the ``fastiot`` logger, the parent of every fastiot logger; other names give
    a child of it. The root logger of the process is left alone, so a notebook's own logging setup is
    not overridden.
    """
    base = _logging.getLogger("fastiot")
    if not getattr(base, "_fastiot_configured", False):
        handler = _logging.StreamHandler()
        handler.setFormatter(_logging.Formatter(LOG_FORMAT))
        base.addHandler(handler)
        base.propagate = False
        base._fastiot_configured = True  # type: ignore[attr-defined]
    base.setLevel(env_basic.log_level)
    if name in ("root", "fastiot", ""):
        return base
    return base.getChild(name.removeprefix("fastiot."))
