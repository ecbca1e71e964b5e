"""The connection to the NATS broker: publish, subscribe, request and reply with FastIoT data models.

Example:
    >>> import asyncio
    >>> from fastiot.core.broker_connection import NatsBrokerConnection
    >>> from fastiot.msg.thing import Thing
    >>> async def main():
    ...     broker = await NatsBrokerConnection.connect()
    ...     async def on_thing(subject_name: str, thing: Thing) -> None:
    ...         print(subject_name, thing.value)
    ...     await broker.subscribe(Thing.get_subject(">"), on_thing)
    ...     await broker.publish(Thing.get_subject("press_1.temp"),
    ...                          Thing(machine="press_1", name="temp", value=21.5))
    ...     await broker.close()
    >>> asyncio.run(main())  # doctest: +SKIP

This module holds :class:`NatsBrokerConnection`. The API every connection offers (with its state and
the dummy) lives in :mod:`fastiot.core.broker_api`, the subscriptions in :mod:`fastiot.core.subscription`,
connect options and failure classification in :mod:`fastiot.core._connect`, the sync bridge in
:mod:`fastiot.core._sync_bridge`, and every private nats-py access in :mod:`fastiot.core._nats_compat`;
this module re-exports the names the seed documents here.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
from nats.aio.client import DEFAULT_PENDING_SIZE as NATS_DEFAULT_PENDING_SIZE
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg as NatsMsg

from fastiot._callbacks import is_coroutine_callable
from fastiot._tasks import BackgroundTasks
from fastiot.core import _nats_compat
from fastiot.core._connect import (
    classify_connect_failure,
    connect_failure_error,
    is_authorization_error,
    nats_options_from_env,
)
from fastiot.core.broker_api import (
    DEFAULT_FLUSH_TIMEOUT,
    DEFAULT_PENDING_BYTES_LIMIT,
    DEFAULT_PENDING_MSGS_LIMIT,
    BrokerConnection,
    BrokerConnectionDummy,
    ConnectionState,
    StateCallback,
)
from fastiot.core.connection_events import (
    DEFAULT_RECONNECT_TIME_WAIT,
    DEFAULT_SLOW_CONSUMER_BURST_GAP,
    ConnectionEvents,
)
from fastiot.core.data_models import Msg, MsgPub, MsgReq, MsgResp, ReplySubject, Subject
from fastiot.core.logger import setup_logger
from fastiot.core.serialization import serialize_from_bin, serialize_to_bin
from fastiot.core.subject_helper import check_subject
from fastiot.core.subscription import (
    DEFAULT_MAX_PENDING_ERRORS,
    ERROR_HEADER,
    NatsBrokerSubscription,
    NatsBrokerSubscriptionReplySubject,
    NatsBrokerSubscriptionSubject,
    RawCallback,
    RawSubscription,
    Subscription,
    SubscriptionCallback,
    SubscriptionDummy,
    SubscriptionErrorCallback,
    SubscriptionReplyCallback,
    callback_arity,
)
from fastiot.env import env_broker, redact_url
from fastiot.exceptions import (
    BrokerUnavailableError,
    PayloadTooLargeError,
    PublishBufferFullError,
    ReplyHandlerError,
    RequestTimeoutError,
    SubjectTooLongError,
)

# Msg, MsgPub, MsgReq and MsgResp are data_models' aliases: FastIoT's broker_connection has them too.
__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_FLUSH_TIMEOUT",
    "DEFAULT_MAX_PENDING_ERRORS",
    "DEFAULT_PENDING_BYTES_LIMIT",
    "DEFAULT_PENDING_MSGS_LIMIT",
    "DEFAULT_RECONNECT_BUFFER_SIZE",
    "DEFAULT_RECONNECT_TIME_WAIT",
    "DEFAULT_SLOW_CONSUMER_BURST_GAP",
    "ERROR_HEADER",
    "MAX_SUBJECT_BYTES",
    "BrokerConnection",
    "BrokerConnectionDummy",
    "ConnectionState",
    "Msg",
    "MsgPub",
    "MsgReq",
    "MsgResp",
    "NatsBrokerConnection",
    "NatsBrokerSubscription",
    "NatsBrokerSubscriptionReplySubject",
    "NatsBrokerSubscriptionSubject",
    "RawSubscription",
    "StateCallback",
    "Subscription",
    "SubscriptionCallback",
    "SubscriptionDummy",
    "SubscriptionErrorCallback",
    "SubscriptionReplyCallback",
    "callback_arity",
    "check_subject_length",
]


DEFAULT_CONNECT_TIMEOUT = 5.0
# How long closing a client whose first connect failed may take before it is given up.
DEFAULT_ABANDON_TIMEOUT = 1.0
# While reconnecting, publishes are buffered up to this many bytes (nats-py's ``pending_size``) and sent
# once connected again; beyond it publish() raises PublishBufferFullError.
DEFAULT_RECONNECT_BUFFER_SIZE = NATS_DEFAULT_PENDING_SIZE
# nats-server closes a connection whose protocol line exceeds max_control_line (4096 bytes by default),
# and nats-py then closes the connection for good. A subject plus the rest of a PUB/HPUB line (command,
# reply inbox, sizes) must fit, so longer subjects are refused before they are sent.
MAX_SUBJECT_BYTES = 3840

_logger = setup_logger("broker")


def check_subject_length(subject: str) -> None:
    """Refuse a subject that would make nats-server close the connection.

    Raises:
        SubjectTooLongError: If ``subject`` is longer than :data:`MAX_SUBJECT_BYTES` in UTF-8.
    """
    if len(subject) * 4 <= MAX_SUBJECT_BYTES:  # a code point takes at most 4 bytes: no need to encode
        return
    size = len(subject.encode("utf-8", "surrogatepass"))
    if size > MAX_SUBJECT_BYTES:
        raise SubjectTooLongError(
            f"the subject {subject[:40]!r}... is {size} bytes long; NATS subjects must stay below "
            f"{MAX_SUBJECT_BYTES} bytes (nats-server closes a connection whose protocol line exceeds 4 KiB, "
            f"ending every subscription on it). Use shorter tokens, or put the detail into the payload"
        )


@functools.lru_cache(maxsize=4096)
def _checked(subject: str, wildcards: bool) -> None:
    """The subject check of every subscribe, publish and request, once per subject (they repeat)."""
    check_subject(subject, wildcards=wildcards)
    check_subject_length(subject)


# Subjects a publish has checked already: a producer's hot path pays a set lookup, not a cached call.
# Bounded: emptied when full (a kernel publishing on ever new subjects checks them again).
_PUBLISHABLE: set[str] = set()
_PUBLISHABLE_MAX = 4096


def _check_publish_subject(subject: str) -> None:
    _checked(subject, False)
    if len(_PUBLISHABLE) >= _PUBLISHABLE_MAX:
        _PUBLISHABLE.clear()
    _PUBLISHABLE.add(subject)


class _InitialConnectAbort(Exception):
    def __init__(self, err: Exception) -> None:
        self.err = err
        super().__init__(str(err))


class NatsBrokerConnection(ConnectionEvents, BrokerConnection):
    """A :class:`BrokerConnection` over nats-py. Create it with :meth:`connect`.

    Settings come from ``FASTIOT_NATS_*`` (servers, credentials, TLS). After the first connect it
    reconnects forever with backoff; :attr:`state` and :meth:`on_state_change` tell about it.

    Args:
        client: The connected nats-py client (:meth:`connect` makes it).
        subscription_error_cb: Called with each error of a subscription's handler (see
            :class:`~fastiot.core.subscription.NatsBrokerSubscription`).
    """

    @classmethod
    async def connect(
        cls,
        closed_cb: Callable[[], Awaitable[None]] | None = None,
        subscription_error_cb: SubscriptionErrorCallback | None = None,
        *,
        servers: list[str] | str | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        name: str | None = None,
        **nats_options: Any,
    ) -> NatsBrokerConnection:
        """Connect to NATS and return the connection.

        Args:
            closed_cb: Awaited when the connection is closed for good.
            subscription_error_cb: Awaited with every error of every subscription's handler: the
                handler's own exception (or the decode / validation error) with ``subject`` and
                ``payload`` attached, or a ``BadMessageError`` for a malformed message from the wire.
            servers: URLs; default from ``FASTIOT_NATS_SERVERS`` or ``FASTIOT_NATS_HOST``/``_PORT``.
            connect_timeout: Seconds the first connect may take in all.
            name: The client name shown in NATS monitoring.
            nats_options: Passed on to ``nats.connect`` (e.g. ``reconnect_time_wait``, or ``pending_size``,
                the bytes of publishes buffered while reconnecting).

        Raises:
            BrokerAuthenticationError: The server rejected the credentials.
            BrokerUnavailableError: No server accepted a connection within ``connect_timeout``, TLS failed,
                or TLS is configured but the server does not offer it.
            ValueError: A ``FASTIOT_NATS_TLS_*`` setting names a missing or unreadable file.
        """
        if closed_cb is not None and not is_coroutine_callable(closed_cb):
            raise TypeError("closed_cb must be an async function without arguments")
        if isinstance(servers, str):
            servers = [s.strip() for s in servers.split(",") if s.strip()]
        server_list = servers or env_broker.servers
        client = _nats_compat.TolerantClient()
        client.js_domain = env_broker.js_domain
        conn = cls(client=client, subscription_error_cb=subscription_error_cb)
        conn._closed_cb = closed_cb
        # Defaults first, so that nats_options (e.g. reconnect_time_wait) may override any of them.
        options: dict[str, Any] = {
            "connect_timeout": max(1, int(min(connect_timeout, 2.0))),
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": DEFAULT_RECONNECT_TIME_WAIT,
            "reconnect_to_server_handler": conn._choose_reconnect_server,
        }
        options.update(nats_options_from_env())
        options.update(nats_options)
        conn._reconnect_choice.reconnect_time_wait = float(options["reconnect_time_wait"])
        failures: list[Exception] = []

        async def initial_error_cb(err: Exception) -> None:
            failures.append(err)
            if is_authorization_error(err):
                raise _InitialConnectAbort(err)
            if len(failures) >= len(server_list):
                raise _InitialConnectAbort(err)

        conn._error_handler = initial_error_cb
        urls = redact_url(", ".join(server_list))  # never show credentials given in a URL
        try:
            await asyncio.wait_for(
                client.connect(
                    servers=server_list,
                    name=name,
                    error_cb=conn._on_error,
                    disconnected_cb=conn._on_disconnected,
                    reconnected_cb=conn._on_reconnected,
                    closed_cb=conn._on_closed,
                    **options,
                ),
                connect_timeout,
            )
        except (_InitialConnectAbort, asyncio.TimeoutError, OSError, nats.errors.Error) as e:
            err = e.err if isinstance(e, _InitialConnectAbort) else (failures[-1] if failures else e)
            server_info = _nats_compat.server_info(client)
            await conn._abandon()
            tls_configured = "tls" in options
            failure = classify_connect_failure(
                err,
                server_info,
                tls_configured=tls_configured,
                client_cert_configured=env_broker.tls_cert is not None,
            )
            raise connect_failure_error(failure, err, urls, tls_configured=tls_configured) from None
        if "tls" in options and not _nats_compat.uses_tls(client):
            # nats-py upgrades to TLS only when the server asks for it; never fall back to plain text.
            await conn._abandon()
            raise BrokerUnavailableError(
                f"FASTIOT_NATS_TLS_* is set, but the NATS server at {conn.connected_url or urls} does not "
                f"offer TLS, so the connection would not be encrypted; enable TLS on the server or unset "
                f"FASTIOT_NATS_TLS_CA / FASTIOT_NATS_TLS_CERT / FASTIOT_NATS_TLS_KEY"
            )
        conn._error_handler = None
        conn.reconnect_buffer_size = int(options.get("pending_size", DEFAULT_RECONNECT_BUFFER_SIZE))
        conn._set_state(ConnectionState.CONNECTED)
        return conn

    # Kept for code that called the former private method; the options are built in fastiot.core._connect.
    _nats_options_from_env = staticmethod(nats_options_from_env)

    def __init__(
        self, client: NatsClient, subscription_error_cb: SubscriptionErrorCallback | None = None
    ) -> None:
        super().__init__()
        if subscription_error_cb is not None and not is_coroutine_callable(subscription_error_cb):
            raise TypeError("subscription_error_cb must be an async function taking the exception")
        self._client: NatsClient = client
        if isinstance(client, _nats_compat.TolerantClient):
            client.on_bad_message = self._on_bad_message
        self._subscription_error_cb: SubscriptionErrorCallback | None = subscription_error_cb
        self._closed_cb: Callable[[], Awaitable[None]] | None = None
        self._error_handler: Callable[[Exception], Awaitable[None]] | None = None
        # Weak: an entry goes with its subscription, so subscribing and unsubscribing for a kernel's
        # lifetime (hot reloads, widgets opened and closed) does not grow this.
        self._subscriptions_by_sid: weakref.WeakValueDictionary[int, NatsBrokerSubscription] = (
            weakref.WeakValueDictionary()
        )
        self.pending_msgs_limit: int = DEFAULT_PENDING_MSGS_LIMIT
        """Backlog limit (messages) of each subscription made from now on; see :meth:`subscribe`."""
        self.pending_bytes_limit: int = DEFAULT_PENDING_BYTES_LIMIT
        """Backlog limit (bytes) of each subscription made from now on."""
        self.reconnect_buffer_size: int = DEFAULT_RECONNECT_BUFFER_SIZE
        """Bytes of publishes buffered while reconnecting (``connect(pending_size=...)``)."""
        self.publish_buffer_overflows: int = 0
        """Publishes refused with PublishBufferFullError because the reconnect buffer was full."""
        # Error reports started from nats-py's read loop, which cannot wait for them; cancelled on close.
        self._report_tasks: BackgroundTasks = BackgroundTasks()
        self._closing: bool = False
        self._init_events()
        if isinstance(client, _nats_compat.TolerantClient):
            # Every request of the client (JetStream's and key-value's too) ends at once when refused.
            client.request_guard = self.refusals.request

    @property
    def client(self) -> NatsClient:
        """The underlying nats-py client, e.g. for JetStream (``connection.client.jetstream()``)."""
        return self._client

    @property
    def connected_url(self) -> str | None:
        """The URL of the server this connection is attached to now."""
        url = self._client.connected_url
        return None if url is None else f"{url.scheme}://{url.hostname}:{url.port}"

    def _current_server_url(self) -> str | None:
        # The server being tried while reconnecting (connected_url is None then).
        uri = _nats_compat.current_server_uri(self._client)
        return None if uri is None else f"{uri.scheme}://{uri.hostname}:{uri.port}"

    async def _abandon(self) -> None:
        self._closed_cb = None
        _nats_compat.abort_sockets(self._client)  # else close() may wait forever after a failed TLS handshake
        try:
            await asyncio.wait_for(self._client.close(), DEFAULT_ABANDON_TIMEOUT)
        except Exception:  # a client that never connected may fail to close; nothing is left to clean
            pass

    async def close(self) -> None:
        """Flush what was published and close the connection.

        Closed while reconnecting, publishes still in the reconnect buffer cannot be sent; they are
        discarded with a warning that says how many bytes.
        """
        if self._client.is_closed:
            return
        self._closing = True
        if self._client.is_connected:
            try:
                await self.flush(2.0, report_refused=False)
            except (nats.errors.Error, asyncio.TimeoutError):
                pass
        elif self._client.pending_data_size > 0:
            # nats-py would write them into the dead socket and fail half-way through closing.
            _logger.warning(
                "closing the NATS connection while it is down: %d bytes of buffered publishes are discarded",
                _nats_compat.discard_pending_publishes(self._client),
            )
        await self._stop_reconnecting()
        # An error callback that ignores cancellation must not hold up closing for long.
        await self._report_tasks.cancel(timeout=DEFAULT_ABANDON_TIMEOUT)
        try:
            await self._client.close()
        except OSError as e:  # the old socket's error surfacing late; the client is closed regardless
            _logger.debug("closing the NATS connection: %s", e)
        self._set_state(ConnectionState.CLOSED)

    async def _stop_reconnecting(self) -> None:
        # A cancel that arrives as a connect attempt fails is lost inside asyncio.wait_for (Python < 3.12),
        # and nats-py's close() would leave its reconnect loop running for good: cancel until it ends.
        task = _nats_compat.reconnection_task(self._client)
        for _ in range(50):
            if task is None or task.done():
                return
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)
        _logger.warning("the NATS reconnect loop did not stop; it may keep trying in the background")

    @property
    def is_connected(self) -> bool:
        """Whether the client is connected to a server now."""
        return self._client.is_connected

    async def flush(self, timeout: float = DEFAULT_FLUSH_TIMEOUT, *, report_refused: bool = True) -> None:
        """Wait until the server has received everything sent on this connection so far.

        A publish the server refused (no permission for its subject) is reported here: the server says
        so before it answers the flush, and this raises :class:`PermissionDeniedError` naming the first
        subject refused since the last flush (and how many more).

        Use this, not ``connection.client.flush()``: nats-py (2.16) writes its PING straight to the
        socket, ahead of publishes and subscriptions still in its write buffer, so its flush can return
        before the server has them. Here the buffer is written out first.

        Args:
            timeout: Seconds to wait for the server's answer.
            report_refused: ``False`` waits without reporting (or forgetting) refused publishes, for
                code that only needs its own subscriptions to be in place.

        Example:
            >>> await connection.publish_raw("cmd.stop", b"")  # doctest: +SKIP
            >>> await connection.flush()  # doctest: +SKIP
            PermissionDeniedError: the NATS server refused to let this user publish to 'cmd.stop': ...

        Raises:
            PermissionDeniedError: The server refused a publish made since the last flush.
            nats.errors.TimeoutError: The server did not answer within ``timeout`` seconds.
            nats.errors.ConnectionClosedError: The connection is closed.
        """
        client = self._client
        try:
            await asyncio.wait_for(_nats_compat.write_pending(client), timeout)
        except asyncio.TimeoutError:
            raise nats.errors.FlushTimeoutError() from None
        await client.flush(timeout)  # type: ignore[arg-type]  # annotated int, any number of seconds works
        if report_refused:
            refused = self.refusals.take_publish_refusals()
            if refused is not None:
                raise refused

    async def _confirm_subscription(self, result: NatsBrokerSubscription, name: str, mark: int) -> None:
        # The server answers a SUB it refuses with -ERR before the PONG of a later PING: one round trip
        # tells. Not connected (reconnecting), the refusal comes later and reaches the subscription.
        if self._client.is_connected:
            try:
                await self.flush(DEFAULT_FLUSH_TIMEOUT, report_refused=False)
            except (nats.errors.Error, asyncio.TimeoutError):
                pass  # lost meanwhile: a refusal after the reconnect still reaches the subscription
            refused = self.refusals.subscription_refused(mark, name)
            if refused is not None:
                await result.unsubscribe()
                raise refused
        result.confirmed = True

    async def _subscribe_nats(
        self,
        result: NatsBrokerSubscription,
        name: str,
        pending_msgs_limit: int | None,
        pending_bytes_limit: int | None,
    ) -> NatsBrokerSubscription:
        _checked(name, True)
        if pending_msgs_limit is None:
            pending_msgs_limit = self.pending_msgs_limit
        if pending_bytes_limit is None:
            pending_bytes_limit = self.pending_bytes_limit
        mark = self.refusals.mark()
        subscription = await self._client.subscribe(
            subject=name,
            cb=result.received_nats_msg_cb,
            pending_msgs_limit=pending_msgs_limit,
            pending_bytes_limit=pending_bytes_limit,
        )
        result.set_subscription(subscription)
        self._subscriptions_by_sid[_nats_compat.subscription_id(subscription)] = result
        await self._confirm_subscription(result, name, mark)
        return result

    async def subscribe(
        self,
        subject: Subject,
        cb: SubscriptionCallback,
        *,
        pending_msgs_limit: int | None = None,
        pending_bytes_limit: int | None = None,
    ) -> Subscription:
        """Subscribe to a subject; see :meth:`BrokerConnection.subscribe`.

        Args:
            subject: The subject to subscribe to.
            cb: ``async def cb(msg)`` or ``async def cb(subject_name, msg)``.
            pending_msgs_limit: The most messages waiting for ``cb`` (the backlog of a handler slower
                than the message rate); beyond it new messages are dropped and counted as slow-consumer
                events. Default :attr:`pending_msgs_limit` of the connection.
            pending_bytes_limit: The same in payload bytes; default :attr:`pending_bytes_limit`.

        Raises:
            TypeError: If ``cb`` is not async or has another signature.
            InvalidSubjectError: If the subject is not a NATS subject (:class:`SubjectTooLongError`: too
                long for NATS).
        """
        result = NatsBrokerSubscriptionSubject(
            subject=subject, cb=cb, subscription_error_cb=self._subscription_error_cb
        )
        return await self._subscribe_nats(result, subject.name, pending_msgs_limit, pending_bytes_limit)

    async def subscribe_reply_cb(
        self,
        subject: ReplySubject,
        cb: SubscriptionReplyCallback,
        *,
        pending_msgs_limit: int | None = None,
        pending_bytes_limit: int | None = None,
    ) -> Subscription:
        """Answer requests on ``subject``; the backlog limits are as in :meth:`subscribe`."""
        if not isinstance(subject, ReplySubject):
            raise TypeError("subscribe_reply_cb needs a ReplySubject, e.g. MyRequest.get_reply_subject()")
        result = NatsBrokerSubscriptionReplySubject(
            subject=subject,
            cb=cb,
            send_reply_fn=self._send,
            publish_reply_fn=self._publish_nats,
            subscription_error_cb=self._subscription_error_cb,
        )
        return await self._subscribe_nats(result, subject.name, pending_msgs_limit, pending_bytes_limit)

    async def subscribe_raw(
        self,
        pattern: str,
        cb: RawCallback,
        *,
        pending_msgs_limit: int = DEFAULT_PENDING_MSGS_LIMIT,
        pending_bytes_limit: int = DEFAULT_PENDING_BYTES_LIMIT,
    ) -> RawSubscription:
        """Subscribe to a NATS pattern and get the undecoded nats-py messages (used by captures).

        Args:
            pattern: A NATS subject or pattern (``v1.thing.>``).
            cb: ``async def cb(msg: nats.aio.msg.Msg)``; its errors are reported like a handler's.
            pending_msgs_limit: The backlog limit in messages, as in :meth:`subscribe`.
            pending_bytes_limit: The backlog limit in bytes.

        Raises:
            TypeError: If ``cb`` is not async.
            InvalidSubjectError: If the pattern is not a NATS pattern (:class:`SubjectTooLongError`: too
                long for NATS).
        """
        result = RawSubscription(cb, subscription_error_cb=self._subscription_error_cb)
        await self._subscribe_nats(result, pattern, pending_msgs_limit, pending_bytes_limit)
        return result

    async def publish_raw(
        self,
        subject: str,
        payload: bytes,
        headers: dict[str, str] | None = None,
        *,
        confirm: bool = False,
        reply: str = "",
    ) -> None:
        """Publish bytes as they are (no serialization).

        Args:
            subject: The subject.
            payload: The bytes.
            headers: NATS headers.
            confirm: Wait until the server has the message (one round trip), and raise if it refused
                it; what a form that says "sent" needs, too slow for a producer's hot path.
            reply: The subject answers go to (a request that gathers several answers there).

        Raises:
            PermissionDeniedError: With ``confirm``, the server refused this publish.
            PublishBufferFullError, PayloadTooLargeError, SubjectTooLongError: As :meth:`publish`.
        """
        if not confirm:
            await self._publish_nats(subject, payload, reply=reply, headers=headers)
            return
        mark = self.refusals.mark()
        await self._publish_nats(subject, payload, reply=reply, headers=headers)
        await self.flush(report_refused=False)
        refused = self.refusals.publish_refused(mark, subject)
        if refused is not None:
            raise refused

    def _publish_refused(self, subject: str, size: int) -> PublishBufferFullError:
        self.publish_buffer_overflows += 1
        self._overflows_this_outage += 1
        if self._overflows_this_outage == 1:
            _logger.warning(
                "the reconnect buffer (%d bytes) is full: publishes are refused with PublishBufferFullError "
                "until the connection to NATS is back",
                self.reconnect_buffer_size,
            )
        return PublishBufferFullError(subject, size, self.reconnect_buffer_size)

    async def _publish_nats(
        self, subject: str, payload: bytes, reply: str = "", headers: dict[str, str] | None = None
    ) -> None:
        # nats-py's own errors here say neither which message nor what to do; ours do, and are counted.
        if subject not in _PUBLISHABLE:
            _check_publish_subject(subject)
        try:
            await self._client.publish(subject, payload, reply=reply, headers=headers)
        except nats.errors.OutboundBufferLimitError:
            raise self._publish_refused(subject, len(payload)) from None
        except nats.errors.MaxPayloadError:
            raise PayloadTooLargeError(subject, len(payload), self._client.max_payload) from None

    async def publish(self, subject: Subject, msg: Any) -> None:
        """Publish a message on a subject.

        While the connection is reconnecting, the message is buffered (up to :attr:`reconnect_buffer_size`
        bytes in all) and sent once it is back.

        Raises:
            TypeError: If ``msg`` is not of the subject's model.
            PublishBufferFullError: The connection is down and the reconnect buffer is full; not sent.
            PayloadTooLargeError: The message is larger than the server's max_payload; not sent.
            InvalidSubjectError: The subject is not a NATS subject (:class:`SubjectTooLongError`: too long
                for NATS); not sent.
        """
        # A producer's hot path: one coroutine less than going through _send().
        await self._publish_nats(subject.name, serialize_to_bin(subject.msg_cls, msg))

    async def _send(
        self, subject: Subject, msg: Any, reply: Subject | None = None, headers: dict[str, str] | None = None
    ) -> None:
        payload = serialize_to_bin(subject.msg_cls, msg)
        await self._publish_nats(
            subject.name, payload, reply="" if reply is None else reply.name, headers=headers
        )

    async def _request(self, subject: ReplySubject, msg: Any, timeout: float) -> Any:
        payload = serialize_to_bin(subject.msg_cls, msg)
        response = await self.request_raw(subject.name, payload, timeout=timeout)
        return serialize_from_bin(subject.reply_cls, response.data)

    async def request_raw(
        self,
        subject: str,
        payload: bytes,
        *,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> NatsMsg:
        """Send a request of bytes as they are (any format, with headers); returns nats-py's reply ``Msg``.

        ``timeout`` and the errors are those of :meth:`request` (:class:`RequestTimeoutError`,
        ``NoRespondersError``, :class:`ReplyHandlerError`) and of :meth:`publish`.

        Example:
            >>> reply = await connection.request_raw("v1.ask", b'{"n": 2}', timeout=2)  # doctest: +SKIP
            >>> decode(reply.data, headers=reply.headers).value  # doctest: +SKIP
        """
        timeout = env_broker.default_timeout if timeout is None else timeout
        _checked(subject, False)
        try:
            response = await self._client.request(subject, payload, timeout=timeout, headers=headers)
        except nats.errors.TimeoutError:
            raise RequestTimeoutError(subject, timeout) from None
        except nats.errors.OutboundBufferLimitError:
            raise self._publish_refused(subject, len(payload)) from None
        except nats.errors.MaxPayloadError:
            raise PayloadTooLargeError(subject, len(payload), self._client.max_payload) from None
        if response.headers and ERROR_HEADER in response.headers:
            raise ReplyHandlerError(subject, response.headers[ERROR_HEADER])
        return response
