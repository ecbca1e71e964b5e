"""What ``fastiot-workbench record`` and ``export`` run, and the workbench broker's ``--store``.

The subcommands themselves (their arguments and help) are :mod:`fastiot.cli.commands.record` and
:mod:`fastiot.cli.commands.export`.

Example:
    $ fastiot-workbench record 'v1.thing.>' --name plant --max-age 1d     # returns at once
    $ fastiot-workbench export plant --parquet ./plant-parquet --since 1h
    $ fastiot-workbench --store ~/plant-store    # the broker keeps its streams there
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from fastiot._words import plural
from fastiot.exceptions import BrokerUnavailableError, FastIoTError
from fastiot.history.ranges import parse_duration
from fastiot.nats_server import NatsServer, NatsServerStartError

if TYPE_CHECKING:
    from fastiot.core.broker_connection import NatsBrokerConnection

__all__ = [
    "STORE_ENV",
    "add_nats_option",
    "add_store_option",
    "default_store_dir",
    "duration_argument",
    "export_command",
    "record_command",
    "workbench_server",
]

STORE_ENV = "FASTIOT_WORKBENCH_STORE"
_APP = "fastiot-workbench"


def default_store_dir() -> Path:
    """Where the workbench's own broker keeps JetStream: ``$FASTIOT_WORKBENCH_STORE``, else the platform's
    per-user data folder (``~/.local/share/fastiot-workbench/jetstream`` on Linux)."""
    configured = os.environ.get(STORE_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / _APP / "jetstream"


def add_store_option(parser: argparse.ArgumentParser) -> None:
    """``--store DIR``: the JetStream store of the broker the workbench starts (it survives restarts)."""
    parser.add_argument(
        "--store",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"where the broker fastiot-workbench starts keeps its JetStream store (recordings, key-value "
        f"buckets), so they survive a restart; default ${STORE_ENV}, else {default_store_dir()}",
    )


def store_dir(args: argparse.Namespace) -> Path:
    """The store directory the arguments ask for (``--store``, else the default)."""
    given = getattr(args, "store", None)
    return Path(given).expanduser() if given is not None else default_store_dir()


def workbench_server(port: int | None, args: argparse.Namespace) -> tuple[NatsServer, str]:
    """Start the workbench's own broker with its JetStream store (``--store``, else the default).

    When the default store is in use by another running workbench, this one gets a temporary store
    (and says so) instead of failing; a store given with ``--store`` that is in use is an error.

    Returns:
        The running server and a description of its store for the banner.

    Raises:
        NatsServerStartError: The server did not start (or the ``--store`` given is in use).
    """
    store = store_dir(args)
    try:
        return NatsServer(port, store_dir=store).start(), f"JetStream store {store}"
    except NatsServerStartError as e:
        if getattr(args, "store", None) is not None or "in use" not in str(e):
            raise
    return NatsServer(port, jetstream=True).start(), (
        f"JetStream in a temporary store: {store} is in use by another fastiot-workbench; "
        f"give --store DIR to keep this one's recordings"
    )


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


def _run(args: argparse.Namespace, work: Callable[[NatsBrokerConnection], Awaitable[str]]) -> int:
    command = getattr(args, "command", None) or "history"

    async def main() -> str:
        from fastiot.core.broker_connection import NatsBrokerConnection

        connection = await NatsBrokerConnection.connect(servers=args.nats, name=f"{_APP} {command}")
        try:
            return await work(connection)
        finally:
            await connection.close()

    try:
        print(asyncio.run(main()), flush=True)
    except BrokerUnavailableError as e:
        print(f"{_APP}: {e}", file=sys.stderr)
        return 1
    except FastIoTError as e:
        print(f"{_APP} {command}: {e}", file=sys.stderr)
        return 2
    return 0


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
            f"{_APP}: recording {', '.join(info.subjects)} into {info.name!r}{limit} "
            f"({plural(info.messages, 'message')} so far); it runs in the broker until "
            f"`await (await Recording.open({info.name!r})).stop()` or .delete()"
        )

    return _run(args, work)


def export_command(args: argparse.Namespace) -> int:
    """``fastiot-workbench export``: write a recording (or its last ``--since``) as Parquet."""
    from fastiot.history.recording import Recording

    async def work(connection: NatsBrokerConnection) -> str:
        rec = await Recording.open(args.name, connection=connection)
        directory = await rec.to_parquet(args.parquet, start=args.since, subjects=args.subjects)
        files = sorted(directory.rglob("*.parquet"))
        return f"{_APP}: exported {args.name!r} to {directory} ({len(files)} Parquet files in the folder)"

    return _run(args, work)
