"""What every broker connection offers.

:class:`BrokerConnection`, its :class:`ConnectionState`, and :class:`BrokerConnectionDummy`, the
stand-in for tests of a service's life cycle.

:class:`~fastiot.core.broker_connection.NatsBrokerConnection` implements it over nats-py; the seed
documents all of these names in ``fastiot.core.broker_connection``, which re-exports them.

Example:
    >>> from fastiot.core.broker_connection import BrokerConnectionDummy, ConnectionState
    >>> BrokerConnectionDummy().state == ConnectionState.CONNECTED == "connected"
    True
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
from abc import ABC, abstractmethod
from collections.abc import Callable
from enum import Enum
from typing import Any

import nats.errors

from fastiot._callbacks import CallbackList, is_coroutine_callable
from fastiot.core._sync_bridge import SyncBridge
from fastiot.core.data_models import ReplySubject, Subject
from fastiot.core.logger import setup_logger
from fastiot.core.serialization import serialize_to_bin
from fastiot.core.subscription import (
    RawCallback,
    Subscription,
    SubscriptionCallback,
    SubscriptionDummy,
    SubscriptionReplyCallback,
    callback_arity,
)
from fastiot.env import env_broker

__all__ = [
    "DEFAULT_FLUSH_TIMEOUT",
    "DEFAULT_PENDING_BYTES_LIMIT",
    "DEFAULT_PENDING_MSGS_LIMIT",
    "BrokerConnection",
    "BrokerConnectionDummy",
    "ConnectionState",
    "StateCallback",
]

DEFAULT_FLUSH_TIMEOUT = 10.0
# A subscription whose handler is slower than the message rate buffers at most this much in the client;
# beyond it nats-py drops messages and reports a slow consumer.
DEFAULT_PENDING_MSGS_LIMIT = 65_536
DEFAULT_PENDING_BYTES_LIMIT = 64 * 1024 * 1024

_logger = setup_logger("broker")


class ConnectionState(str, Enum):
    """The state of a broker connection; compares equal to its string (``state == "connected"``)."""

    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    DISCONNECTED = "disconnected"
    """Not connected yet."""
    CLOSED = "closed"

    def __str__(self) -> str:
        return self.value


# Receives the new ConnectionState.
StateCallback = Callable[[ConnectionState], None]


class BrokerConnection(SyncBridge, ABC):
    """What every broker connection offers; see :class:`NatsBrokerConnection`.

    Besides the seed's API it has :attr:`state` with :meth:`on_state_change`, :meth:`flush`,
    :meth:`subscribe_raw` and :meth:`publish_raw`, so code using any connection needs no probing.

    Args:
        kwargs: Passed on to :class:`~fastiot.core._sync_bridge.SyncBridge`.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._state: ConnectionState = ConnectionState.DISCONNECTED
        self._state_callbacks: CallbackList[[ConnectionState]] = CallbackList("state change", logger=_logger)

    @property
    def state(self) -> ConnectionState:
        """``connected``, ``reconnecting``, ``disconnected`` (not connected yet) or ``closed``."""
        return self._state

    @property
    def connected_url(self) -> str | None:
        """The URL of the server this connection is attached to now (None: no server, or no URL)."""
        return None

    def on_state_change(self, callback: StateCallback, remove: bool = False) -> None:
        """Call ``callback(state)`` (a plain function, run on the loop) whenever :attr:`state` changes.

        Example:
            >>> connection.on_state_change(lambda state: print("NATS:", state))  # doctest: +SKIP
        """
        self._state_callbacks.register(callback, remove=remove)

    def _set_state(self, state: ConnectionState) -> None:
        if state == self._state:
            return
        self._state = state
        self._state_callbacks(state)

    async def flush(self, timeout: float = DEFAULT_FLUSH_TIMEOUT) -> None:
        """Wait until the server has received everything sent on this connection so far."""

    async def subscribe_raw(
        self,
        pattern: str,
        cb: RawCallback,
        *,
        pending_msgs_limit: int = DEFAULT_PENDING_MSGS_LIMIT,
        pending_bytes_limit: int = DEFAULT_PENDING_BYTES_LIMIT,
    ) -> Subscription:
        """Subscribe to a NATS pattern and get the undecoded nats-py messages (captures use this)."""
        raise NotImplementedError(f"{type(self).__name__} has no raw subscriptions")

    async def publish_raw(
        self,
        subject: str,
        payload: bytes,
        headers: dict[str, str] | None = None,
        *,
        confirm: bool = False,
        reply: str = "",
    ) -> None:
        """Publish bytes as they are (no serialization); ``confirm`` waits until the server has them."""
        raise NotImplementedError(f"{type(self).__name__} cannot publish raw bytes")

    @abstractmethod
    async def subscribe(self, subject: Subject, cb: SubscriptionCallback) -> Subscription:
        """Subscribe to a subject.

        Args:
            subject: The subject to subscribe to.
            cb: ``async def cb(msg)`` or ``async def cb(subject_name, msg)``, called for each message.

        Raises:
            TypeError: If ``cb`` is not async or has another signature.
        """

    async def subscribe_msg_queue(self, subject: Subject, msg_queue: asyncio.Queue[Any]) -> Subscription:
        """Subscribe to a subject, putting each received message into ``msg_queue``.

        A bounded queue that is full holds the subscription back; the client's pending limits then
        bound the backlog and report a slow consumer.
        """

        async def cb(msg: Any) -> None:
            await msg_queue.put(msg)

        return await self.subscribe(subject=subject, cb=cb)

    @abstractmethod
    async def subscribe_reply_cb(self, subject: ReplySubject, cb: SubscriptionReplyCallback) -> Subscription:
        """Subscribe to a reply subject: ``cb`` answers each request by returning the reply message."""

    @abstractmethod
    async def _send(
        self, subject: Subject, msg: Any, reply: Subject | None = None, headers: dict[str, str] | None = None
    ) -> None:
        """Serialize and send one message."""

    @abstractmethod
    async def _request(self, subject: ReplySubject, msg: Any, timeout: float) -> Any:
        """Send a request and return the decoded reply."""

    async def publish(self, subject: Subject, msg: Any) -> None:
        """Publish a message on a subject.

        Raises:
            TypeError: If ``msg`` is not of the subject's model.
        """
        await self._send(subject=subject, msg=msg)

    async def request(self, subject: ReplySubject, msg: Any, timeout: float | None = None) -> Any:
        """Send a request and wait for the reply.

        Args:
            subject: The request subject, e.g. ``MyRequest.get_reply_subject()``.
            msg: The request message.
            timeout: Seconds to wait for the reply; ``None`` means ``FASTIOT_NATS_DEFAULT_TIMEOUT`` (30 s).

        Raises:
            RequestTimeoutError: No reply in time (a ``TimeoutError`` and ``nats.errors.TimeoutError``);
                it names the subject and the timeout.
            nats.errors.NoRespondersError: Nobody subscribes to the subject.
            ReplyHandlerError: The replying service failed; the message says how.
        """
        return await self._request(subject, msg, env_broker.default_timeout if timeout is None else timeout)

    @property
    @abstractmethod
    def is_connected(self) -> bool:
        """Return the connection status, e.g. for health checks."""

    def publish_sync(self, subject: Subject, msg: Any, timeout: float = 0.0) -> None:
        """Publish from synchronous code (any thread); see :meth:`run_threadsafe`."""
        self.run_threadsafe(self.publish(subject=subject, msg=msg), timeout=timeout)

    def publish_sync_nowait(self, subject: Subject, msg: Any) -> concurrent.futures.Future[Any]:
        """Publish from another thread without waiting; returns the future."""
        return self.run_threadsafe_nowait(self.publish(subject=subject, msg=msg))

    def request_sync(self, subject: ReplySubject, msg: Any, timeout: float | None = None) -> Any:
        """Request from synchronous code (any thread); see :meth:`request` and :meth:`run_threadsafe`.

        It times out after ``timeout`` (the request's own timeout); it may wait longer if the loop is
        too busy to schedule the request.
        """
        return self.run_threadsafe(self.request(subject=subject, msg=msg, timeout=timeout))


class BrokerConnectionDummy(BrokerConnection):
    """A dummy broker implementation to mock dependencies.

    Publishing records the last ``max_published`` messages in :attr:`published`; requests raise
    ``nats.errors.NoRespondersError``, as a real broker with nobody listening would.

    Args:
        max_published: How many published messages :attr:`published` keeps.
        kwargs: Passed on to :class:`BrokerConnection`.
    """

    def __init__(self, max_published: int = 1000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.published: collections.deque[tuple[str, Any]] = collections.deque(maxlen=max_published)
        """``(subject name, message)`` of each publish; ``publish_raw`` records the payload bytes."""
        self._state = ConnectionState.CONNECTED

    @property
    def is_connected(self) -> bool:
        """Always True: the dummy is connected until closed."""
        return True

    async def subscribe(self, subject: Subject, cb: SubscriptionCallback) -> Subscription:
        """Check the callback as a real broker would; no message ever arrives."""
        callback_arity(cb, what="subscription callback")
        return SubscriptionDummy()

    async def subscribe_reply_cb(self, subject: ReplySubject, cb: SubscriptionReplyCallback) -> Subscription:
        """Check the callback as a real broker would; no request ever arrives."""
        callback_arity(cb, what="reply callback")
        return SubscriptionDummy()

    async def subscribe_raw(
        self,
        pattern: str,
        cb: RawCallback,
        *,
        pending_msgs_limit: int = DEFAULT_PENDING_MSGS_LIMIT,
        pending_bytes_limit: int = DEFAULT_PENDING_BYTES_LIMIT,
    ) -> Subscription:
        """Check the callback as a real broker would; no message ever arrives."""
        if not is_coroutine_callable(cb):
            raise TypeError("the raw subscription callback must be an async function taking a nats Msg")
        return SubscriptionDummy()

    async def publish_raw(
        self,
        subject: str,
        payload: bytes,
        headers: dict[str, str] | None = None,
        *,
        confirm: bool = False,
        reply: str = "",
    ) -> None:
        """Record ``(subject, payload)`` in :attr:`published`."""
        self.published.append((subject, payload))

    async def _send(
        self, subject: Subject, msg: Any, reply: Subject | None = None, headers: dict[str, str] | None = None
    ) -> None:
        serialize_to_bin(subject.msg_cls, msg)  # the same type check a real broker applies
        self.published.append((subject.name, msg))

    async def _request(self, subject: ReplySubject, msg: Any, timeout: float) -> Any:
        serialize_to_bin(subject.msg_cls, msg)
        raise nats.errors.NoRespondersError()

    async def close(self) -> None:
        """Mark the dummy closed."""
        self._set_state(ConnectionState.CLOSED)
