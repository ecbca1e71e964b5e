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
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import inspect
import random
import ssl
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import nats
import nats.errors
import pydantic
from nats.aio.client import DEFAULT_PENDING_SIZE as NATS_DEFAULT_PENDING_SIZE
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg as NatsMsg
from nats.aio.subscription import Subscription as NatsSubscription

from fastiot.core.data_models import ReplySubject, Subject
from fastiot.core.logger import setup_logger
from fastiot.core.serialization import decoder_for, serialize_from_bin, serialize_to_bin
from fastiot.core.subject_helper import is_fastiot1_inbox
from fastiot.env import env_broker
from fastiot.exceptions import (
    BrokerAuthenticationError,
    BrokerUnavailableError,
    DeserializationError,
    MessageHandlingError,
    PayloadTooLargeError,
    PublishBufferFullError,
    ReplyHandlerError,
    SubjectTooLongError,
    SyncCallOnLoopThreadError,
)

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
    "NatsBrokerConnection",
    "NatsBrokerSubscription",
    "NatsBrokerSubscriptionReplySubject",
    "NatsBrokerSubscriptionSubject",
    "StateCallback",
    "Subscription",
    "SubscriptionCallback",
    "SubscriptionDummy",
    "SubscriptionErrorCallback",
    "SubscriptionReplyCallback",
    "callback_arity",
    "check_subject_length",
]

# A subscription callback is ``async def cb(msg)`` or ``async def cb(subject_name, msg)``.
SubscriptionCallback = Callable[..., Coroutine[Any, Any, Any]]  # returning anything but None is reported
# A reply callback has the same arguments and returns the reply message.
SubscriptionReplyCallback = Callable[..., Coroutine[Any, Any, Any]]
# Receives every error raised while decoding or handling a message (a MessageHandlingError).
SubscriptionErrorCallback = Callable[[Exception], Awaitable[None]]
# Receives the new ConnectionState string.
StateCallback = Callable[[str], None]
ConnectionState = str  # "connected", "reconnecting", "disconnected" or "closed"

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_FLUSH_TIMEOUT = 10.0
# How long closing a client whose first connect failed may take before it is given up.
DEFAULT_ABANDON_TIMEOUT = 1.0
# Seconds between two reconnect attempts to the same server (nats-py adds jitter); others are tried at once.
DEFAULT_RECONNECT_TIME_WAIT = 1.0
DEFAULT_MAX_PENDING_ERRORS = 1000
# A subscription whose handler is slower than the message rate buffers at most this much in the client;
# beyond it nats-py drops messages and reports a slow consumer.
DEFAULT_PENDING_MSGS_LIMIT = 65_536
DEFAULT_PENDING_BYTES_LIMIT = 64 * 1024 * 1024
# While reconnecting, publishes are buffered up to this many bytes (nats-py's ``pending_size``) and sent
# once connected again; beyond it publish() raises PublishBufferFullError.
DEFAULT_RECONNECT_BUFFER_SIZE = NATS_DEFAULT_PENDING_SIZE
# Slow-consumer events on one subscription closer together than this (seconds) are one burst, logged once.
DEFAULT_SLOW_CONSUMER_BURST_GAP = 1.0
# nats-server closes a connection whose protocol line exceeds max_control_line (4096 bytes by default),
# and nats-py then closes the connection for good. A subject plus the rest of a PUB/HPUB line (command,
# reply inbox, sizes) must fit, so longer subjects are refused before they are sent.
MAX_SUBJECT_BYTES = 3840
# A replier that fails answers with an empty payload and this header, so the requester fails at once.
ERROR_HEADER = "Fastiot-Error"

_logger = setup_logger("broker")


def _is_authorization_error(err: BaseException) -> bool:
    # nats-py raises AuthorizationError at the first connect but a plain Error while reconnecting.
    return isinstance(err, nats.errors.AuthorizationError) or "authorization" in str(err).lower()


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


def _is_coroutine_callable(cb: Any) -> bool:
    if inspect.iscoroutinefunction(cb):
        return True
    call = getattr(cb, "__call__", None)  # noqa: B004 - async callable objects are allowed
    return call is not None and inspect.iscoroutinefunction(call)


def callback_arity(cb: Any, *, what: str = "callback", skip_self: bool = False) -> int:
    """Check a message callback and return how many arguments it takes (1 or 2).

    Raises:
        TypeError: If ``cb`` is not an ``async def`` or does not take ``(msg)`` or ``(subject_name, msg)``.
    """
    name = getattr(cb, "__qualname__", repr(cb))
    if not _is_coroutine_callable(cb):
        raise TypeError(f"{what} {name} must be an async function (async def ...), got {type(cb).__name__}")
    params = list(inspect.signature(cb).parameters.values())
    if skip_self and params and params[0].name in ("self", "cls"):
        params = params[1:]
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 2
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    for n in (2, 1):
        if len(required) <= n <= len(positional):
            return n
    raise TypeError(
        f"{what} {name} must take (msg) or (subject_name, msg), but its signature is {inspect.signature(cb)}"
    )


class Subscription(ABC):
    """A running subscription."""

    @abstractmethod
    async def unsubscribe(self) -> None:
        """Cancels the subscription"""

    def check_pending_error(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Raise the oldest error of a message handler that has not been raised yet, if any."""

    async def raise_pending_error(self, timeout: float | None = None) -> None:
        """Wait for the next error of a message handler and raise it. Useful in tests."""
        await asyncio.sleep(timeout if timeout is not None else 0)


class NatsBrokerSubscription(Subscription):
    """Common part of NATS subscriptions: error bookkeeping and unsubscribe.

    Handler errors never stop a subscription. Each is logged with its subject, handed to
    ``subscription_error_cb`` and kept (the newest ``DEFAULT_MAX_PENDING_ERRORS``) for
    :meth:`check_pending_error`; ``errors_dropped`` counts those that fell out of that buffer.
    """

    def __init__(self, subscription_error_cb: SubscriptionErrorCallback | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if subscription_error_cb is not None and not _is_coroutine_callable(subscription_error_cb):
            raise TypeError("subscription_error_cb must be an async function taking the exception")
        self._subscription: NatsSubscription | None = None
        self._subscription_error_cb: SubscriptionErrorCallback | None = subscription_error_cb
        self._pending_errors: collections.deque[Exception] = collections.deque(
            maxlen=DEFAULT_MAX_PENDING_ERRORS
        )
        self._error_event: asyncio.Event = asyncio.Event()
        self.received: int = 0
        self.errors: int = 0
        self.errors_dropped: int = 0
        self.slow_consumer_events: int = 0

    def _set_subscription(self, subscription: NatsSubscription) -> None:
        self._subscription = subscription

    @property
    def pending_msgs(self) -> int:
        """Messages received by the client and not handled yet (the backlog)."""
        return self._subscription.pending_msgs if self._subscription is not None else 0

    @property
    def pending_bytes(self) -> int:
        """Payload bytes of the backlog."""
        return self._subscription.pending_bytes if self._subscription is not None else 0

    @property
    def pending_msgs_limit(self) -> int:
        """The most messages the backlog may hold; beyond it the client drops and reports a slow consumer."""
        return self._subscription._pending_msgs_limit if self._subscription is not None else 0

    async def unsubscribe(self) -> None:
        if self._subscription is None:
            return
        sub, self._subscription = self._subscription, None
        try:
            await sub.unsubscribe()
        except (nats.errors.ConnectionClosedError, nats.errors.BadSubscriptionError):
            pass  # the connection is gone, and the subscription with it

    async def drain(self, timeout: float = 5.0) -> None:
        """Stop receiving and wait (at most ``timeout`` s) until already received messages are handled."""
        if self._subscription is None:
            return
        sub, self._subscription = self._subscription, None
        try:
            await asyncio.wait_for(sub.drain(), timeout)
        except (nats.errors.ConnectionClosedError, nats.errors.BadSubscriptionError):
            pass
        except asyncio.TimeoutError:
            _logger.warning(
                "subscription %s did not drain within %.1f s; dropping its backlog", sub.subject, timeout
            )
            await sub.unsubscribe()

    async def _report_error(self, err: Exception) -> None:
        self.errors += 1
        if len(self._pending_errors) == self._pending_errors.maxlen:
            self.errors_dropped += 1
        self._pending_errors.append(err)
        self._error_event.set()
        # A stream of bad messages must not flood the log: the first ten, then every thousandth.
        if self.errors <= 10 or self.errors % 1000 == 0:
            cause = err.cause if isinstance(err, MessageHandlingError) else err
            decode_failure = isinstance(cause, (DeserializationError, pydantic.ValidationError))
            _logger.error(
                "%s%s",
                err,
                f" (error {self.errors} on this subscription)" if self.errors > 10 else "",
                exc_info=None if decode_failure else cause,
            )
        if self._subscription_error_cb is not None:
            try:
                await self._subscription_error_cb(err)
            except Exception:
                _logger.exception("subscription_error_cb raised while handling %s", err)

    def check_pending_error(self) -> None:
        if self._pending_errors:
            raise self._pending_errors.popleft()

    async def raise_pending_error(self, timeout: float | None = None) -> None:
        while not self._pending_errors:
            self._error_event.clear()
            await asyncio.wait_for(self._error_event.wait(), timeout)
        raise self._pending_errors.popleft()


class NatsBrokerSubscriptionSubject(NatsBrokerSubscription):
    """A subscription that decodes each message to the subject's model and calls ``cb``."""

    def __init__(self, subject: Subject, cb: SubscriptionCallback, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._num_cb_params: int = callback_arity(cb, what="subscription callback")
        self._subject: Subject = subject
        self._decode: Callable[[bytes], Any] = decoder_for(subject.msg_cls)
        self._cb: SubscriptionCallback = cb

    async def received_nats_msg_cb(self, nats_msg: NatsMsg) -> None:
        self.received += 1
        try:
            msg = self._decode(nats_msg.data)
            # A callback that returns something is reported: it was probably meant to be a @reply.
            result: Any = await (
                self._cb(msg) if self._num_cb_params == 1 else self._cb(nats_msg.subject, msg)
            )
            if result is not None:
                raise TypeError(
                    f"a subscription callback must return None, got {type(result).__name__}; "
                    f"use @reply and request() if the message should be answered"
                )
        except Exception as e:
            await self._report_error(MessageHandlingError(nats_msg.subject, nats_msg.data, e))


class NatsBrokerSubscriptionReplySubject(NatsBrokerSubscription):
    """A subscription that answers each request with what ``cb`` returns.

    If decoding, the handler or the reply's type fails, the requester gets an empty reply with the
    ``Fastiot-Error`` header, so its ``request()`` raises :class:`ReplyHandlerError` at once.
    """

    def __init__(
        self,
        subject: ReplySubject,
        cb: SubscriptionReplyCallback,
        send_reply_fn: Callable[..., Awaitable[None]],
        publish_reply_fn: Callable[[str, bytes], Awaitable[None]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._num_cb_params: int = callback_arity(cb, what="reply callback")
        self._subject: ReplySubject = subject
        self._decode: Callable[[bytes], Any] = decoder_for(subject.msg_cls)
        self._cb: SubscriptionReplyCallback = cb
        self._send_reply_fn: Callable[..., Awaitable[None]] = send_reply_fn
        self._publish_reply_fn: Callable[[str, bytes], Awaitable[None]] | None = publish_reply_fn

    def _check_reply_type(self, reply_msg: Any) -> None:
        reply_cls = self._subject.reply_cls
        if not isinstance(reply_msg, reply_cls):
            raise TypeError(
                f"the reply handler returned {type(reply_msg).__name__}, but subject "
                f"{self._subject.name!r} expects {reply_cls.__name__}"
            )

    async def received_nats_msg_cb(self, nats_msg: NatsMsg) -> None:
        self.received += 1
        try:
            msg = self._decode(nats_msg.data)
            if self._num_cb_params == 1:
                reply_msg = await self._cb(msg)
            else:
                reply_msg = await self._cb(nats_msg.subject, msg)
            self._check_reply_type(reply_msg)
            if nats_msg.reply:
                if self._publish_reply_fn is not None:
                    # The inbox comes from NATS: send to it by name, without building and validating a
                    # Subject per request.
                    payload = serialize_to_bin(self._subject.reply_cls, reply_msg)
                    await self._publish_reply_fn(nats_msg.reply, payload)
                else:
                    await self._send_reply_fn(self._subject.get_reply_inbox(nats_msg.reply), reply_msg)
        except Exception as e:
            # A FastIoT 1.x requester cannot read the error header: it would fail decoding the reply and its
            # main() would shut the service down. It gets no reply, as from a FastIoT replier, and times out.
            if nats_msg.reply and not is_fastiot1_inbox(nats_msg.reply):
                try:
                    await self._send_reply_fn(
                        Subject(name=nats_msg.reply, msg_cls=dict),
                        {},
                        headers={
                            ERROR_HEADER: f"{type(e).__name__}: {e}"[:4000]
                            .replace("\r", " ")
                            .replace("\n", " ")
                        },
                    )
                except Exception:
                    _logger.exception("could not send the error reply for subject %s", nats_msg.subject)
            await self._report_error(MessageHandlingError(nats_msg.subject, nats_msg.data, e))


class BrokerConnection(ABC):
    """What every broker connection offers; see :class:`NatsBrokerConnection`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._loop_mutex: threading.RLock = threading.RLock()
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None

    def _set_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._loop_mutex:
            self._loop = loop

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
            nats.errors.TimeoutError: No reply in time (an ``asyncio.TimeoutError``).
            nats.errors.NoRespondersError: Nobody subscribes to the subject.
            ReplyHandlerError: The replying service failed; the message says how.
        """
        return await self._request(subject, msg, env_broker.default_timeout if timeout is None else timeout)

    @property
    @abstractmethod
    def is_connected(self) -> bool:
        """Return the connection status e.g. for health checks"""

    def _on_loop_thread(self) -> bool:
        loop = self._loop
        if loop is None or not loop.is_running():
            return False
        try:
            return asyncio.get_running_loop() is loop
        except RuntimeError:
            return False

    def run_threadsafe_nowait(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        """Schedule a coroutine on the broker's event loop from any thread and return its future."""
        with self._loop_mutex:
            if self._loop is None:
                coro.close()
                raise RuntimeError(
                    "this connection has no event loop: create it inside a running asyncio loop "
                    "(e.g. with `await NatsBrokerConnection.connect()`)"
                )
            return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def run_threadsafe(self, coro: Coroutine[Any, Any, Any], timeout: float = 0.0) -> Any:
        """Run a coroutine on the broker's event loop and wait for its result; callable from any thread.

        Args:
            coro: e.g. ``broker.publish(...)``.
            timeout: Seconds to wait; 0 waits until it is done.

        On the loop's own thread (e.g. a Jupyter cell) blocking would deadlock, so: if the loop
        allows nesting (``import fastiot.workbench`` enables it in a notebook), the coroutine runs to
        completion right here; otherwise :class:`SyncCallOnLoopThreadError` says to ``await`` instead.

        Raises:
            concurrent.futures.TimeoutError: The result was not ready within ``timeout``.
        """
        if self._on_loop_thread():
            loop = self._loop
            assert loop is not None
            if not getattr(loop, "_nest_patched", False):
                name = getattr(coro, "__qualname__", "the coroutine")
                coro.close()
                raise SyncCallOnLoopThreadError(
                    f"{name} was called synchronously on the event loop's own thread, where waiting would "
                    f"deadlock. Use `await` on the async method instead, or `import fastiot.workbench` "
                    f"first (it enables nested loops, as in a Jupyter kernel)."
                )
            task = loop.create_task(coro)
            try:
                return loop.run_until_complete(asyncio.wait_for(task, timeout) if timeout else task)
            except asyncio.TimeoutError as e:
                raise concurrent.futures.TimeoutError(f"no result within {timeout} s") from e
        future = self.run_threadsafe_nowait(coro=coro)
        return future.result(timeout=timeout if timeout else None)

    def publish_sync(self, subject: Subject, msg: Any, timeout: float = 0.0) -> None:
        """Publish from synchronous code (any thread); see :meth:`run_threadsafe`."""
        return self.run_threadsafe(self.publish(subject=subject, msg=msg), timeout=timeout)

    def publish_sync_nowait(self, subject: Subject, msg: Any) -> concurrent.futures.Future[Any]:
        """Publish from another thread without waiting; returns the future."""
        return self.run_threadsafe_nowait(self.publish(subject=subject, msg=msg))

    def request_sync(self, subject: ReplySubject, msg: Any, timeout: float | None = None) -> Any:
        """Request from synchronous code (any thread); see :meth:`request` and :meth:`run_threadsafe`.

        It times out after ``timeout`` (the request's own timeout); it may wait longer if the loop is
        too busy to schedule the request.
        """
        return self.run_threadsafe(self.request(subject=subject, msg=msg, timeout=timeout))


class _InitialConnectAbort(Exception):
    def __init__(self, err: Exception) -> None:
        self.err = err
        super().__init__(str(err))


class NatsBrokerConnection(BrokerConnection):
    """A :class:`BrokerConnection` over nats-py. Create it with :meth:`connect`.

    Settings come from ``FASTIOT_NATS_*`` (servers, credentials, TLS). After the first connect it
    reconnects forever with backoff; :attr:`state` and :meth:`on_state_change` tell about it.
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
            subscription_error_cb: Awaited with every message handling error of every subscription.
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
        if closed_cb is not None and not _is_coroutine_callable(closed_cb):
            raise TypeError("closed_cb must be an async function without arguments")
        if isinstance(servers, str):
            servers = [s.strip() for s in servers.split(",") if s.strip()]
        server_list = servers or env_broker.servers
        client = NatsClient()
        conn = cls(client=client, subscription_error_cb=subscription_error_cb)
        conn._closed_cb = closed_cb
        # Defaults first, so that nats_options (e.g. reconnect_time_wait) may override any of them.
        options: dict[str, Any] = {
            "connect_timeout": max(1, int(min(connect_timeout, 2.0))),
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": DEFAULT_RECONNECT_TIME_WAIT,
            "reconnect_to_server_handler": conn._choose_reconnect_server,
        }
        options.update(conn._nats_options_from_env())
        options.update(nats_options)
        conn._reconnect_time_wait = float(options["reconnect_time_wait"])
        failures: list[Exception] = []

        async def initial_error_cb(err: Exception) -> None:
            failures.append(err)
            if _is_authorization_error(err):
                raise _InitialConnectAbort(err)
            if len(failures) >= len(server_list):
                raise _InitialConnectAbort(err)

        conn._error_handler = initial_error_cb
        urls = ", ".join(server_list)
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
            server_info: dict[str, Any] = dict(getattr(client, "_server_info", None) or {})
            await conn._abandon()
            text = f"{type(err).__name__}: {err}".strip()
            if isinstance(err, nats.errors.AuthorizationError) or "authorization" in text.lower():
                raise BrokerAuthenticationError(
                    f"the NATS server at {urls} rejected the credentials ({text}); check FASTIOT_NATS_USER / "
                    f"FASTIOT_NATS_PASSWORD, FASTIOT_NATS_TOKEN or FASTIOT_NATS_CREDS"
                ) from None
            if server_info.get("tls_verify") and "tls" in options and env_broker.tls_cert is None:
                raise BrokerUnavailableError(
                    f"the NATS server at {urls} requires a client certificate (mutual TLS) and closed the "
                    f"connection ({text}); set FASTIOT_NATS_TLS_CERT and FASTIOT_NATS_TLS_KEY"
                ) from None
            if (
                isinstance(err, ssl.SSLError)
                or "ssl" in text.lower()
                or "tls" in text.lower()
                or server_info.get("tls_required")
            ):
                hint = "" if "tls" in options else " (the server requires TLS; no FASTIOT_NATS_TLS_* is set)"
                raise BrokerUnavailableError(
                    f"TLS with the NATS server at {urls} failed ({text}){hint}; check FASTIOT_NATS_TLS_CA "
                    f"(the CA that signed the server's certificate), FASTIOT_NATS_TLS_CERT and "
                    f"FASTIOT_NATS_TLS_KEY"
                ) from None
            raise BrokerUnavailableError(
                f"no NATS server accepted a connection at {urls} ({text}); "
                f"start one or set FASTIOT_NATS_SERVERS / FASTIOT_NATS_HOST / FASTIOT_NATS_PORT"
            ) from None
        if "tls" in options and not conn._uses_tls():
            # nats-py upgrades to TLS only when the server asks for it; never fall back to plain text.
            await conn._abandon()
            raise BrokerUnavailableError(
                f"FASTIOT_NATS_TLS_* is set, but the NATS server at {conn.connected_url or urls} does not "
                f"offer TLS, so the connection would not be encrypted; enable TLS on the server or unset "
                f"FASTIOT_NATS_TLS_CA / FASTIOT_NATS_TLS_CERT / FASTIOT_NATS_TLS_KEY"
            )
        conn._error_handler = None
        conn.reconnect_buffer_size = int(options.get("pending_size", DEFAULT_RECONNECT_BUFFER_SIZE))
        conn._set_state("connected")
        return conn

    @staticmethod
    def _nats_options_from_env() -> dict[str, Any]:
        options: dict[str, Any] = {}
        if env_broker.user is not None:
            options["user"] = env_broker.user
            options["password"] = env_broker.password or ""
        if env_broker.token is not None:
            options["token"] = env_broker.token
        if env_broker.creds is not None:
            options["user_credentials"] = env_broker.creds
        tls_ca, tls_cert, tls_key = env_broker.tls_ca, env_broker.tls_cert, env_broker.tls_key
        if tls_key is not None and tls_cert is None:
            raise ValueError(
                "FASTIOT_NATS_TLS_KEY is set without FASTIOT_NATS_TLS_CERT; set both for a client "
                "certificate (mutual TLS), or neither"
            )
        if tls_ca is not None or tls_cert is not None:
            # ssl's own errors name neither the setting nor the file ("[SSL] PEM lib", "No such file").
            try:
                context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls_ca)
            except (OSError, ssl.SSLError) as e:
                raise ValueError(
                    f"FASTIOT_NATS_TLS_CA={tls_ca!r} is not a readable PEM file of CA certificates ({e})"
                ) from None
            if tls_cert is not None:
                try:
                    context.load_cert_chain(tls_cert, tls_key)
                except (OSError, ssl.SSLError) as e:
                    raise ValueError(
                        f"FASTIOT_NATS_TLS_CERT={tls_cert!r} and FASTIOT_NATS_TLS_KEY={tls_key!r} are not a "
                        f"readable PEM certificate and its private key ({e})"
                    ) from None
            options["tls"] = context
        return options

    def __init__(
        self, client: NatsClient, subscription_error_cb: SubscriptionErrorCallback | None = None
    ) -> None:
        super().__init__()
        if subscription_error_cb is not None and not _is_coroutine_callable(subscription_error_cb):
            raise TypeError("subscription_error_cb must be an async function taking the exception")
        self._client: NatsClient = client
        self._subscription_error_cb: SubscriptionErrorCallback | None = subscription_error_cb
        self._closed_cb: Callable[[], Awaitable[None]] | None = None
        self._error_handler: Callable[[Exception], Awaitable[None]] | None = None
        self._state: ConnectionState = "disconnected"
        self._state_callbacks: list[StateCallback] = []
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
        self.reconnects: int = 0
        self.slow_consumer_events: int = 0
        self.publish_buffer_overflows: int = 0
        """Publishes refused with PublishBufferFullError because the reconnect buffer was full."""
        self.last_error: Exception | None = None
        self._closing: bool = False
        self._disconnected_at: float | None = None
        self.failed_reconnect_attempts: int = 0
        """Reconnect attempts that failed during the current (or the last) outage."""
        self.last_outage_seconds: float | None = None
        """How long the last outage lasted, from losing the connection to reconnecting."""
        self._overflows_this_outage: int = 0
        self._auth_rejected_this_outage: bool = False
        self._slow_consumer_last: dict[int, float] = {}
        self._reconnect_time_wait: float = DEFAULT_RECONNECT_TIME_WAIT
        self._lost_server: str | None = None
        self._tried_this_round: set[str] = set()

    @property
    def client(self) -> NatsClient:
        """The underlying nats-py client, e.g. for JetStream (``connection.client.jetstream()``)."""
        return self._client

    @property
    def state(self) -> ConnectionState:
        """``connected``, ``reconnecting``, ``disconnected`` (not connected yet) or ``closed``."""
        return self._state

    @property
    def connected_url(self) -> str | None:
        """The URL of the server this connection is attached to now."""
        url = self._client.connected_url
        return None if url is None else f"{url.scheme}://{url.hostname}:{url.port}"

    def _current_server_url(self) -> str | None:
        # The server being tried while reconnecting (connected_url is None then).
        server = getattr(self._client, "_current_server", None)
        uri = getattr(server, "uri", None)
        return None if uri is None else f"{uri.scheme}://{uri.hostname}:{uri.port}"

    def on_state_change(self, callback: StateCallback, remove: bool = False) -> None:
        """Call ``callback(state)`` (a plain function, run on the loop) whenever :attr:`state` changes."""
        if remove:
            self._state_callbacks.remove(callback)
        else:
            self._state_callbacks.append(callback)

    def _set_state(self, state: ConnectionState) -> None:
        if state == self._state:
            return
        self._state = state
        for callback in list(self._state_callbacks):
            try:
                callback(state)
            except Exception:
                _logger.exception("state callback %r failed", callback)

    async def _on_error(self, err: Exception) -> None:
        self.last_error = err
        if self._error_handler is not None:
            await self._error_handler(err)
            return
        if isinstance(err, nats.errors.SlowConsumerError):
            self._on_slow_consumer(err)
            return
        if self._state == "reconnecting":
            # Every failed attempt lands here; the outage was already logged once, and the end will be.
            self.failed_reconnect_attempts += 1
            if _is_authorization_error(err) and not self._auth_rejected_this_outage:
                # Unlike a server that is down, this will not go away by waiting: say so once.
                self._auth_rejected_this_outage = True
                _logger.error(
                    "the NATS server at %s rejected the credentials while reconnecting (%s: %s); still "
                    "retrying. Check FASTIOT_NATS_USER / FASTIOT_NATS_PASSWORD, FASTIOT_NATS_TOKEN or "
                    "FASTIOT_NATS_CREDS",
                    self._current_server_url(),
                    type(err).__name__,
                    err,
                )
            else:
                _logger.debug("reconnect attempt failed: %s: %s", type(err).__name__, err)
            return
        _logger.warning("NATS: %s: %s", type(err).__name__, err)

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
        if self._state == "connected" and not self._client.is_closed and not self._closing:
            self._disconnected_at = time.monotonic()
            self.failed_reconnect_attempts = 0
            self._overflows_this_outage = 0
            self._auth_rejected_this_outage = False
            lost = getattr(getattr(self._client, "_current_server", None), "uri", None)
            self._lost_server = None if lost is None else lost.netloc
            self._tried_this_round = set()
            _logger.warning(
                "lost the connection to NATS; reconnecting (publishes are buffered up to %d bytes meanwhile)",
                self.reconnect_buffer_size,
            )
            self._set_state("reconnecting")

    def _choose_reconnect_server(self, servers: list[Any], server_info: dict[str, Any]) -> tuple[Any, float]:
        """Pick the server for the next reconnect attempt (nats-py's ``reconnect_to_server_handler``).

        In a round every known server is tried once, the one just lost last, without waiting; between
        rounds it waits ``reconnect_time_wait``. nats-py's own choice may retry the dead server first
        and then wait ``reconnect_time_wait`` before trying a live one, so a cluster failover took a
        second in a third of the cases instead of milliseconds.
        """
        untried = [s for s in servers if s.uri.netloc not in self._tried_this_round]
        delay = 0.0
        if not untried:
            self._tried_this_round.clear()
            untried = list(servers)
            delay = self._reconnect_time_wait
        others = [s for s in untried if s.uri.netloc != self._lost_server]
        choice = random.choice(others) if others else untried[0]
        self._tried_this_round.add(choice.uri.netloc)
        return choice, delay

    async def _on_reconnected(self) -> None:
        self.reconnects += 1
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
        self._set_state("connected")

    async def _on_closed(self) -> None:
        self._set_state("closed")
        if self._closed_cb is not None:
            await self._closed_cb()

    def _uses_tls(self) -> bool:
        transport = getattr(self._client, "_transport", None)
        writer = getattr(transport, "_io_writer", None)
        return writer is not None and writer.get_extra_info("ssl_object") is not None

    async def _abandon(self) -> None:
        self._closed_cb = None
        # After a failed TLS handshake nats-py's close() waits forever for the socket it handed to
        # start_tls; abort the sockets first and bound the wait.
        transport = getattr(self._client, "_transport", None)
        for writer in {getattr(transport, "_bare_io_writer", None), getattr(transport, "_io_writer", None)}:
            if writer is not None:
                writer.transport.abort()
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
                await self.flush(2.0)
            except (nats.errors.Error, asyncio.TimeoutError):
                pass
        elif self._client.pending_data_size > 0:
            # nats-py would write them into the dead socket and fail half-way through closing.
            _logger.warning(
                "closing the NATS connection while it is down: %d bytes of buffered publishes are discarded",
                self._client.pending_data_size,
            )
            self._client._pending = []
            self._client._pending_data_size = 0
        await self._stop_reconnecting()
        try:
            await self._client.close()
        except OSError as e:  # the old socket's error surfacing late; the client is closed regardless
            _logger.debug("closing the NATS connection: %s", e)
        self._set_state("closed")

    async def _stop_reconnecting(self) -> None:
        # A cancel that arrives as a connect attempt fails is lost inside asyncio.wait_for (Python < 3.12),
        # and nats-py's close() would leave its reconnect loop running for good: cancel until it ends.
        task: asyncio.Task[None] | None = getattr(self._client, "_reconnection_task", None)
        for _ in range(50):
            if task is None or task.done():
                return
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)
        _logger.warning("the NATS reconnect loop did not stop; it may keep trying in the background")

    @property
    def is_connected(self) -> bool:
        return self._client.is_connected

    async def flush(self, timeout: float = DEFAULT_FLUSH_TIMEOUT) -> None:
        """Wait until the server has received everything sent on this connection so far.

        Use this, not ``connection.client.flush()``: nats-py (2.16) writes its PING straight to the
        socket, ahead of publishes and subscriptions still in its write buffer, so its flush can return
        before the server has them. Here the buffer is written out first.

        Raises:
            nats.errors.TimeoutError: The server did not answer within ``timeout`` seconds.
            nats.errors.ConnectionClosedError: The connection is closed.
        """
        client = self._client
        write_buffer = getattr(client, "_flush_pending", None)  # private, hence looked up defensively
        if write_buffer is not None and client.is_connected:
            try:
                await asyncio.wait_for(write_buffer(force_flush=True), timeout)
            except asyncio.TimeoutError:
                raise nats.errors.FlushTimeoutError() from None
        await client.flush(timeout)  # type: ignore[arg-type]  # annotated int, any number of seconds works

    async def _subscribe_nats(
        self,
        result: NatsBrokerSubscription,
        name: str,
        pending_msgs_limit: int | None,
        pending_bytes_limit: int | None,
    ) -> NatsBrokerSubscription:
        check_subject_length(name)
        if pending_msgs_limit is None:
            pending_msgs_limit = self.pending_msgs_limit
        if pending_bytes_limit is None:
            pending_bytes_limit = self.pending_bytes_limit
        subscription = await self._client.subscribe(
            subject=name,
            cb=result.received_nats_msg_cb,  # type: ignore[attr-defined]
            pending_msgs_limit=pending_msgs_limit,
            pending_bytes_limit=pending_bytes_limit,
        )
        result._set_subscription(subscription)
        self._subscriptions_by_sid[subscription._id] = result
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
            SubjectTooLongError: If the subject is too long for NATS.
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
        cb: Callable[[NatsMsg], Awaitable[None]],
        *,
        pending_msgs_limit: int = DEFAULT_PENDING_MSGS_LIMIT,
        pending_bytes_limit: int = DEFAULT_PENDING_BYTES_LIMIT,
    ) -> NatsSubscription:
        """Subscribe to a NATS pattern and get the undecoded nats-py messages (used by captures)."""
        if not _is_coroutine_callable(cb):
            raise TypeError("the raw subscription callback must be an async function taking a nats Msg")
        check_subject_length(pattern)
        return await self._client.subscribe(
            subject=pattern,
            cb=cb,
            pending_msgs_limit=pending_msgs_limit,
            pending_bytes_limit=pending_bytes_limit,
        )

    async def publish_raw(self, subject: str, payload: bytes, headers: dict[str, str] | None = None) -> None:
        """Publish bytes as they are (no serialization).

        Raises:
            PublishBufferFullError, PayloadTooLargeError, SubjectTooLongError: As :meth:`publish`.
        """
        await self._publish_nats(subject, payload, headers=headers)

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
        check_subject_length(subject)
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
            SubjectTooLongError: The subject is too long for NATS; not sent.
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
        check_subject_length(subject.name)
        try:
            response = await self._client.request(subject.name, payload, timeout=timeout)
        except nats.errors.TimeoutError:
            raise nats.errors.TimeoutError() from None
        except nats.errors.OutboundBufferLimitError:
            raise self._publish_refused(subject.name, len(payload)) from None
        except nats.errors.MaxPayloadError:
            raise PayloadTooLargeError(subject.name, len(payload), self._client.max_payload) from None
        if response.headers and ERROR_HEADER in response.headers:
            raise ReplyHandlerError(subject.name, response.headers[ERROR_HEADER])
        return serialize_from_bin(subject.reply_cls, response.data)


class SubscriptionDummy(Subscription):
    """A subscription that never receives anything (for :class:`BrokerConnectionDummy`)."""

    async def unsubscribe(self) -> None:
        pass

    def check_pending_error(self) -> None:
        pass

    async def raise_pending_error(self, timeout: float | None = None) -> None:
        """There are never errors: waits for ``timeout`` (forever if None) and returns."""
        if timeout is None:
            await asyncio.Event().wait()
        await asyncio.sleep(timeout or 0)


class BrokerConnectionDummy(BrokerConnection):
    """A dummy broker implementation to mock dependencies.

    Publishing records the last ``max_published`` messages in :attr:`published`; requests raise
    ``nats.errors.NoRespondersError``, as a real broker with nobody listening would.
    """

    def __init__(self, max_published: int = 1000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.published: collections.deque[tuple[str, Any]] = collections.deque(maxlen=max_published)

    @property
    def is_connected(self) -> bool:
        return True

    async def subscribe(self, subject: Subject, cb: SubscriptionCallback) -> Subscription:
        callback_arity(cb, what="subscription callback")
        return SubscriptionDummy()

    async def subscribe_reply_cb(self, subject: ReplySubject, cb: SubscriptionReplyCallback) -> Subscription:
        callback_arity(cb, what="reply callback")
        return SubscriptionDummy()

    async def _send(
        self, subject: Subject, msg: Any, reply: Subject | None = None, headers: dict[str, str] | None = None
    ) -> None:
        serialize_to_bin(subject.msg_cls, msg)  # the same type check a real broker applies
        self.published.append((subject.name, msg))

    async def _request(self, subject: ReplySubject, msg: Any, timeout: float) -> Any:
        serialize_to_bin(subject.msg_cls, msg)
        raise nats.errors.NoRespondersError()

    async def close(self) -> None:
        pass
