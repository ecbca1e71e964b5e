"""ReplayBroker: a private nats-server fed from a recording, for a service to run against.

It lets you test a service on yesterday's traffic without touching the live plant: the service
connects to a nats-server of its own (a free loopback port, started for it), and the recording is
replayed into that server. Nothing the service publishes reaches the live broker, and nothing of the
live broker reaches the service.

A :class:`~fastiot.runner.ServiceRunner` given ``environment=ReplayBroker(...)`` opens it at each
start (server and connection), starts the replay once the service's subscriptions are in place (so it
sees every replayed message), and closes it when the service ends (replay, connection and server).
``%%service --replay NAME`` is built on this.

Example:
    >>> from fastiot.history import ReplayBroker
    >>> from fastiot.runner import ServiceRunner
    >>> async def main():
    ...     runner = ServiceRunner(MyService, environment=ReplayBroker("plant", speed=10))
    ...     await runner.start()
    ...     replay = runner.environment.replay          # published / total / progress
    ...     await replay.wait(timeout=60)
    ...     await runner.stop()                         # stops the replay and the private server
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import timedelta

from fastiot._callbacks import CallbackList
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import InvalidRecordingError
from fastiot.history.ranges import Bound
from fastiot.history.recording import Recording
from fastiot.history.replay import Replay
from fastiot.nats_server import NatsServer

__all__ = ["ChangeCallback", "ReplayBroker"]

ChangeCallback = Callable[["ReplayBroker"], None]
"""Called with the ReplayBroker when a replay starts (at each start of the service) and when it closes."""

_logger = logging.getLogger("fastiot.replay")


class ReplayBroker:
    """A private nats-server on a free loopback port, fed from a recording while a service runs.

    Args:
        recording: The recording (a name or a :class:`~fastiot.history.Recording`) to replay.
        speed: The replay's speed factor (10: ten times as fast); None publishes as fast as possible.
        start, end: The range to replay (a datetime, a timedelta back from now, a stream sequence);
            the whole recording by default.
        subjects: Only these subjects of the recording; all by default.
        connection: Where the recording is read from; None: the recording's own connection, else the
            kernel's (in a notebook) or the one ``FASTIOT_NATS_*`` describes.

    :attr:`server`, :attr:`broker` (the connection to the private server, which the service gets) and
    :attr:`replay` exist while it is open. Each :meth:`open` makes a new server and, once the service
    runs, a new replay from the start of the range.
    """

    def __init__(
        self,
        recording: str | Recording,
        *,
        speed: float | None = 1.0,
        start: Bound = None,
        end: Bound = None,
        subjects: str | list[str] | None = None,
        connection: NatsBrokerConnection | None = None,
    ) -> None:
        if speed is not None and (
            isinstance(speed, bool) or not isinstance(speed, (int, float)) or speed <= 0
        ):
            raise InvalidRecordingError(
                f"speed must be a positive number (10: ten times as fast) or None (as fast as possible), "
                f"got {speed!r}"
            )
        if isinstance(recording, Recording):
            connection = connection or recording.connection
            recording = recording.name
        self.recording: Recording = Recording(recording, connection=connection)  # checks the name now
        self.connection: NatsBrokerConnection | None = connection
        self.speed: float | None = speed
        self.start: Bound = start
        self.end: Bound = end
        self.subjects: str | list[str] | None = subjects
        self.server: NatsServer | None = None
        self.broker: NatsBrokerConnection | None = None
        self.replay: Replay | None = None
        self._on_change: CallbackList[[ReplayBroker]] = CallbackList("replay broker change", logger=_logger)

    def __repr__(self) -> str:
        speed = "max" if self.speed is None else f"{self.speed:g}x"
        where = self.server.url if self.server is not None else "not running"
        return f"<ReplayBroker of {self.recording.name!r} at {speed}, {where}>"

    @property
    def description(self) -> str:
        """What a person is shown, e.g. "replaying 'plant' at 10x into nats://127.0.0.1:40123"."""
        speed = "as fast as possible" if self.speed is None else f"at {self.speed:g}x"
        where = f" into {self.server.url}" if self.server is not None else " into a private broker"
        since = f" (the last {self.start})" if isinstance(self.start, timedelta) else ""
        return f"replaying {self.recording.name!r}{since} {speed}{where}"

    def on_change(self, callback: ChangeCallback, remove: bool = False) -> None:
        """Call ``callback(replay_broker)`` when a replay starts and when the private broker has closed.

        ``callback`` is a plain function. A replay starts at each start of the service; :attr:`replay` is
        then the new one.
        """
        self._on_change.register(callback, remove=remove)

    async def open(self) -> NatsBrokerConnection:
        """Start the private server and connect to it; the connection is what the service gets.

        The recording is looked up first, so a wrong name fails before any server starts.

        Raises:
            RecordingNotFoundError: There is no such recording.
            NatsServerStartError: The private nats-server did not come up.
        """
        if self.broker is not None:
            return self.broker
        # RecordingNotFoundError now, not after a server was started.
        self.recording = await Recording.open(self.recording.name, connection=self.connection)
        server = NatsServer()
        await asyncio.to_thread(server.start)
        self.server = server
        try:
            self.broker = await NatsBrokerConnection.connect(servers=server.url, name="fastiot-replay")
        except BaseException:
            await self.close()
            raise
        return self.broker

    async def service_started(self) -> None:
        """Start the replay into the private server (the service's subscriptions are in place now)."""
        if self.broker is None:
            raise RuntimeError("ReplayBroker.service_started() before open(); a ServiceRunner calls both")
        self.replay = await self.recording.replay(
            speed=self.speed, start=self.start, end=self.end, subjects=self.subjects, connection=self.broker
        )
        self._on_change(self)

    async def close(self) -> None:
        """Stop the replay, close the connection and stop the private server.

        Each step runs even if one before failed.
        """
        replay, broker, server = self.replay, self.broker, self.server
        self.broker = self.server = None
        if replay is not None:
            with contextlib.suppress(Exception):  # a failed replay keeps its error in replay.error
                await replay.stop()
        if broker is not None:
            try:
                await broker.close()
            except Exception:
                _logger.exception("closing the connection to the private broker failed")
        if server is not None:
            await asyncio.to_thread(server.stop)
        if replay is not None or server is not None:
            self._on_change(self)
