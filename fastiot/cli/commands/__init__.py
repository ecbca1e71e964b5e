"""The subcommands of ``fastiot-workbench``, one module each.

Every module here (not starting with ``_``) is imported when the command line is built and registers
its subcommand with :func:`fastiot.cli.register`; a new subcommand is a new module, nothing else.

Example:
    >>> from fastiot.cli import subcommands
    >>> sorted(command.name for command in subcommands())
    ['export', 'record']
"""

from __future__ import annotations

__all__: list[str] = []
