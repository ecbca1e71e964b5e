"""The rolling history's command line: ``fastiot-workbench``'s options and the keeper process it runs.

``python -m fastiot.history.rolling_cli --url URL`` keeps the history of the broker at URL (a module of
its own, so that ``-m`` runs it without the package having imported it first).

Example:
    $ fastiot-workbench --history-max-age 2h --history-max-bytes 512MiB
    $ fastiot-workbench --no-history
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
from typing import Any
from urllib.parse import quote

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.history.ranges import parse_duration
from fastiot.history.rolling import (
    HISTORY_ENV,
    HISTORY_MAX_AGE_ENV,
    HISTORY_MAX_BYTES_ENV,
    HistorySettings,
    ensure_history_stream,
    parse_size,
    start_history,
)
from fastiot.nats_server import start_child_process

__all__ = ["KeeperProcess", "add_history_options", "main", "prepare_for_cli", "settings_from_arguments"]

# How long a stopped keeper may take to close its connection before it is killed.
_STOP_TIMEOUT = 10.0


def add_history_options(parser: argparse.ArgumentParser) -> None:
    """``--no-history``, ``--history-max-age`` and ``--history-max-bytes`` (defaults from the environment)."""
    parser.add_argument(
        "--no-history",
        action="store_true",
        help=f"keep no rolling history of the subjects on the broker fastiot-workbench starts "
        f"({HISTORY_ENV}=off)",
    )
    parser.add_argument(
        "--history-max-age",
        type=_argument(parse_duration),
        default=None,
        metavar="AGE",
        help=f"how long the rolling history keeps a message, e.g. 2h, 7d (default ${HISTORY_MAX_AGE_ENV}, "
        f"else 24h)",
    )
    parser.add_argument(
        "--history-max-bytes",
        type=_argument(parse_size),
        default=None,
        metavar="SIZE",
        help=f"the most the rolling history holds before the oldest messages go, e.g. 512MiB "
        f"(default ${HISTORY_MAX_BYTES_ENV}, else 1GiB)",
    )


def _argument(parse: Any) -> Any:
    def checked(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return checked


def settings_from_arguments(args: argparse.Namespace) -> HistorySettings:
    """The history settings of the environment, with the command line's options over them."""
    env = HistorySettings.from_env()
    return HistorySettings(
        enabled=env.enabled and not getattr(args, "no_history", False),
        max_age=getattr(args, "history_max_age", None) or env.max_age,
        max_bytes=getattr(args, "history_max_bytes", None) or env.max_bytes,
    )


def keeper_command(url: str, settings: HistorySettings) -> list[str]:
    """The command line of the keeper process for the broker at ``url``."""
    limits = ["--history-max-age", f"{settings.max_age.total_seconds():g}"]
    limits += ["--history-max-bytes", str(settings.max_bytes)]
    return [sys.executable, "-m", "fastiot.history.rolling_cli", "--url", url, *limits]


async def _make_stream(url: str, settings: HistorySettings) -> None:
    connection = await NatsBrokerConnection.connect(servers=url, name="fastiot-history")
    try:
        await ensure_history_stream(connection, max_age=settings.max_age, max_bytes=settings.max_bytes)
    finally:
        await connection.close()


class KeeperProcess:
    """The keeper in a child process that never outlives this one: what a kernel's own broker gets.

    A process of its own, so that watching every message costs the kernel's loop nothing.

    Args:
        process: The keeper's child process (:meth:`start` makes it).

    Example:
        >>> async def main(url):
        ...     keeper = await KeeperProcess.start(url)  # None with FASTIOT_HISTORY=off
        ...     await keeper.stop()
    """

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process: subprocess.Popen[bytes] = process

    @classmethod
    async def start(cls, url: str, settings: HistorySettings | None = None) -> KeeperProcess | None:
        """Make the history stream on the server at ``url`` now, then start the keeper process.

        Returns:
            The process, or ``None`` when the settings turn the history off.
        """
        settings = settings or HistorySettings.from_env()
        if not settings.enabled:
            return None
        await _make_stream(url, settings)
        return cls(await asyncio.to_thread(start_child_process, keeper_command(url, settings)))

    async def stop(self) -> None:
        """Stop the process (SIGTERM; killed if it does not end within a few seconds)."""
        await asyncio.to_thread(self._stop)

    def _stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(_STOP_TIMEOUT)


def prepare_for_cli(
    url: str, settings: HistorySettings, *, login: tuple[str, str] | None = None
) -> list[str] | None:
    """Make the history stream now (before the demo plant publishes) and return the keeper's command.

    ``fastiot-workbench`` runs the command as a child beside its broker; ``None`` if the history is off.
    ``login`` (user, password) is used here only: the keeper gets it in its environment
    (``FASTIOT_NATS_USER`` / ``_PASSWORD``), never on its command line, which other users can read.
    """
    if not settings.enabled:
        return None
    if login is None:
        asyncio.run(_make_stream(url, settings))
    else:
        scheme, _, rest = url.partition("://")
        asyncio.run(
            _make_stream(f"{scheme}://{quote(login[0], safe='')}:{quote(login[1], safe='')}@{rest}", settings)
        )
    return keeper_command(url, settings)


def main(argv: list[str] | None = None) -> int:
    """``python -m fastiot.history.rolling_cli --url URL``: keep the history of the broker at URL.

    What ``fastiot-workbench`` runs beside the broker it starts, until it is stopped (SIGTERM, Ctrl-C).
    """
    parser = argparse.ArgumentParser(prog="python -m fastiot.history.rolling_cli", description=main.__doc__)
    parser.add_argument("--url", required=True, help="the NATS server whose history to keep")
    add_history_options(parser)
    args = parser.parse_args(argv)
    settings = settings_from_arguments(args)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        keeper = await start_history(args.url, settings)
        if keeper is None:
            return
        try:
            await stop.wait()
        finally:
            await keeper.stop()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
