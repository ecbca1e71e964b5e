"""Logging for fastiot services: ``from fastiot import logging``.

The level comes from ``FASTIOT_LOG_LEVEL`` (default INFO). Every fastiot logger (``fastiot``, and
``fastiot.<ServiceName>`` behind a service's ``self._logger``) passes its records on to the root logger,
as in FastIoT, so ``unittest``'s ``assertLogs()``, pytest's ``caplog`` and a program's own logging
setup see them.

Each line is printed once. The ``fastiot`` logger has a console handler of its own, so that a service's
lines show in a fresh notebook or script where nothing configured logging; it steps aside for records
that a handler further up (e.g. one added by ``logging.basicConfig()``) already writes to the same
console.

Example:
    >>> from fastiot import logging
    >>> logging.info("service started")  # doctest: +SKIP
"""

from __future__ import annotations

import logging as _logging
import sys
from typing import Any

from fastiot.env import env_basic

__all__ = ["LOG_FORMAT", "ConsoleHandler", "get_log_config", "logging", "setup_logger"]

LOG_FORMAT = "%(asctime)s: %(levelname)-8s %(name)s: %(message)s"


class ConsoleHandler(_logging.StreamHandler):  # type: ignore[type-arg]
    """The ``fastiot`` logger's console handler: prints a record unless a handler above prints it already.

    "Above" are the handlers of the loggers a record propagates to after ``fastiot`` (normally just the
    root logger's). Such a handler prints it already if it is a ``StreamHandler`` on stdout or stderr
    (or on this handler's stream) whose level lets the record through. Capturing handlers (``assertLogs``,
    pytest's ``caplog``, files) do not count: they see the record, and the console still shows it once.
    """

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(_logging.Formatter(LOG_FORMAT))

    def emit(self, record: _logging.LogRecord) -> None:
        if not self._printed_above(record):
            super().emit(record)

    def _printed_above(self, record: _logging.LogRecord) -> bool:
        consoles = {id(sys.stdout), id(sys.stderr), id(sys.__stdout__), id(sys.__stderr__), id(self.stream)}
        logger: _logging.Logger | None = _logging.getLogger("fastiot")
        while logger is not None and logger.propagate:
            logger = logger.parent
            if logger is None:
                break
            for handler in logger.handlers:
                if (
                    isinstance(handler, _logging.StreamHandler)
                    and id(handler.stream) in consoles
                    and record.levelno >= handler.level
                ):
                    return True
        return False


def get_log_config(level: int = _logging.INFO) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` configuration: ``timestamp: LEVEL module: message`` on the console.

    It configures the root logger, as FastIoT's does; fastiot's own console handler then steps aside.

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
    """A logger at ``FASTIOT_LOG_LEVEL`` that prints ``timestamp: LEVEL name: message`` once.

    ``name="root"`` gives the ``fastiot`` logger, the parent of every fastiot logger; other names give
    a child of it. Records go on to the root logger, whose level and handlers are left as they are, so
    a notebook's own logging setup is not overridden.

    Example:
        >>> log = setup_logger("my_service")
        >>> log.name
        'fastiot.my_service'
    """
    base = _logging.getLogger("fastiot")
    if not any(isinstance(h, ConsoleHandler) for h in base.handlers):
        base.addHandler(ConsoleHandler())
    base.setLevel(env_basic.log_level)
    if name in ("root", "fastiot", ""):
        return base
    return base.getChild(name.removeprefix("fastiot."))


logging = setup_logger()
"""The ``fastiot`` logger: ``from fastiot import logging``, or FastIoT's ``fastiot.core.logger.logging``."""
