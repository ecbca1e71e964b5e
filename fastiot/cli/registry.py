"""The subcommands of ``fastiot-workbench``: each registers itself here, the supervisor lists what is here.

A subcommand is a module of :mod:`fastiot.cli.commands` that calls :func:`register` when imported (every
module of that package is imported the first time the command line is built), or any code that calls
:func:`register` before :func:`fastiot.cli.main` runs. The parser then offers it, ``--help`` lists it
with its one-line help, and ``fastiot-workbench NAME ...`` calls its ``run`` with the parsed arguments.

Example:
    >>> import argparse
    >>> from fastiot.cli import register, unregister
    >>> def add_arguments(parser: argparse.ArgumentParser) -> None:
    ...     parser.add_argument("who")
    >>> def run(args: argparse.Namespace) -> int:
    ...     print(f"hello {args.who}")
    ...     return 0
    >>> command = register("hello", help="say hello", add_arguments=add_arguments, run=run)
    >>> from fastiot.cli import main
    >>> main(["hello", "plant"])
    hello plant
    0
    >>> unregister("hello")
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass

from fastiot.exceptions import CommandRegistrationError

__all__ = [
    "AddArguments",
    "RunCommand",
    "Subcommand",
    "add_subcommands",
    "chosen_subcommand",
    "register",
    "subcommands",
    "unregister",
]

AddArguments = Callable[[argparse.ArgumentParser], None]
"""Adds a subcommand's own arguments to its parser."""
RunCommand = Callable[[argparse.Namespace], int]
"""Runs a subcommand with the parsed arguments; returns the exit status."""

_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_COMMANDS_PACKAGE = "fastiot.cli.commands"
_DEST = "command"


@dataclass(frozen=True)
class Subcommand:
    """One subcommand of ``fastiot-workbench``.

    Attributes:
        name: What is typed after ``fastiot-workbench`` (``record``).
        help: One line for ``fastiot-workbench --help``.
        add_arguments: Adds its own arguments to its parser.
        run: Runs it; returns the exit status.
        description: The text above its own ``--help`` (default: ``help``).
    """

    name: str
    help: str
    add_arguments: AddArguments
    run: RunCommand
    description: str = ""


# The command line's table of subcommands (name -> Subcommand), in the order they registered. Process-wide
# like argparse's own parsers: a command line is built once per process from it.
_registered: dict[str, Subcommand] = {}
_loaded = False


def register(
    name: str,
    *,
    help: str,
    add_arguments: AddArguments,
    run: RunCommand,
    description: str = "",
) -> Subcommand:
    """Add a subcommand to ``fastiot-workbench``.

    Args:
        name: What is typed after ``fastiot-workbench``: lower case letters, digits, ``-`` and ``_``.
        help: One line for the command's ``--help``.
        add_arguments: A function adding the subcommand's arguments to the parser it is given.
        run: A function taking the parsed arguments and returning the exit status (0: success).
        description: The text above the subcommand's own ``--help`` (default: ``help``).

    Returns:
        The registered :class:`Subcommand`.

    Raises:
        CommandRegistrationError: The name is not a word, is taken by another subcommand, or
            ``add_arguments`` / ``run`` is not callable.

    Example:
        >>> register("hello", help="say hello", add_arguments=lambda p: None, run=lambda a: 0).name
        'hello'
        >>> unregister("hello")
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise CommandRegistrationError(
            f"a subcommand name is one lower-case word like 'record' or 'export-all', got {name!r}"
        )
    for what, value in (("add_arguments", add_arguments), ("run", run)):
        if not callable(value):
            raise CommandRegistrationError(f"{what} of subcommand {name!r} must be a function, got {value!r}")
    _load_commands()
    known = _registered.get(name)
    if known is not None:
        raise CommandRegistrationError(
            f"fastiot-workbench already has a subcommand {name!r} (its run is {_qualname(known.run)}); "
            f"choose another name or unregister({name!r}) first"
        )
    command = Subcommand(name, help, add_arguments, run, description)
    _registered[name] = command
    return command


def unregister(name: str) -> None:
    """Remove the subcommand ``name`` (nothing happens if there is none)."""
    _registered.pop(name, None)


def subcommands() -> list[Subcommand]:
    """Every registered subcommand, those of :mod:`fastiot.cli.commands` first."""
    _load_commands()
    return list(_registered.values())


def add_subcommands(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` one sub-parser per registered subcommand (none is required)."""
    commands = subcommands()
    if not commands:
        return
    subparsers = parser.add_subparsers(dest=_DEST, title="commands")
    for command in commands:
        sub = subparsers.add_parser(
            command.name, help=command.help, description=command.description or command.help
        )
        command.add_arguments(sub)


def chosen_subcommand(args: argparse.Namespace) -> Subcommand | None:
    """The subcommand the parsed ``args`` name, or None for the workbench itself."""
    name = getattr(args, _DEST, None)
    return None if name is None else _registered.get(name)


def _load_commands() -> None:
    """Import every module of :mod:`fastiot.cli.commands` once; each registers its subcommand."""
    global _loaded
    if _loaded:
        return
    _loaded = True  # first: a module that registers calls back in here
    package = importlib.import_module(_COMMANDS_PACKAGE)
    for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{_COMMANDS_PACKAGE}.{module.name}")


def _qualname(function: Callable[..., object]) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', repr(function))}"
