"""``fastiot-workbench record``: start (or reuse) a recording in the broker and return.

Example:
    $ fastiot-workbench record 'v1.thing.>' --name plant --max-age 1d     # returns at once
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from fastiot._words import plural
from fastiot.cli.commands._broker import APP, add_nats_option, duration_argument, run_on_broker
from fastiot.cli.registry import register

if TYPE_CHECKING:
    from fastiot.core.broker_connection import NatsBrokerConnection

__all__ = ["add_arguments", "record_command"]


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


def record_command(args: argparse.Namespace) -> int:
    """``fastiot-workbench record``: start (or reuse) a recording and return."""
    from fastiot.history.recording import Recording

    async def work(connection: NatsBrokerConnection) -> str:
        rec = await Recording.start(
            args.name,
            args.pattern,
            connection=connection,
            max_age=args.max_age,
            max_bytes=args.max_bytes,
            max_msgs=args.max_msgs,
            storage=args.storage,
            replicas=args.replicas,
        )
        info = await rec.info()
        limit = f", keeping {args.max_age}" if args.max_age else ""
        return (
            f"{APP}: recording {', '.join(info.subjects)} into {info.name!r}{limit} "
            f"({plural(info.messages, 'message')} so far); it runs in the broker until "
            f"`await (await Recording.open({info.name!r})).stop()` or .delete()"
        )

    return run_on_broker(args, work)


register(
    "record",
    help="record subjects into a JetStream stream in the broker (returns at once)",
    description="Record the subjects matching PATTERN into the JetStream stream NAME. The broker records; "
    "this command returns at once, and the recording goes on until it is stopped or deleted.",
    add_arguments=add_arguments,
    run=record_command,
)
