"""The JetStream store of the broker ``fastiot-workbench`` starts: ``--store``, its default, the server.

The history subcommands (``record``, ``export``) are :mod:`fastiot.cli.commands.record` and
:mod:`fastiot.cli.commands.export`.

Example:
    $ fastiot-workbench --store ~/plant-store    # the broker keeps its streams there
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from fastiot.nats_server import NatsServer, NatsServerStartError

__all__ = [
    "STORE_ENV",
    "add_store_option",
    "default_store_dir",
    "workbench_server",
]

STORE_ENV = "FASTIOT_WORKBENCH_STORE"
_APP = "fastiot-workbench"


def default_store_dir() -> Path:
    """Where the workbench's own broker keeps JetStream.

    ``$FASTIOT_WORKBENCH_STORE``, else the platform's per-user data folder
    (``~/.local/share/fastiot-workbench/jetstream`` on Linux).
    """
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


def workbench_server(
    port: int | None,
    args: argparse.Namespace,
    *,
    user: str | None = None,
    password: str | None = None,
    mqtt_port: int | None = None,
) -> tuple[NatsServer, str]:
    """Start the workbench's own broker with its JetStream store (``--store``, else the default).

    When the default store is in use by another running workbench, this one gets a temporary store
    (and says so) instead of failing; a store given with ``--store`` that is in use is an error.
    With ``user`` and ``password`` the broker accepts only clients that log in with them (MQTT clients
    too); with ``mqtt_port`` it serves MQTT there as well.

    Returns:
        The running server and a description of its store for the banner.

    Raises:
        NatsServerStartError: The server did not start (or the ``--store`` given is in use).
    """
    store = store_dir(args)
    try:
        return NatsServer(
            port, store_dir=store, user=user, password=password, mqtt_port=mqtt_port
        ).start(), f"JetStream store {store}"
    except NatsServerStartError as e:
        if getattr(args, "store", None) is not None or "in use" not in str(e):
            raise
    return NatsServer(port, jetstream=True, user=user, password=password, mqtt_port=mqtt_port).start(), (
        f"JetStream in a temporary store: {store} is in use by another fastiot-workbench; "
        f"give --store DIR to keep this one's recordings"
    )
