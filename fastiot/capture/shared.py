"""Shared subscriptions: one NATS subscription per pattern and connection, fanned out to every observer.

Each NATS subscription costs the client per message: the server sends the message once per matching
subscription, and nats-py parses it, builds a message object and queues it for that subscription's
task again. A notebook that shows a SubjectBrowser (``>``), a MessageTable (``v1.thing.>``) and a
LivePlot (three subjects) would pay that three to five times per message. Here observers on one
connection get :class:`Feed` s from one :class:`SharedSubscriptions` per connection, which keeps the
fewest subscriptions that cover every feed's pattern: a feed whose pattern another subscription covers
rides on it (its messages filtered by its pattern); a new pattern that covers existing subscriptions
takes their feeds over and they are unsubscribed; when the last feed of a pattern goes, the feeds
that rode on it get subscriptions of their own. Only subscriptions with the same pending limits are
shared.

Every hand-over from one subscription to another is exact: :func:`fastiot.core._nats_compat.flush_at_cut`
runs a callback at the instant the server's PONG is parsed, which splits the stream; the old
subscription delivers what it queued before that instant, the new one what came after, so no message
is lost or seen twice. Messages the client drops while a feed is attached (a slow consumer) are
counted in :attr:`Feed.lost` if they match the feed's pattern.

Messages a JetStream consumer delivers (reply subject ``$JS.ACK.…``: somebody reading a recording, a
KV watch) are not traffic published now, though their subject matches: a feed gets them only if
attached with ``include_deliveries``. The filter runs once per subscription, in its delivery, before a
message is even buffered; feeds that want deliveries get subscriptions of their own.

Handlers are plain functions (a coroutine per message and observer would cost more than the handler);
they run in the subscription's task, one after the other, in the order the feeds were attached.

Example:
    >>> from fastiot.capture.shared import pattern_covers
    >>> pattern_covers(">", "v1.thing.*"), pattern_covers("v1.*.a", "v1.x.>")
    (True, False)
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from fastiot.capture._delivery import Message, RawDelivery, is_jetstream_delivery
from fastiot.core import _nats_compat
from fastiot.core.broker_connection import BrokerConnection, NatsBrokerConnection
from fastiot.core.logger import setup_logger
from fastiot.core.subject_helper import subject_matches
from fastiot.core.subscription import RawSubscription, Subscription
from fastiot.env import FASTIOT_MQTT_PORT
from fastiot.exceptions import PermissionDeniedError
from fastiot.mqtt.topics import RETAINED_PREFIX, RETAINED_STORE_REPLY_PREFIX

if TYPE_CHECKING:
    from nats.aio.msg import Msg as NatsMsg

__all__ = [
    "Delivering",
    "Feed",
    "MessageHandler",
    "SharedSubscriptions",
    "pattern_covers",
    "shared_subscriptions",
]

# What a feed calls for each of its messages: a plain function, it must not block. The message has
# ``subject``, ``data`` and ``headers`` (a nats-py Msg, or a MessageView that is reused: copy what you keep).
MessageHandler = Callable[[Message], None]
Limits = tuple[int, int]  # (pending_msgs_limit, pending_bytes_limit)

# How long a hand-over waits for the old subscription to deliver what it queued before the cut.
HAND_OVER_TIMEOUT = 5.0
CUT_TIMEOUT = 10.0

_logger = setup_logger("capture")
_hubs: weakref.WeakKeyDictionary[BrokerConnection, SharedSubscriptions] = weakref.WeakKeyDictionary()


class Delivering(Protocol):
    """What counts a subscription's messages: received (dropped ones included) and not handled yet."""

    @property
    def delivered(self) -> int:
        """Messages the client got for the subscription, dropped ones included."""

    @property
    def pending_msgs(self) -> int:
        """Messages received and not handled yet."""


def pattern_covers(broad: str, narrow: str) -> bool:
    """Whether every subject that matches the NATS pattern ``narrow`` also matches ``broad``."""
    b, n = broad.split("."), narrow.split(".")
    for i, token in enumerate(b):
        if token == ">":
            return len(n) > i
        if i >= len(n) or n[i] == ">" or (token != "*" and (n[i] == "*" or n[i] != token)):
            return False
    return len(b) == len(n)


def matcher(pattern: str) -> Callable[[str], bool]:
    """A quick test of subjects against ``pattern`` (a prefix test for ``a.b.>``)."""
    tokens = pattern.split(".")
    if "*" not in tokens and ">" not in tokens:
        return pattern.__eq__
    if tokens[-1] == ">" and "*" not in tokens:
        prefix = pattern[:-1]
        return lambda subject: subject.startswith(prefix)
    return lambda subject: subject_matches(subject, pattern)


class Feed:
    """One observer's messages: those of its pattern, from whichever shared subscription carries them.

    Args:
        hub: The shared subscriptions of the connection the feed belongs to.
        pattern: The NATS pattern.
        handler: Called with each message (a plain function; it must not block).
        limits: ``(pending_msgs_limit, pending_bytes_limit)`` of a subscription made for this feed.
        include_deliveries: Whether the feed gets JetStream consumers' deliveries too.

    Attributes:
        pattern: The NATS pattern.
        handler: Called with each message (a plain function).
        lost: Messages of the pattern the client dropped (slow consumer) while the feed was attached.
        include_deliveries: Whether the feed gets JetStream consumers' deliveries too.
        links: Its places in shared subscriptions (one; two during a hand-over); its hub keeps them.
    """

    __slots__ = ("_hub", "handler", "include_deliveries", "limits", "links", "lost", "on_refused", "pattern")

    def __init__(
        self,
        hub: SharedSubscriptions,
        pattern: str,
        handler: MessageHandler,
        limits: Limits,
        include_deliveries: bool = False,
    ) -> None:
        self._hub: SharedSubscriptions = hub
        self.pattern: str = pattern
        self.handler: MessageHandler = handler
        self.limits: Limits = limits
        self.include_deliveries: bool = include_deliveries
        self.lost: int = 0
        self.on_refused: Callable[[PermissionDeniedError], None] | None = None
        """Called (on the loop; it must not block) when the server refuses the subscription later."""
        self.links: list[_Link] = []

    @property
    def subscriptions(self) -> list[Delivering]:
        """The counters of the subscriptions delivering to this feed now (one; two during a hand-over)."""
        found: list[Delivering] = []
        for link in self.links:
            counters = link.shared.counters
            if counters is not None:
                found.append(counters)
        return found

    @property
    def attached(self) -> bool:
        """Whether the feed gets messages."""
        return bool(self.links)

    async def close(self) -> None:
        """Stop the feed (the shared subscription ends when nobody needs it anymore)."""
        await self._hub.detach(self)


class _Link:
    """A feed's place in one shared subscription's fan-out: the function called per message."""

    __slots__ = ("call", "counts_drops", "exact", "feed", "match", "shared", "skip_left", "steady")

    def __init__(self, feed: Feed, shared: _Shared) -> None:
        self.feed: Feed = feed
        self.shared: _Shared = shared
        self.match: Callable[[str], bool] | None = (
            None if feed.pattern == shared.pattern else matcher(feed.pattern)
        )
        # A single subject under a broader subscription: looked up by subject, not tested per message.
        self.exact: str | None = None
        if self.match is not None and not any(t in ("*", ">") for t in feed.pattern.split(".")):
            self.exact = feed.pattern
        self.steady: MessageHandler = self._steady()
        """The feed's handler, behind its filter if the subscription's pattern is broader."""
        self.call: MessageHandler = _ignore
        self.counts_drops: bool = False
        self.skip_left: int = 0  # messages still to skip (queued before the feed's start)

    def _steady(self) -> MessageHandler:
        handler, match = self.feed.handler, self.match
        if match is None:
            return handler

        def filtered(msg: Message) -> None:
            if match(msg.subject):
                handler(msg)

        return filtered

    def start_after(self, skip: int) -> None:
        """Skip the next ``skip`` messages of the subscription (queued before the cut), then deliver."""
        self.counts_drops = True
        steady = self.steady
        self.skip_left = skip
        if skip <= 0:
            self.shared.set_call(self, steady)
            return

        def skipping(_msg: Message) -> None:
            self.skip_left -= 1
            if self.skip_left == 0:
                self.shared.set_call(self, steady)

        self.shared.set_call(self, skipping)

    def end_after(self, deliver: int, done: Callable[[_Link], None]) -> None:
        """Deliver the next ``deliver`` messages (those queued before the cut), then leave."""
        self.counts_drops = False
        if deliver <= 0:
            done(self)
            return
        steady = self.steady
        left = deliver

        def ending(msg: Message) -> None:
            nonlocal left
            if self.skip_left > 0:
                self.skip_left -= 1
            else:
                steady(msg)
            left -= 1
            if left == 0:
                done(self)

        self.shared.set_call(self, ending)


async def _ignore_async(_msg: NatsMsg) -> None:
    """The callback of a subscription whose messages are all taken in the read loop."""


def _ignore(_msg: Message) -> None:
    """A feed's call before its cut: what arrives now belongs to the subscription it comes from."""


class _Shared:
    """One NATS subscription and the feeds it delivers to."""

    __slots__ = (
        "by_subject",
        "calls",
        "delivery",
        "include_deliveries",
        "limits",
        "links",
        "pattern",
        "subscription",
    )

    def __init__(self, pattern: str, limits: Limits, include_deliveries: bool = False) -> None:
        self.pattern: str = pattern
        self.limits: Limits = limits
        self.include_deliveries: bool = include_deliveries
        self.subscription: Subscription | None = None
        self.delivery: RawDelivery | None = None  # messages raw from the parser (a NATS connection)
        self.links: list[_Link] = []
        self.calls: tuple[MessageHandler, ...] = ()
        self.by_subject: dict[str, tuple[MessageHandler, ...]] = {}  # single-subject feeds, steady

    def add(self, link: _Link) -> None:
        self.links.append(link)
        link.feed.links.append(link)
        self._fan_out_anew()

    def remove(self, link: _Link) -> None:
        if link in self.links:
            self.links.remove(link)
            self._fan_out_anew()
        if link in link.feed.links:
            link.feed.links.remove(link)

    def set_call(self, link: _Link, call: MessageHandler) -> None:
        link.call = call
        self._fan_out_anew()

    def _fan_out_anew(self) -> None:
        calls: list[MessageHandler] = []
        by_subject: dict[str, list[MessageHandler]] = {}
        for link in self.links:
            if link.exact is not None and link.call is link.steady:
                by_subject.setdefault(link.exact, []).append(link.feed.handler)
            else:
                calls.append(link.call)
        self.calls = tuple(calls)
        self.by_subject = {subject: tuple(handlers) for subject, handlers in by_subject.items()}

    @property
    def counters(self) -> Delivering | None:
        """What counts the messages received and handled."""
        if self.delivery is not None:
            return self.delivery
        return self.subscription if isinstance(self.subscription, RawSubscription) else None

    @property
    def queued(self) -> int:
        """Messages received and not handled yet."""
        counters = self.counters
        return counters.pending_msgs if counters is not None else 0

    def serves(self, feed: Feed) -> bool:
        """Whether ``feed`` may ride on this subscription (same limits, same treatment of deliveries)."""
        return self.limits == feed.limits and self.include_deliveries == feed.include_deliveries

    async def fan_out(self, msg: NatsMsg) -> None:
        """The subscription's callback (for what nats-py delivers itself): :meth:`deliver`."""
        if not self.include_deliveries and is_jetstream_delivery(msg.reply):
            return
        self.deliver(msg)

    def deliver(self, msg: Message) -> None:
        """Every feed's call, in turn; the first failure is raised after all of them."""
        error: Exception | None = None
        for call in self.calls:
            try:
                call(msg)
            except Exception as e:  # the other feeds still get the message
                error = error or e
        if self.by_subject:
            for handler in self.by_subject.get(msg.subject, ()):
                try:
                    handler(msg)
                except Exception as e:
                    error = error or e
        if error is not None:
            raise error

    def on_refused(self, err: PermissionDeniedError) -> None:
        for link in list(self.links):
            if link.feed.on_refused is not None:
                link.feed.on_refused(err)

    def on_dropped(self, subject: str) -> None:
        for link in self.links:
            if link.counts_drops and (link.match is None or link.match(subject)):
                link.feed.lost += 1


class SharedSubscriptions:
    """The shared subscriptions of one connection (get it with :func:`shared_subscriptions`).

    Args:
        connection: The connection whose subscriptions are shared.
    """

    def __init__(self, connection: BrokerConnection) -> None:
        self._connection: BrokerConnection = connection
        self._shared: list[_Shared] = []
        self._lock: asyncio.Lock = asyncio.Lock()
        self._retained_watch: RawSubscription | None = None
        self._end_retained_watch: Callable[[], None] | None = None
        self._retained_watch_refused: bool = False

    @property
    def patterns(self) -> list[str]:
        """The patterns subscribed on the connection now."""
        return [s.pattern for s in self._shared]

    @property
    def watches_retained(self) -> bool:
        """Whether the deliveries mark retained MQTT publishes (``RetainedPublishHeaders``)."""
        return self._retained_watch is not None

    @property
    def _can_cut(self) -> bool:
        return isinstance(self._connection, NatsBrokerConnection)

    async def attach(
        self,
        pattern: str,
        handler: MessageHandler,
        *,
        pending_msgs_limit: int,
        pending_bytes_limit: int,
        include_deliveries: bool = False,
    ) -> Feed:
        """A feed of the messages on ``pattern`` from now on (the server knows the subscription on return).

        With ``include_deliveries`` it also gets what JetStream consumers deliver on subjects of
        ``pattern`` (reply ``$JS.ACK.…``); without, only what is published.
        """
        feed = Feed(self, pattern, handler, (pending_msgs_limit, pending_bytes_limit), include_deliveries)
        async with self._lock:
            await self._place(feed, leaving=[])
        return feed

    async def replace(self, feed: Feed, pattern: str, *, include_deliveries: bool | None = None) -> Feed:
        """A feed of ``pattern`` that takes over from ``feed`` at one instant.

        Every message goes to exactly one of them (``feed`` gets what the server sent before, the new one
        what came after).

        ``include_deliveries`` changes whether the new feed gets JetStream deliveries (None: as ``feed``).
        """
        deliveries = feed.include_deliveries if include_deliveries is None else include_deliveries
        new = Feed(self, pattern, feed.handler, feed.limits, deliveries)
        async with self._lock:
            await self._place(new, leaving=list(feed.links))
            await self._rehome_orphans()
        return new

    async def detach(self, feed: Feed) -> None:
        """End ``feed``; subscriptions nobody needs end, feeds that rode on them get their own."""
        async with self._lock:
            for link in list(feed.links):
                link.shared.remove(link)
            await self._rehome_orphans()
            await self._unsubscribe_unused()

    # -- placing feeds ------------------------------------------------------------------------------

    def _covering(self, feed: Feed, exclude: _Shared | None = None) -> _Shared | None:
        candidates = [s for s in self._shared if s.serves(feed) and s is not exclude]
        pattern = feed.pattern
        for shared in candidates:  # the same pattern first, then any that covers it
            if shared.pattern == pattern:
                return shared
        return next((s for s in candidates if pattern_covers(s.pattern, pattern)), None)

    async def _subscribe(self, feed: Feed) -> _Shared:
        pattern, limits = feed.pattern, feed.limits
        shared = _Shared(pattern, limits, feed.include_deliveries)
        if isinstance(self._connection, NatsBrokerConnection) and not pattern.startswith("$"):
            # Before the pattern's subscription: the server must send every store request it precedes.
            await self._watch_retained(self._connection)
        subscription = await self._connection.subscribe_raw(
            pattern, shared.fan_out, pending_msgs_limit=limits[0], pending_bytes_limit=limits[1]
        )
        shared.subscription = subscription
        if isinstance(subscription, RawSubscription):
            subscription.on_dropped = shared.on_dropped
            subscription.on_refused = shared.on_refused
            if isinstance(self._connection, NatsBrokerConnection):
                shared.delivery = RawDelivery(
                    self._connection.client,
                    subscription,
                    shared.deliver,
                    shared.on_dropped,
                    name=pattern,
                    max_msgs=limits[0],
                    max_bytes=limits[1],
                    skip_deliveries=not feed.include_deliveries,
                )
        self._shared.append(shared)
        return shared

    async def _watch_retained(self, connection: NatsBrokerConnection) -> None:
        """Tell the deliveries which MQTT publishes carry the retain flag, from nats-server's store requests.

        nats-server's ``Nmqtt-Pub`` header has only the QoS. For a retained publish the server first
        stores a copy on ``$MQTT.rmsgs.<subject>`` (a request whose reply starts with ``$MQTT.JSA.``),
        then delivers the publish; both go out on this connection in that order, so the read loop sees
        the store request first. One subscription per connection, read raw in the read loop: no
        JetStream request per message. Only where the workbench serves MQTT (``FASTIOT_MQTT_PORT`` is
        set); a user not allowed to subscribe to it gets no retain flags (``<NA>``).
        """
        if self._retained_watch is not None or self._retained_watch_refused:
            return
        if not os.environ.get(FASTIOT_MQTT_PORT, "").strip():
            return

        def on_store_request(subject: bytes, reply: bytes, data: bytes, _headers: bytes | None) -> None:
            if not reply.startswith(RETAINED_STORE_REPLY_PREFIX):
                return  # the server's own consumer reading the copy back, after the publish
            live = subject[len(RETAINED_PREFIX) :]
            for shared in self._shared:
                if shared.delivery is not None:
                    shared.delivery.expect_retained(live, data)

        try:
            watch = await connection.subscribe_raw(RETAINED_PREFIX + ">", _ignore_async)
        except PermissionDeniedError:
            self._retained_watch_refused = True
            return
        if not isinstance(watch, RawSubscription) or watch.sid is None:
            return
        self._retained_watch = watch
        self._end_retained_watch = _nats_compat.intercept_raw_messages(
            connection.client, watch.sid, on_store_request
        )

    async def _unwatch_retained(self) -> None:
        watch, end = self._retained_watch, self._end_retained_watch
        self._retained_watch = self._end_retained_watch = None
        if end is not None:
            end()
        if watch is not None:
            try:
                await watch.unsubscribe()
            except Exception:  # the connection is gone, and the subscription with it
                pass

    async def _place(self, feed: Feed, leaving: list[_Link]) -> None:
        """Attach ``feed`` (taking over from the links ``leaving`` at a cut, if any)."""
        if not self._can_cut:  # e.g. BrokerConnectionDummy: a subscription of its own, nothing shared
            link = _Link(feed, await self._subscribe(feed))
            link.start_after(0)
            link.shared.add(link)
            await self._flush()
            for old in leaving:
                old.shared.remove(old)
            await self._unsubscribe_unused()
            return
        host = self._covering(feed)
        moving: list[_Link] = []
        new_host = host is None
        if host is None:
            host = await self._subscribe(feed)
            # Narrower subscriptions hand their feeds over to the new one (the replaced feed's excepted).
            moving = [
                old
                for shared in self._shared
                if shared is not host and shared.serves(feed) and pattern_covers(feed.pattern, shared.pattern)
                for old in shared.links
                if old not in leaving
            ]
        link = _Link(feed, host)
        if not leaving and not moving:
            # A new subscription delivers only what the server sent after its SUB; an existing one may hold
            # messages received before this feed existed: those are skipped.
            link.start_after(0 if new_host else host.queued)
            host.add(link)
            if new_host:
                await self._flush()
            await self._unsubscribe_unused()  # narrower ones that had no feeds left
            return
        incoming = [link] + [_Link(old.feed, host) for old in moving]
        await self._hand_over(incoming, leaving + moving)

    async def _hand_over(self, incoming: list[_Link], outgoing: list[_Link]) -> None:
        """Switch from the ``outgoing`` links to the ``incoming`` ones at one cut of the stream."""
        for link in incoming:
            link.shared.add(link)  # ignoring everything until the cut
        finished = asyncio.Event()
        ending = set(map(id, outgoing))

        def done(link: _Link) -> None:
            link.shared.remove(link)
            ending.discard(id(link))
            if not ending:
                finished.set()

        def cut() -> None:
            # Inside the read loop: no handler is running, each queue holds exactly what came before.
            for link in incoming:
                link.start_after(link.shared.queued)
            for link in outgoing:
                link.end_after(link.shared.queued, done)

        if not outgoing:
            finished.set()
        try:
            assert isinstance(self._connection, NatsBrokerConnection)
            await _nats_compat.flush_at_cut(self._connection.client, cut, CUT_TIMEOUT)
        except BaseException:
            for link in incoming:
                link.shared.remove(link)
            await self._unsubscribe_unused()
            raise
        try:
            await asyncio.wait_for(finished.wait(), HAND_OVER_TIMEOUT)
        except asyncio.TimeoutError:
            _logger.warning(
                "a subscription hand-over waited %.0f s for the old subscription's backlog; dropping it",
                HAND_OVER_TIMEOUT,
            )
            for link in outgoing:
                link.shared.remove(link)
        await self._unsubscribe_unused()

    async def _rehome_orphans(self) -> None:
        """Feeds riding on a subscription whose own feeds are gone get subscriptions of their own."""
        for shared in list(self._shared):
            if not shared.links or any(link.match is None for link in shared.links):
                continue
            # Broadest patterns first, so narrower ones can ride on them.
            moving = sorted(shared.links, key=lambda link: _breadth(link.feed.pattern))
            incoming = []
            for old in moving:
                target = self._covering(old.feed, exclude=shared)
                if target is None:
                    target = await self._subscribe(old.feed)
                incoming.append(_Link(old.feed, target))
            await self._hand_over(incoming, list(shared.links))

    async def _unsubscribe_unused(self) -> None:
        for shared in [s for s in self._shared if not s.links]:
            self._shared.remove(shared)
            if shared.delivery is not None:
                await shared.delivery.close()
            if shared.subscription is not None:
                try:
                    await shared.subscription.unsubscribe()
                except Exception:  # the connection is gone, and the subscription with it
                    pass
        if not self._shared:
            await self._unwatch_retained()

    async def _flush(self) -> None:
        await self._connection.flush()


def _breadth(pattern: str) -> tuple[int, int]:
    tokens = pattern.split(".")
    return (0 if tokens[-1] == ">" else 1, len(tokens))


def shared_subscriptions(connection: BrokerConnection) -> SharedSubscriptions:
    """The shared subscriptions of ``connection`` (made on first use, gone with the connection)."""
    hub = _hubs.get(connection)
    if hub is None:
        hub = _hubs[connection] = SharedSubscriptions(connection)
    return hub
