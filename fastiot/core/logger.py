"""Logging for fastiot services: ``from fastiot import logging``.

The console shows ``FASTIOT_LOG_LEVEL`` and up (default INFO). Every fastiot logger (``fastiot``, and
``fastiot.<ServiceName>`` behind a service's ``self._logger``) passes its records on to the root logger,
as in FastIoT, so ``unittest``'s ``assertLogs()``, pytest's ``caplog`` and a program's own logging
setup see them. Lowering the root logger's level lowers theirs too: ``assertLogs(level="DEBUG")`` and
``caplog.set_level(logging.DEBUG)`` get a service's debug lines, as with FastIoT, whose services log
on the root logger; the console still shows only ``FASTIOT_LOG_LEVEL`` and up.

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


class _FastIoTLogger(_logging.Logger):
    """The ``fastiot`` logger: its level is its own (``FASTIOT_LOG_LEVEL``) or the root logger's, the lower.

    The root logger's default level, WARNING, does not count, so ``FASTIOT_LOG_LEVEL=ERROR`` holds in a
    program that never set up logging (and ``assertLogs(level="WARNING")`` needs FASTIOT_LOG_LEVEL at
    WARNING or lower to see warnings).

    The loggers below ``fastiot`` read this level when they have none of their own. Logging reads it
    again whenever a level is set anywhere (``Logger.setLevel`` clears every logger's cache), which is
    how ``assertLogs`` and ``caplog`` change the root logger's level.
    """

    @property
    def level(self) -> int:
        own: int = self.__dict__.get("_own_level", _logging.NOTSET)
        root = self.root.level
        # The root's level counts where something set it lower than ours. Not WARNING, its default: that
        # would override FASTIOT_LOG_LEVEL=ERROR in every program that never touched logging. NOTSET on
        # either side leaves it to the other (our NOTSET falls through to the root's level anyway).
        if _logging.NOTSET < root < own and root != _logging.WARNING:
            return root
        return own

    @level.setter
    def level(self, value: int) -> None:
        self.__dict__["_own_level"] = value


def _fastiot_logger() -> _logging.Logger:
    logger = _logging.getLogger("fastiot")
    if type(logger) is _logging.Logger:  # made by logging.getLogger (a custom logger class is left as is)
        own = logger.__dict__.pop("level", _logging.NOTSET)
        logger.__class__ = _FastIoTLogger
        logger.level = own
    return logger


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
        """Print ``record`` unless a handler above already prints it to the console."""
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
    a notebook's own logging setup is not overridden. ``FASTIOT_LOG_LEVEL`` is the level of the
    ``fastiot`` logger and of its console handler; where the root logger's level is lower (e.g. inside
    ``assertLogs(level="DEBUG")``), the ``fastiot`` logger's follows it and only the console keeps
    ``FASTIOT_LOG_LEVEL``.

    Example:
        >>> log = setup_logger("my_service")
        >>> log.name
        'fastiot.my_service'
    """
    base = _fastiot_logger()
    level = env_basic.log_level
    console = next((h for h in base.handlers if isinstance(h, ConsoleHandler)), None)
    if console is None:
        console = ConsoleHandler()
        base.addHandler(console)
    console.setLevel(level)
    base.setLevel(level)
    if name in ("root", "fastiot", ""):
        return base
    return base.getChild(name.removeprefix("fastiot."))


logging = setup_logger()
"""The ``fastiot`` logger: ``from fastiot import logging``, or FastIoT's ``fastiot.core.logger.logging``."""
