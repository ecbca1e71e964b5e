"""``fastiot-workbench export``: write a recording (or its last ``--since``) as Parquet and/or MCAP.

Example:
    $ fastiot-workbench export plant --parquet ./plant-parquet --since 1h
    $ fastiot-workbench export plant --mcap plant.mcap
"""

from __future__ import annotations

import argparse
import sys
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
    parser.add_argument("--parquet", type=Path, metavar="DIR", help="write a Parquet dataset into DIR")
    parser.add_argument(
        "--mcap", type=Path, metavar="FILE", help="write an MCAP file (Foxglove, ROS 2 tools) to FILE"
    )
    parser.add_argument(
        "--since", type=duration_argument, default=None, metavar="AGE", help="only the last AGE: 1h, 1d"
    )
    parser.add_argument("--subjects", nargs="+", default=None, metavar="PATTERN", help="only these subjects")
    add_nats_option(parser)


def export_command(args: argparse.Namespace) -> int:
    """``fastiot-workbench export``: write a recording (or its last ``--since``) as Parquet and/or MCAP."""
    from fastiot.history.recording import Recording

    if args.parquet is None and args.mcap is None:
        print(f"{APP} export: give --parquet DIR, --mcap FILE or both", file=sys.stderr)
        return 2

    async def work(connection: NatsBrokerConnection) -> str:
        rec = await Recording.open(args.name, connection=connection)
        done = []
        if args.parquet is not None:
            directory = await rec.to_parquet(args.parquet, start=args.since, subjects=args.subjects)
            files = sorted(directory.rglob("*.parquet"))
            done.append(f"{directory} ({len(files)} Parquet files in the folder)")
        if args.mcap is not None:
            path = await rec.to_mcap(args.mcap, start=args.since, subjects=args.subjects)
            done.append(f"{path} (MCAP, {path.stat().st_size} bytes)")
        return f"{APP}: exported {args.name!r} to {' and '.join(done)}"

    return run_on_broker(args, work)


register(
    "export",
    help="export a recording as a Parquet dataset (partitioned by subject and hour) or an MCAP file",
    description="Write the messages of recording NAME to DIR as a Parquet dataset partitioned by subject and "
    "hour (pandas reads it with pd.read_parquet(DIR), DuckDB and pyarrow read parts of it), and/or to FILE "
    "as MCAP, one channel per subject (Foxglove opens it; fastiot.history.read_mcap reads it back).",
    add_arguments=add_arguments,
    run=export_command,
)
