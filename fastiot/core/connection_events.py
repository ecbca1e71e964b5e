"""What nats-py tells a connection, and how it is reported: errors, refusals, slow consumers, outages.

:class:`ConnectionEvents` is a base of :class:`~fastiot.core.broker_connection.NatsBrokerConnection`:
nats-py calls these handlers from its read loop and reconnect loop, and they keep the counters a person
reads (``reconnects``, ``slow_consumer_events``, ``bad_messages``, ``failed_reconnect_attempts``, ...),
log each kind of trouble once, hand permission refusals to the connection's :class:`RefusalWatch` and to
the subscriptions they concern, and move the connection's state.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import nats.errors
from nats.aio.client import Client as NatsClient

from fastiot._tasks import BackgroundTasks
from fastiot.core import _nats_compat
from fastiot.core._connect import ReconnectServerChoice, is_authorization_error
from fastiot.core.broker_api import ConnectionState
from fastiot.core.logger import setup_logger
from fastiot.core.permissions import Refusal, RefusalWatch, parse_refusal, same_subject
from fastiot.core.subscription import NatsBrokerSubscription, RawSubscription
from fastiot.env import redact_url
from fastiot.exceptions import BadMessageError, PermissionDeniedError

__all__ = ["DEFAULT_RECONNECT_TIME_WAIT", "DEFAULT_SLOW_CONSUMER_BURST_GAP", "ConnectionEvents"]

# Seconds between two reconnect attempts to the same server (nats-py adds jitter); others are tried at once.
DEFAULT_RECONNECT_TIME_WAIT = 1.0
# Slow-consumer events on one subscription closer together than this (seconds) are one burst, logged once.
DEFAULT_SLOW_CONSUMER_BURST_GAP = 1.0

_logger = setup_logger("broker")


class ConnectionEvents:
    """The event handlers of a NATS connection and the counters they keep (a base of the connection).

    Attributes:
        reconnects: Reconnects so far.
        slow_consumer_events: Messages the client dropped for a subscription that fell behind.
        last_error: The last error nats-py reported.
        bad_messages: Malformed messages from the wire (e.g. a subject that is not UTF-8), dropped and
            reported.
        failed_reconnect_attempts: Reconnect attempts that failed during the current (or the last) outage.
        last_outage_seconds: How long the last outage lasted, from losing the connection to reconnecting.
        refusals: The server's permission refusals on this connection (see :mod:`fastiot.core.permissions`).
    """

    # Made by the connection itself (see NatsBrokerConnection.__init__).
    _client: NatsClient
    _subscriptions_by_sid: weakref.WeakValueDictionary[int, NatsBrokerSubscription]
    _error_handler: Callable[[Exception], Awaitable[None]] | None
    _closed_cb: Callable[[], Awaitable[None]] | None
    _closing: bool
    _report_tasks: BackgroundTasks
    _state: ConnectionState
    reconnect_buffer_size: int

    def _init_events(self) -> None:
        self.reconnects: int = 0
        self.slow_consumer_events: int = 0
        self.last_error: Exception | None = None
        self.bad_messages: int = 0
        self._disconnected_at: float | None = None
        self.failed_reconnect_attempts: int = 0
        self.last_outage_seconds: float | None = None
        self._overflows_this_outage: int = 0
        self._auth_rejected_this_outage: bool = False
        self._slow_consumer_last: dict[int, float] = {}
        self._reconnect_choice: ReconnectServerChoice = ReconnectServerChoice(DEFAULT_RECONNECT_TIME_WAIT)
        self.refusals: RefusalWatch = RefusalWatch()
        self._refusals_at_disconnect: int = 0

    if TYPE_CHECKING:  # what the connection provides (BrokerConnection and NatsBrokerConnection)

        def _set_state(self, state: ConnectionState) -> None: ...

        @property
        def connected_url(self) -> str | None:
            """The URL of the server this connection is attached to now."""

        def _current_server_url(self) -> str | None: ...

    async def _on_error(self, err: Exception) -> None:
        self.last_error = err
        refusal = parse_refusal(err)
        if refusal is not None:
            self._on_refusal(refusal)
        if isinstance(err, nats.errors.SlowConsumerError):
            sub = self._subscriptions_by_sid.get(err.sid)
            if isinstance(sub, RawSubscription) and sub.on_dropped is not None:
                sub.on_dropped(err.subject)  # observers sharing the subscription count their losses
        if self._error_handler is not None:
            await self._error_handler(err)
            return
        if isinstance(err, nats.errors.SlowConsumerError):
            self._on_slow_consumer(err)
            return
        if self._state == ConnectionState.RECONNECTING:
            # Every failed attempt lands here; the outage was already logged once, and the end will be.
            self.failed_reconnect_attempts += 1
            if is_authorization_error(err) and not self._auth_rejected_this_outage:
                # Unlike a server that is down, this will not go away by waiting: say so once.
                self._auth_rejected_this_outage = True
                _logger.error(
                    "the NATS server at %s rejected the credentials while reconnecting (%s: %s); still "
                    "retrying. Check FASTIOT_NATS_USER / FASTIOT_NATS_PASSWORD, FASTIOT_NATS_TOKEN or "
                    "FASTIOT_NATS_CREDS",
                    self._current_server_url(),
                    type(err).__name__,
                    redact_url(str(err)),
                )
            else:
                _logger.debug("reconnect attempt failed: %s: %s", type(err).__name__, redact_url(str(err)))
            return
        _logger.warning("NATS: %s: %s", type(err).__name__, redact_url(str(err)))

    def _on_refusal(self, refusal: Refusal) -> None:
        # In nats-py's read loop, in order with PONGs: a subscribe or flush waiting for its PONG sees it.
        self.refusals.inbox_prefix = _nats_compat.inbox_prefix(self._client)
        self.refusals.record(refusal)
        if refusal.operation != "subscribe":
            return
        for sub in list(self._subscriptions_by_sid.values()):
            name = sub.subject_name
            if name is not None and same_subject(refusal.subject, name):
                sub.refused(PermissionDeniedError(name, "subscribe", queue=refusal.queue))

    def _on_bad_message(self, err: BadMessageError) -> None:
        # Called from nats-py's read loop (TolerantClient), which goes on with the next message.
        self.bad_messages += 1
        self.last_error = err
        sub = self._subscriptions_by_sid.get(err.sid)
        if sub is not None:  # reported like a handler error of the subscription it was for
            self._report_tasks.spawn(sub.report_error(err), what="reporting a malformed message")
        elif self.bad_messages <= 10 or self.bad_messages % 1000 == 0:  # e.g. a JetStream subscription
            _logger.error("%s (%d on this connection)", err, self.bad_messages)

    def _on_slow_consumer(self, err: nats.errors.SlowConsumerError) -> None:
        self.slow_consumer_events += 1
        sub = self._subscriptions_by_sid.get(err.sid)
        if sub is not None:
            sub.slow_consumer_events += 1
        # A firehose reports every dropped message; one line per burst (per subscription) is enough.
        now = time.monotonic()
        last = self._slow_consumer_last.get(err.sid)
        self._slow_consumer_last[err.sid] = now
        if last is None or now - last >= DEFAULT_SLOW_CONSUMER_BURST_GAP:
            dropped = sub.slow_consumer_events if sub is not None else None
            _logger.warning(
                "slow consumer on subject %s: its handler is slower than the message rate, the client's "
                "backlog for it is full (%s messages) and new messages are dropped%s (%d on this connection "
                "so far); count them with slow_consumer_events, make the handler faster, or raise "
                "pending_msgs_limit",
                err.subject,
                sub.pending_msgs_limit if sub is not None else "its limit of",
                f" ({dropped} on this subscription so far)" if dropped is not None else "",
                self.slow_consumer_events,
            )

    async def _on_disconnected(self) -> None:
        if self._state == ConnectionState.CONNECTED and not self._client.is_closed and not self._closing:
            self._disconnected_at = time.monotonic()
            self.failed_reconnect_attempts = 0
            self._overflows_this_outage = 0
            self._auth_rejected_this_outage = False
            lost = _nats_compat.current_server_uri(self._client)
            self._reconnect_choice.start_outage(None if lost is None else lost.netloc)
            _logger.warning(
                "lost the connection to NATS; reconnecting (publishes are buffered up to %d bytes meanwhile)",
                self.reconnect_buffer_size,
            )
            self._refusals_at_disconnect = self.refusals.mark()
            self._set_state(ConnectionState.RECONNECTING)

    def _choose_reconnect_server(self, servers: list[Any], server_info: dict[str, Any]) -> tuple[Any, float]:
        # nats-py's reconnect_to_server_handler; see ReconnectServerChoice for why not nats-py's own.
        return self._reconnect_choice.choose(servers)

    async def _on_reconnected(self) -> None:
        self.reconnects += 1
        # nats-py subscribed the reply inbox again: a refusal from before the outage no longer stands.
        self.refusals.forget_inbox_refusal(self._refusals_at_disconnect)
        outage = time.monotonic() - self._disconnected_at if self._disconnected_at is not None else 0.0
        _logger.info(
            "reconnected to NATS at %s after %.1f s (%d failed attempts)%s",
            self.connected_url,
            outage,
            self.failed_reconnect_attempts,
            f"; {self._overflows_this_outage} publishes were refused with PublishBufferFullError"
            if self._overflows_this_outage
            else "",
        )
        self._disconnected_at = None
        self.last_outage_seconds = outage
        self._set_state(ConnectionState.CONNECTED)

    async def _on_closed(self) -> None:
        self._set_state(ConnectionState.CLOSED)
        if self._closed_cb is not None:
            await self._closed_cb()
