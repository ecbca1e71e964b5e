"""``fastiot-workbench record``: start (or reuse) a recording in the broker and return.

Example:
    $ fastiot-workbench record 'v1.thing.>' --name plant --max-age 1d     # returns at once
"""

from __future__ import annotations

import argparse

from fastiot.cli.registry import register
from fastiot.history.cli import add_nats_option, duration_argument, record_command

__all__ = ["add_arguments"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``fastiot-workbench record``."""
    parser.add_argument("pattern", nargs="+", metavar="PATTERN", help="subject pattern(s), e.g. 'v1.thing.>'")
    parser.add_argument("--name", required=True, help="the recording's (stream's) name, e.g. plant")
    parser.add_argument(
        "--max-age",
        type=duration_argument,
        default=None,
        metavar="AGE",
        help="drop older messages: 1d, 12h, 90m",
    )
    parser.add_argument(
        "--max-bytes", type=int, default=None, metavar="N", help="drop the oldest beyond N bytes"
    )
    parser.add_argument(
        "--max-msgs", type=int, default=None, metavar="N", help="drop the oldest beyond N messages"
    )
    parser.add_argument("--storage", choices=("file", "memory"), default="file", help="default: file")
    parser.add_argument("--replicas", type=int, default=1, metavar="N", help="copies in a cluster (1-5)")
    add_nats_option(parser)


register(
    "record",
    help="record subjects into a JetStream stream in the broker (returns at once)",
    description="Record the subjects matching PATTERN into the JetStream stream NAME. The broker records; "
    "this command returns at once, and the recording goes on until it is stopped or deleted.",
    add_arguments=add_arguments,
    run=record_command,
)
