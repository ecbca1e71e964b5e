"""``fastiot-workbench``: the process supervisor (broker, demo plant, JupyterLab) and its subcommands.

- :mod:`~fastiot.cli.supervisor`: ``fastiot-workbench`` itself, which starts and stops the processes;
- :mod:`~fastiot.cli.registry`: :func:`register` a subcommand (name, help, arguments, run);
- :mod:`~fastiot.cli.commands`: the built-in subcommands, one module each (``record``, ``export``).

Example:
    $ fastiot-workbench --help          # the options and every registered subcommand
    $ python -m fastiot.cli --no-lab    # the same command
"""

from __future__ import annotations

from fastiot.cli.registry import Subcommand, register, subcommands, unregister
from fastiot.cli.supervisor import build_parser, is_loopback, main

__all__ = [
    "Subcommand",
    "build_parser",
    "is_loopback",
    "main",
    "register",
    "subcommands",
    "unregister",
]
