"""``fastiot-workbench export``: write a recording (or its last ``--since``) as a Parquet dataset.

Example:
    $ fastiot-workbench export plant --parquet ./plant-parquet --since 1h
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from fastiot.cli.commands._broker import APP, add_nats_option, duration_argument, run_on_broker
from fastiot.cli.registry import register

if TYPE_CHECKING:
    from fastiot.core.broker_connection import NatsBrokerConnection

__all__ = ["add_arguments", "export_command"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``fastiot-workbench export``."""
    parser.add_argument("name", metavar="NAME", help="the recording's name")
    parser.add_argument("--parquet", required=True, type=Path, metavar="DIR", help="the dataset's folder")
    parser.add_argument(
        "--since", type=duration_argument, default=None, metavar="AGE", help="only the last AGE: 1h, 1d"
    )
    parser.add_argument("--subjects", nargs="+", default=None, metavar="PATTERN", help="only these subjects")
    add_nats_option(parser)


def export_command(args: argparse.Namespace) -> int:
    """``fastiot-workbench export``: write a recording (or its last ``--since``) as Parquet."""
    from fastiot.history.recording import Recording

    async def work(connection: NatsBrokerConnection) -> str:
        rec = await Recording.open(args.name, connection=connection)
        directory = await rec.to_parquet(args.parquet, start=args.since, subjects=args.subjects)
        files = sorted(directory.rglob("*.parquet"))
        return f"{APP}: exported {args.name!r} to {directory} ({len(files)} Parquet files in the folder)"

    return run_on_broker(args, work)


register(
    "export",
    help="export a recording as a Parquet dataset (partitioned by subject and hour)",
    description="Write the messages of recording NAME to DIR as a Parquet dataset partitioned by subject and "
    "hour; pandas reads it with pd.read_parquet(DIR), DuckDB and pyarrow read parts of it.",
    add_arguments=add_arguments,
    run=export_command,
)
