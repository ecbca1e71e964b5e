"""Subscriptions: what ``subscribe``, ``subscribe_reply_cb`` and ``subscribe_raw`` return.

Each one counts what it :attr:`~Subscription.received`, reports every error of its handler without
stopping, and ends with :meth:`~Subscription.unsubscribe` or :meth:`~Subscription.drain`.
``fastiot.core.broker_connection`` re-exports these names, where the seed documents them.

Example:
    >>> async def main(broker):  # broker: a connected NatsBrokerConnection
    ...     async def on_thing(thing):
    ...         print(thing.value)
    ...     subscription = await broker.subscribe(Thing.get_subject(">"), on_thing)
    ...     ...
    ...     print(subscription.received, subscription.errors)
    ...     await subscription.drain(timeout=5.0)
"""

from __future__ import annotations

import asyncio
import collections
import inspect
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import nats.errors
import pydantic
from nats.aio.msg import Msg as NatsMsg
from nats.aio.subscription import Subscription as NatsSubscription

from fastiot._callbacks import is_coroutine_callable
from fastiot.core import _nats_compat
from fastiot.core.data_models import ReplySubject, Subject
from fastiot.core.logger import setup_logger
from fastiot.core.serialization import decoder_for, serialize_to_bin
from fastiot.core.subject_helper import is_fastiot1_inbox
from fastiot.exceptions import BadMessageError, DeserializationError, PermissionDeniedError

__all__ = [
    "DEFAULT_MAX_PENDING_ERRORS",
    "ERROR_HEADER",
    "NatsBrokerSubscription",
    "NatsBrokerSubscriptionReplySubject",
    "NatsBrokerSubscriptionSubject",
    "RawSubscription",
    "Subscription",
    "SubscriptionCallback",
    "SubscriptionDummy",
    "SubscriptionErrorCallback",
    "SubscriptionReplyCallback",
    "attach_message",
    "callback_arity",
    "describe_failure",
]

# A subscription callback is ``async def cb(msg)`` or ``async def cb(subject_name, msg)``.
SubscriptionCallback = Callable[..., Coroutine[Any, Any, Any]]  # returning anything but None is reported
# A reply callback has the same arguments and returns the reply message.
SubscriptionReplyCallback = Callable[..., Coroutine[Any, Any, Any]]
# Receives every error raised while decoding or handling a message: the handler's own exception (or
# DeserializationError / pydantic.ValidationError) with ``subject`` and ``payload`` attached, or a
# BadMessageError for a malformed message from the wire.
SubscriptionErrorCallback = Callable[[Exception], Awaitable[None]]
# A raw callback gets the undecoded nats-py message.
RawCallback = Callable[[NatsMsg], Awaitable[None]]

DEFAULT_MAX_PENDING_ERRORS = 1000
DEFAULT_DRAIN_TIMEOUT = 5.0
# A replier that fails answers with an empty payload and this header, so the requester fails at once.
ERROR_HEADER = "Fastiot-Error"

_logger = setup_logger("broker")


def attach_message(err: Exception, subject: str, payload: bytes) -> Exception:
    """Attach the message a handler failed on to its own exception and return the exception.

    As FastIoT does, the error callback gets the handler's exception itself (``isinstance(err,
    ValueError)`` works); ``err.subject`` and ``err.payload`` say which message it was, and on Python
    3.11+ a note naming the subject shows in its traceback.
    """
    try:
        err.subject = subject  # type: ignore[attr-defined]
        err.payload = payload  # type: ignore[attr-defined]
    except (AttributeError, TypeError):  # an exception type that refuses new attributes keeps the note
        pass
    note = f"while handling a message on subject {subject!r} ({len(payload)} bytes)"
    add_note = getattr(err, "add_note", None)  # Python >= 3.11
    if add_note is not None and note not in getattr(err, "__notes__", ()):  # an error raised again: once
        add_note(note)
    return err


def describe_failure(err: Exception) -> str:
    """One log line for a failed message: subject, size, the payload's first bytes and the error."""
    if isinstance(err, BadMessageError):
        return str(err)
    payload: bytes = getattr(err, "payload", b"")
    preview = payload[:32].hex() if isinstance(payload, (bytes, bytearray)) else ""
    return (
        f"message on subject {getattr(err, 'subject', '?')!r} ({len(payload)} bytes, starts "
        f"{preview or '<empty>'}) failed: {type(err).__name__}: {err}"
    )


def callback_arity(cb: Any, *, what: str = "callback", skip_self: bool = False) -> int:
    """Check a message callback and return how many arguments it takes (1 or 2).

    Raises:
        TypeError: If ``cb`` is not an ``async def`` or does not take ``(msg)`` or ``(subject_name, msg)``.
    """
    name = getattr(cb, "__qualname__", repr(cb))
    if not is_coroutine_callable(cb):
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
    """A running subscription.

    Attributes:
        received: Messages handed to the handler so far.
        errors: Errors of the handler (or of decoding) reported so far.
        last_error: The newest of those errors, described in one line ("" while there was none).
    """

    received: int = 0
    errors: int = 0
    last_error: str = ""

    @abstractmethod
    async def unsubscribe(self) -> None:
        """Cancels the subscription."""

    async def drain(self, timeout: float = DEFAULT_DRAIN_TIMEOUT) -> None:
        """Stop receiving and let the handler finish what was received (at most ``timeout`` s)."""
        await self.unsubscribe()

    def check_pending_error(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Raise the oldest error of a message handler that has not been raised yet, if any."""

    async def raise_pending_error(self, timeout: float | None = None) -> None:
        """Wait for the next error of a message handler and raise it. Useful in tests."""
        await asyncio.sleep(timeout if timeout is not None else 0)


class NatsBrokerSubscription(Subscription):
    """Common part of NATS subscriptions: error bookkeeping and unsubscribe.

    Handler errors never stop a subscription. Each is logged with its subject, handed to
    ``subscription_error_cb`` and kept (the newest ``DEFAULT_MAX_PENDING_ERRORS``) for
    :meth:`check_pending_error`; ``errors_dropped`` counts those that fell out of that buffer. The
    callback and :meth:`check_pending_error` get the same object: the handler's own exception (or
    ``DeserializationError`` / ``pydantic.ValidationError``) with ``subject`` and ``payload`` attached
    (see :func:`attach_message`), or a ``BadMessageError`` for a malformed message from the wire.

    Args:
        subscription_error_cb: Called with each error of the handler (see above); None: only logged and kept.
        kwargs: Passed on to :class:`Subscription`.
    """

    def __init__(self, subscription_error_cb: SubscriptionErrorCallback | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if subscription_error_cb is not None and not is_coroutine_callable(subscription_error_cb):
            raise TypeError("subscription_error_cb must be an async function taking the exception")
        self._subscription: NatsSubscription | None = None
        self._subscription_error_cb: SubscriptionErrorCallback | None = subscription_error_cb
        self._pending_errors: collections.deque[Exception] = collections.deque(
            maxlen=DEFAULT_MAX_PENDING_ERRORS
        )
        self._error_event: asyncio.Event = asyncio.Event()
        self.received: int = 0
        self.errors: int = 0
        self.last_error: str = ""
        self.errors_dropped: int = 0
        self.slow_consumer_events: int = 0
        self.refusal: PermissionDeniedError | None = None
        """Set when the server refused this subscription after it was made (e.g. after a reconnect)."""
        self.on_refused: Callable[[PermissionDeniedError], None] | None = None
        """Called (in the read loop; it must not block) when the server refuses this subscription later."""
        self.confirmed: bool = False
        """Whether the server took the subscription (or the connection was down when it was made)."""

    def set_subscription(self, subscription: NatsSubscription) -> None:
        """Handle ``subscription``'s messages (the connection that made it calls this once)."""
        self._subscription = subscription

    @property
    def subject_name(self) -> str | None:
        """The subject or pattern subscribed to (``None`` once unsubscribed)."""
        return self._subscription.subject if self._subscription is not None else None

    def refused(self, err: PermissionDeniedError) -> None:
        """The server refused this subscription: keep the error, log it and tell :attr:`on_refused`."""
        self.refusal = err
        if not self.confirmed:
            return  # subscribe() is waiting for this answer and raises it
        _logger.error("%s", err)
        if self.on_refused is not None:
            try:
                self.on_refused(err)
            except Exception:
                _logger.exception("on_refused of the subscription to %s raised", err.subject)

    async def received_nats_msg_cb(self, nats_msg: NatsMsg) -> None:
        """Handle one message from nats-py (the callback given to nats-py's ``subscribe``)."""
        raise NotImplementedError

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
        return _nats_compat.pending_msgs_limit(self._subscription) if self._subscription is not None else 0

    @property
    def sid(self) -> int | None:
        """The subscription's id on its connection (``None`` once unsubscribed)."""
        return _nats_compat.subscription_id(self._subscription) if self._subscription is not None else None

    @property
    def delivered(self) -> int:
        """Messages the client got for this subscription, including those dropped as a slow consumer."""
        return self._subscription.delivered if self._subscription is not None else 0

    async def unsubscribe(self) -> None:
        """Stop receiving at once; messages not handled yet are dropped."""
        if self._subscription is None:
            return
        sub, self._subscription = self._subscription, None
        try:
            await sub.unsubscribe()
        except (nats.errors.ConnectionClosedError, nats.errors.BadSubscriptionError):
            pass  # the connection is gone, and the subscription with it

    async def drain(self, timeout: float = DEFAULT_DRAIN_TIMEOUT) -> None:
        """Stop receiving and wait (at most ``timeout`` s) until already received messages are handled."""
        if self._subscription is None:
            return
        sub, self._subscription = self._subscription, None
        try:
            await asyncio.wait_for(sub.drain(), timeout)
        except (nats.errors.ConnectionClosedError, nats.errors.BadSubscriptionError):
            pass
        except asyncio.TimeoutError:
            # nats-py's drain() leaves the subscription closed but its handler running and unsubscribe()
            # refusing it (BadSubscriptionError): end it for sure, so a stop always finishes.
            _logger.warning(
                "subscription %s did not drain within %.1f s (a handler hangs?); cancelling its handler "
                "and dropping its backlog",
                sub.subject,
                timeout,
            )
            _nats_compat.stop_subscription(sub)

    async def report_error(self, err: Exception) -> None:
        """Count, keep, log and pass on one error (annotated by :func:`attach_message`)."""
        self.errors += 1
        self.last_error = f"{type(err).__name__}: {err}"
        if len(self._pending_errors) == self._pending_errors.maxlen:
            self.errors_dropped += 1
        self._pending_errors.append(err)
        self._error_event.set()
        # A stream of bad messages must not flood the log: the first ten, then every thousandth.
        if self.errors <= 10 or self.errors % 1000 == 0:
            bad_input = isinstance(err, (DeserializationError, pydantic.ValidationError, BadMessageError))
            _logger.error(
                "%s%s",
                describe_failure(err),
                f" (error {self.errors} on this subscription)" if self.errors > 10 else "",
                exc_info=None if bad_input else err,
            )
        if self._subscription_error_cb is not None:
            try:
                await self._subscription_error_cb(err)
            except Exception:
                _logger.exception("subscription_error_cb raised while handling %s", describe_failure(err))

    def check_pending_error(self) -> None:
        """Raise the oldest error of the message handler that has not been raised yet, if any."""
        if self._pending_errors:
            raise self._pending_errors.popleft()

    async def raise_pending_error(self, timeout: float | None = None) -> None:
        """Wait (at most ``timeout`` s) for an error of the message handler and raise it."""
        while not self._pending_errors:
            self._error_event.clear()
            await asyncio.wait_for(self._error_event.wait(), timeout)
        raise self._pending_errors.popleft()


class NatsBrokerSubscriptionSubject(NatsBrokerSubscription):
    """A subscription that decodes each message to the subject's model and calls ``cb``.

    Args:
        subject: The subject; its model decodes each message.
        cb: ``async def cb(msg)`` or ``async def cb(subject_name, msg)``, returning None.
        kwargs: Passed on to :class:`NatsBrokerSubscription`.
    """

    def __init__(self, subject: Subject, cb: SubscriptionCallback, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._num_cb_params: int = callback_arity(cb, what="subscription callback")
        self._subject: Subject = subject
        self._decode: Callable[[bytes], Any] = decoder_for(subject.msg_cls)
        self._cb: SubscriptionCallback = cb

    async def received_nats_msg_cb(self, nats_msg: NatsMsg) -> None:
        """Decode one message to the subject's model and call the callback with it."""
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
            await self.report_error(attach_message(e, nats_msg.subject, nats_msg.data))


class NatsBrokerSubscriptionReplySubject(NatsBrokerSubscription):
    """A subscription that answers each request with what ``cb`` returns.

    If decoding, the handler or the reply's type fails, the requester gets an empty reply with the
    ``Fastiot-Error`` header, so its ``request()`` raises :class:`ReplyHandlerError` at once.

    Args:
        subject: The request subject; its models decode the request and check the reply.
        cb: ``async def cb(request)`` or ``async def cb(subject_name, request)``, returning the reply.
        send_reply_fn: Sends a message (and headers) to a requester's inbox.
        publish_reply_fn: Sends serialized bytes to an inbox by name; faster, used when given.
        kwargs: Passed on to :class:`NatsBrokerSubscription`.
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
        """Decode one request, call the callback and send the answer (or the error, in a header) back."""
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
            await self.report_error(attach_message(e, nats_msg.subject, nats_msg.data))


class RawSubscription(NatsBrokerSubscription):
    """A subscription that hands each undecoded nats-py message to ``cb`` (captures, subject indexes).

    Args:
        cb: ``async def cb(nats_msg)``, called with each message as nats-py delivers it.
        kwargs: Passed on to :class:`NatsBrokerSubscription`.

    Attributes:
        on_dropped: Called (in the read loop, it must not block) with the subject of each message the
            client dropped because this subscription's backlog was full (a slow consumer); observers
            sharing one subscription count their losses with it.
    """

    def __init__(self, cb: RawCallback, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not is_coroutine_callable(cb):
            raise TypeError("the raw subscription callback must be an async function taking a nats Msg")
        self._cb: RawCallback = cb
        self.on_dropped: Callable[[str], None] | None = None

    async def received_nats_msg_cb(self, nats_msg: NatsMsg) -> None:
        """Call the callback with the nats-py message as it is."""
        self.received += 1
        try:
            await self._cb(nats_msg)
        except Exception as e:
            await self.report_error(attach_message(e, nats_msg.subject, nats_msg.data))


class SubscriptionDummy(Subscription):
    """A subscription that never receives anything (for :class:`BrokerConnectionDummy`)."""

    async def unsubscribe(self) -> None:
        """Nothing to stop."""
        pass

    def check_pending_error(self) -> None:
        """A dummy has no handler, so no error."""
        pass

    async def raise_pending_error(self, timeout: float | None = None) -> None:
        """There are never errors: waits for ``timeout`` (forever if None) and returns."""
        if timeout is None:
            await asyncio.Event().wait()
        await asyncio.sleep(timeout or 0)
