"""RawDelivery: a shared subscription's messages taken raw from nats-py's parser, buffered, handed on.

nats-py spends much of a message's cost after its parser: it builds a ``Msg`` (a dataclass of eight
fields), puts it on an ``asyncio.Queue``, and a task per subscription takes it off again and awaits the
callback, two coroutines deep. For a firehose that every view of a notebook watches, that is a third
of what the kernel spends per message. Here the parser's output for the subscription goes straight
into a bounded deque (:func:`fastiot.core._nats_compat.intercept_raw_messages`), and one task hands
each message to ``deliver`` through one reused message object. The bounds are the subscription's
pending limits: beyond them messages are dropped and reported (``on_dropped``), exactly as nats-py
drops for a slow consumer; the read loop never waits for the handlers, so a slow view can never make
the server cut the connection.

Malformed messages (a subject that is not UTF-8, a header block nats-py cannot read) are reported as
nats-py's path reports them and skipped.

With ``skip_deliveries``, messages a JetStream consumer delivers (their reply subject is
``$JS.ACK.…``: a recording being read, a KV watch) are let go in the read loop, before they are
buffered: they carry the subject they were stored under and would match a live view's pattern, yet
nobody published them now. Live traffic has no reply or an inbox, so the test is one byte comparison.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable
from typing import Any, Protocol

from fastiot.core import _nats_compat
from fastiot.core.logger import setup_logger
from fastiot.core.subject_helper import subject_matches
from fastiot.core.subscription import RawSubscription
from fastiot.mqtt.topics import MQTT_PUBLISH_HEADER, RetainedPublishHeaders

__all__ = ["JETSTREAM_ACK_PREFIX", "Message", "MessageView", "RawDelivery", "is_jetstream_delivery"]

JETSTREAM_ACK_PREFIX = "$JS.ACK."
"""The reply subject of every message a JetStream consumer delivers starts with this (domains too)."""
_ACK_PREFIX = JETSTREAM_ACK_PREFIX.encode()
_DOLLAR = ord("$")


def is_jetstream_delivery(reply: str | None) -> bool:
    """Whether a message with this reply subject is a JetStream consumer's delivery, not live traffic.

    Example:
        >>> is_jetstream_delivery("$JS.ACK.history.c1.1.7.1.1700000000000000000.0"), is_jetstream_delivery("")
        (True, False)
    """
    return reply is not None and reply.startswith(JETSTREAM_ACK_PREFIX)


_logger = setup_logger("capture")
_RETAINED_MARKS = 64  # store requests per subject awaiting their publish: a few per retained publish
_RETAINED_LOOKAHEAD = 1_000  # messages of the subscription after which an awaited publish is given up


class Message(Protocol):
    """What a handler reads of a message (a nats-py ``Msg`` has it, and so has :class:`MessageView`)."""

    subject: str
    data: bytes
    headers: dict[str, str] | None


class MessageView:
    """The message being delivered: ``subject``, ``data`` and ``headers`` as on a nats-py ``Msg``.

    One object per subscription, filled anew for each message: a handler must copy what it keeps.
    """

    __slots__ = ("data", "headers", "subject")

    def __init__(self) -> None:
        self.subject: str = ""
        self.data: bytes = b""
        self.headers: dict[str, str] | None = None


class RawDelivery:
    """Takes the messages of ``subscription`` raw from the parser and calls ``deliver`` with each.

    Args:
        client: The nats-py client of the subscription.
        subscription: The subscription (its nats-py callback stays the way for anything that reaches it).
        deliver: Called with a :class:`MessageView` for each message, in order; it must not block.
        on_dropped: Called with the subject of each message dropped because the buffer was full.
        name: The subscription's pattern, for the log.
        max_msgs: The most messages buffered (the subscription's ``pending_msgs_limit``).
        max_bytes: The most payload bytes buffered (``pending_bytes_limit``; 0: no limit).
        skip_deliveries: Let JetStream consumers' deliveries go (counted in :attr:`deliveries_skipped`).
    """

    def __init__(
        self,
        client: Any,
        subscription: RawSubscription,
        deliver: Callable[[MessageView], None],
        on_dropped: Callable[[str], None],
        *,
        name: str,
        max_msgs: int,
        max_bytes: int,
        skip_deliveries: bool = False,
    ) -> None:
        sid = subscription.sid
        if sid is None:
            raise ValueError("the subscription has ended")
        self._client: Any = client
        self._subscription: RawSubscription = subscription
        self._sid: int = sid
        self._name: str = name
        self._deliver: Callable[[MessageView], None] = deliver
        self._on_dropped: Callable[[str], None] = on_dropped
        self._max_msgs: int = max_msgs
        self._max_bytes: int = max_bytes
        self._buffer: collections.deque[tuple[bytes, bytes, bytes, bytes | None, int]] = collections.deque()
        self._retained: dict[bytes, collections.deque[tuple[int, bytes]]] = {}
        self._bytes: int = 0
        self._in_flight: int = 0
        self._waiter: asyncio.Future[None] | None = None
        self.received: int = 0
        """Messages taken from the parser, dropped ones included."""
        self.dropped: int = 0
        """Messages dropped because the buffer was full (slow consumer)."""
        self._skip_deliveries: bool = skip_deliveries
        self.deliveries_skipped: int = 0
        """JetStream consumers' deliveries let go (with ``skip_deliveries``)."""
        self.view: MessageView = MessageView()
        self._task: asyncio.Task[None] = asyncio.get_running_loop().create_task(self._run())
        self._end = _nats_compat.intercept_raw_messages(client, self._sid, self._on_raw)

    @property
    def delivered(self) -> int:
        """Messages the client got for the subscription, dropped ones included (as nats-py counts)."""
        return self.received + self._subscription.delivered

    @property
    def pending_msgs(self) -> int:
        """Messages received and not handled yet."""
        return len(self._buffer) + self._in_flight + self._subscription.pending_msgs

    def _on_raw(self, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        # In nats-py's read loop, once per message: as little as can be.
        self.received += 1
        # A live message has no reply or an _INBOX one: its first byte ends the test.
        if reply and reply[0] == _DOLLAR and self._skip_deliveries and reply.startswith(_ACK_PREFIX):
            self.deliveries_skipped += 1
            return
        size = len(data)
        if len(self._buffer) >= self._max_msgs or 0 < self._max_bytes < self._bytes + size:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                _logger.warning(
                    "slow consumer on %s: the views' backlog is full; %d messages dropped so far",
                    self._name,
                    self.dropped,
                )
            self._on_dropped(subject.decode("utf-8", "replace"))
            return
        self._buffer.append((subject, reply, data, headers, self.received))
        self._bytes += size
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def _run(self) -> None:
        buffer, view, deliver, client, sid = self._buffer, self.view, self._deliver, self._client, self._sid
        loop = asyncio.get_running_loop()
        while True:
            while buffer:
                subject, reply, data, headers, position = buffer.popleft()
                self._bytes -= len(data)
                self._in_flight = 1
                try:
                    try:
                        view.subject = subject.decode()
                    except UnicodeDecodeError as e:
                        _nats_compat.report_bad_message(client, sid, subject, reply, data, headers, e)
                        continue
                    if headers is None:
                        view.headers = None
                    else:
                        parsed = await _nats_compat.raw_headers(client, sid, subject, reply, data, headers)
                        if parsed is None:
                            continue
                        if self._retained and subject in self._retained and MQTT_PUBLISH_HEADER in parsed:
                            if self._was_retained(subject, position, data):
                                parsed = RetainedPublishHeaders(parsed)
                        view.headers = parsed
                    view.data = data
                    deliver(view)
                except Exception:  # a failing view must not stop the others' messages
                    _logger.exception("handling a message on %r failed", view.subject)
                finally:
                    self._in_flight = 0
            self._waiter = loop.create_future()
            await self._waiter

    def expect_retained(self, subject: bytes, data: bytes) -> None:
        """nats-server is storing an MQTT client's retained publish on ``subject``: the publish follows.

        Called in nats-py's read loop with the store request (``$MQTT.rmsgs.<subject>``), which the
        server sends just before the publish itself, so the publish is among the messages read after
        now: the first of them on ``subject`` with this payload.
        """
        if not subject_matches(subject.decode("utf-8", "replace"), self._name):
            return
        marks = self._retained.get(subject)
        if marks is None:
            marks = self._retained[subject] = collections.deque(maxlen=_RETAINED_MARKS)
        marks.append((self.received, data))

    def _was_retained(self, subject: bytes, position: int, data: bytes) -> bool:
        """Whether the message read as the ``position``-th was the publish a store request announced."""
        marks = self._retained[subject]
        found = False
        while marks:
            announced_at, payload = marks[0]
            if position <= announced_at:
                break  # read before the store request: published before it
            if payload == data:
                marks.popleft()
                found = True
                break
            if position <= announced_at + _RETAINED_LOOKAHEAD:
                break  # another client's message on the subject came in between
            marks.popleft()  # its publish never reached this subscription (dropped as slow consumer)
        if not marks:
            del self._retained[subject]
        return found

    async def close(self) -> None:
        """Stop taking messages (call before unsubscribing); the buffered ones are dropped."""
        self._end()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._buffer.clear()
        self._retained.clear()
