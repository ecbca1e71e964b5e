"""What the subcommands that talk to a broker share: ``--nats``, durations, connect-run-print-close."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from fastiot.exceptions import BrokerUnavailableError, FastIoTError
from fastiot.history.ranges import parse_duration

if TYPE_CHECKING:
    from fastiot.core.broker_connection import NatsBrokerConnection

__all__ = ["APP", "add_nats_option", "duration_argument", "run_on_broker"]

APP = "fastiot-workbench"


def duration_argument(text: str) -> timedelta:
    """An argparse ``type`` for ``1d``, ``12h``, ``90m``: a timedelta, or argparse's usage error."""
    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_nats_option(parser: argparse.ArgumentParser) -> None:
    """``--nats URL``: the broker a subcommand talks to."""
    parser.add_argument(
        "--nats",
        metavar="URL",
        default=None,
        help="NATS server URL(s), comma separated; default: the FASTIOT_NATS_* settings, else localhost:4222",
    )


def run_on_broker(args: argparse.Namespace, work: Callable[[NatsBrokerConnection], Awaitable[str]]) -> int:
    """Connect to ``--nats`` (else the FASTIOT_NATS_* broker), print what ``work`` returns, close.

    Returns:
        The exit status: 0, 1 if no broker answered, 2 for any other fastiot error (printed).
    """
    command = getattr(args, "command", None) or "history"

    async def main() -> str:
        from fastiot.core.broker_connection import NatsBrokerConnection

        connection = await NatsBrokerConnection.connect(servers=args.nats, name=f"{APP} {command}")
        try:
            return await work(connection)
        finally:
            await connection.close()

    try:
        print(asyncio.run(main()), flush=True)
    except BrokerUnavailableError as e:
        print(f"{APP}: {e}", file=sys.stderr)
        return 1
    except FastIoTError as e:
        print(f"{APP} {command}: {e}", file=sys.stderr)
        return 2
    return 0
