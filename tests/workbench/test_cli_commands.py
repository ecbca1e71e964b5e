"""``fastiot-workbench``'s subcommands come from a registry: each lists in the help and runs by its name."""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Iterator

import pytest

from fastiot.cli import build_parser, main, register, subcommands, unregister
from fastiot.exceptions import CommandRegistrationError, FastIoTError
from tests.workbench.cli_process import CLI


@pytest.fixture
def greet() -> Iterator[list[argparse.Namespace]]:
    """A subcommand ``greet WHO [--times N]`` registered for one test; the arguments of each run."""
    runs: list[argparse.Namespace] = []

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("who")
        parser.add_argument("--times", type=int, default=1)

    def run(args: argparse.Namespace) -> int:
        runs.append(args)
        return 3

    register("greet", help="greet somebody from a test", add_arguments=add_arguments, run=run)
    yield runs
    unregister("greet")


def test_the_help_lists_every_registered_subcommand() -> None:
    names = [command.name for command in subcommands()]
    assert {"record", "export"} <= set(names)
    result = subprocess.run([*CLI, "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    for command in subcommands():
        assert command.name in result.stdout and command.help.split()[0] in result.stdout


def test_a_subcommand_registered_by_a_test_appears_and_runs(greet: list[argparse.Namespace]) -> None:
    assert "greet somebody from a test" in build_parser().format_help()
    assert main(["greet", "plant", "--times", "2"]) == 3
    assert [(args.who, args.times) for args in greet] == [("plant", 2)]
    # The workbench's own options stay where they were.
    assert build_parser().parse_args(["--no-demo"]).no_demo


def test_a_taken_or_bad_name_is_refused_with_what_to_do(greet: list[argparse.Namespace]) -> None:
    with pytest.raises(CommandRegistrationError, match=r"already has a subcommand 'greet'.*unregister"):
        register("greet", help="again", add_arguments=lambda p: None, run=lambda a: 0)
    with pytest.raises(CommandRegistrationError, match="one lower-case word"):
        register("--greet", help="no", add_arguments=lambda p: None, run=lambda a: 0)
    with pytest.raises(CommandRegistrationError, match="run of subcommand 'hi' must be a function"):
        register("hi", help="no", add_arguments=lambda p: None, run=None)  # type: ignore[arg-type]
    assert issubclass(CommandRegistrationError, FastIoTError)
    assert [c.name for c in subcommands()].count("greet") == 1
