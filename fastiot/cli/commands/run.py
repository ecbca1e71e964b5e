"""``fastiot-workbench run``: run a service module (``main()``), and with ``--reload`` restart it on changes.

Example:
    $ fastiot-workbench run overheat_watch.py                 # the one service it defines
    $ fastiot-workbench run services.py:OverheatWatch --reload
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from fastiot.cli.commands._broker import APP
from fastiot.cli.registry import register
from fastiot.exceptions import FastIoTError, ServiceExportError

__all__ = ["DEFAULT_POLL_INTERVAL", "DEFAULT_STOP_TIMEOUT", "add_arguments", "run_command"]

DEFAULT_POLL_INTERVAL = 0.5
"""Seconds between two looks at the watched files' modification times (``--reload``)."""
DEFAULT_STOP_TIMEOUT = 15.0
"""Seconds the service gets to stop after SIGTERM before it is killed (``--reload``)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``fastiot-workbench run``."""
    parser.add_argument(
        "service",
        metavar="PATH.py[:CLASS]",
        help="a service module (.py file or dotted module), and the class if it defines several",
    )
    parser.add_argument(
        "--reload",
        action="store_true",
        help="restart the service when a .py file in the module's folder changes",
    )
    parser.add_argument(
        "--poll-interval", type=float, default=DEFAULT_POLL_INTERVAL, metavar="S", help=argparse.SUPPRESS
    )


def run_command(args: argparse.Namespace) -> int:
    """``fastiot-workbench run``: the exit status of the service (0 after SIGTERM), 2 if it cannot load."""
    if args.reload:
        return _supervise(args.service, args.poll_interval)
    from fastiot.services.loading import load_services

    try:
        classes = load_services(args.service)
        if len(classes) > 1:
            names = ", ".join(cls.__name__ for cls in classes)
            example = f"{args.service}:{classes[0].__name__}"
            raise ServiceExportError(
                f"{args.service} defines several services ({names}); name one: {example}"
            )
    except FastIoTError as e:
        print(f"{APP} run: {e}", file=sys.stderr)
        return 2
    try:
        classes[0].main()
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    return 0


def _watched(service: str) -> list[Path]:
    """The ``.py`` files of the module's folder (the module may import its neighbours)."""
    from fastiot.services.loading import split_spec

    path = Path(split_spec(service)[0]).expanduser()
    if path.suffix != ".py":
        return []  # a dotted module: its file is found by the child's import
    return sorted(path.resolve().parent.glob("*.py"))


def _snapshot(files: list[Path]) -> dict[Path, int]:
    stamps: dict[Path, int] = {}
    for file in files:
        try:
            stamps[file] = file.stat().st_mtime_ns
        except FileNotFoundError:
            stamps[file] = -1
    return stamps


class _Stop(Exception):
    """SIGTERM or SIGINT reached the supervisor."""


def _supervise(service: str, poll_interval: float) -> int:
    """Run the service in a child process; restart it whenever a watched file changes, until a signal."""

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        raise _Stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    child: subprocess.Popen[bytes] | None = None
    try:
        stamps = _snapshot(_watched(service))
        child = _start(service)
        reported = False  # the child's crash, said once
        while True:
            time.sleep(max(0.05, poll_interval))
            now = _snapshot(_watched(service))
            if now != stamps:
                changed = sorted(p.name for p in set(now) | set(stamps) if now.get(p) != stamps.get(p))
                print(
                    f"{APP} run: {', '.join(changed)} changed; restarting {service}",
                    file=sys.stderr,
                    flush=True,
                )
                stamps = now
                _stop(child)
                child, reported = _start(service), False
            elif not reported and child.poll() is not None and child.returncode != 0:
                print(
                    f"{APP} run: {service} ended with exit code {child.returncode}; it restarts on a change",
                    file=sys.stderr,
                    flush=True,
                )
                reported = True
    except _Stop:
        return 0
    finally:
        if child is not None:
            _stop(child)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start(service: str) -> subprocess.Popen[bytes]:
    child = subprocess.Popen([sys.executable, "-m", "fastiot.cli", "run", service])
    print(
        f"{APP} run: started {service} (pid {child.pid}); watching for changes", file=sys.stderr, flush=True
    )
    return child


def _stop(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then wait for the graceful stop; kill it if it takes longer than DEFAULT_STOP_TIMEOUT."""
    if child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(DEFAULT_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        print(
            f"{APP} run: the service did not stop within {DEFAULT_STOP_TIMEOUT:g} s; killing it",
            file=sys.stderr,
        )
        child.kill()
        child.wait(DEFAULT_STOP_TIMEOUT)


register(
    "run",
    help="run a service module (its main()); --reload restarts it when the file changes",
    description="Run the FastIoT service of PATH.py (or PATH.py:CLASS, or a dotted module) with its "
    "main(): it connects with the FASTIOT_NATS_* settings and stops gracefully on SIGTERM. With --reload "
    "the service runs in a child process that is restarted whenever a .py file in the module's folder "
    "changes.",
    add_arguments=add_arguments,
    run=run_command,
)
