"""BrokerObserver: what captures and subject indexes share — subscriptions, listeners and waiters.

A subclass lists the patterns it wants and a handler for each in
:meth:`BrokerObserver._subscription_plan`, counts the messages its handlers handle and calls
:meth:`BrokerObserver._wake` from them when a message's seq reaches ``_trigger_seq`` (a single
comparison on the hot path). Handlers are plain functions. The base gets the messages from the
connection's shared subscriptions (:mod:`fastiot.capture.shared`: observers on one connection share
one NATS subscription per pattern, so a browser, a table and a plot cost one delivery per message),
tells listeners about news (coalesced: at most once per event-loop iteration and once per listener's
``min_interval``), lets code wait for a condition, and counts what the NATS client dropped.

Example:
    >>> from fastiot.capture.observer import BrokerObserver
    >>> class Counter(BrokerObserver):
    ...     def _subscription_plan(self):
    ...         return [("v1.>", self._on_msg)]
    ...     def _on_msg(self, msg):
    ...         self._received += 1
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nats.errors

from fastiot._callbacks import CallbackList, StatefulCallbackList
from fastiot.capture.shared import Delivering, Feed, MessageHandler, shared_subscriptions
from fastiot.core.broker_connection import BrokerConnection
from fastiot.core.logger import setup_logger
from fastiot.exceptions import NotRunningError, PermissionDeniedError, WaitTimeoutError
from fastiot.workbench import ConnectionLease, use_connection

__all__ = [
    "DEFAULT_WAIT_TIMEOUT",
    "BrokerObserver",
    "Listener",
    "MessageHandler",
    "handled_by_client",
]

DEFAULT_WAIT_TIMEOUT = 10.0

_NEVER = sys.maxsize
_logger = setup_logger("capture")
# Why a listener must be a plain function (the end of the error for an async one).
_SYNC_HINT = (
    "it runs on the event loop between messages; start a task with asyncio.create_task(...) inside it "
    "if it needs to await"
)
_time_ns = time.time_ns


@dataclass
class Listener:
    """A registered listener: its callback, how often it may be called, and what it has not heard yet."""

    callback: Callable[..., None]
    min_interval: float
    last_call: float = -math.inf
    mark: Any = None
    """The subclass's bookkeeping of news since the last call (a count, a set of subjects, ...)."""


@dataclass
class _Waiter:
    done: Callable[[], bool]
    future: asyncio.Future[None]
    # No need to look before the message with this seq arrives (0: look after every message).
    wake_seq: int = 0


def handled_by_client(subscription: Delivering) -> int:
    """Messages the NATS client handed to the callback of a subscription so far."""
    return subscription.delivered - subscription.pending_msgs


class BrokerObserver:
    """The base of objects that observe NATS subjects on a connection (MessageCapture, SubjectIndex).

    Args:
        connection: The broker connection; ``None`` uses the workbench's shared one (the rule of
            :func:`fastiot.workbench.use_connection`) while running, and ``workbench.shutdown()``
            stops the observer.
        pending_msgs_limit: Messages the NATS client may buffer for the observer before it drops some.
        pending_bytes_limit: The same limit in bytes.
        include_deliveries: Also take the messages JetStream consumers deliver (reply ``$JS.ACK.…``:
            a recording being read, a KV watch); without, only messages published now count.
    """

    _what = "observer"
    # Whether pause() makes the hot path skip messages (a capture) or only holds the listeners (an index).
    _pause_skips = True

    def __init__(
        self,
        connection: BrokerConnection | None,
        *,
        pending_msgs_limit: int,
        pending_bytes_limit: int,
        include_deliveries: bool = False,
    ) -> None:
        self._connection: BrokerConnection | None = connection
        self._include_deliveries: bool = include_deliveries
        self.knows_retained: bool = False
        """Whether the headers mark MQTT's retained publishes (see :mod:`fastiot.capture.shared`)."""
        self._active_connection: BrokerConnection | None = None
        self._lease: ConnectionLease[Any] | None = None
        self._pending_msgs_limit: int = pending_msgs_limit
        self._pending_bytes_limit: int = pending_bytes_limit
        self._feeds: list[Feed] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        # start() and stop() run one at a time: two overlapping starts (a widget's and a cell's) would
        # otherwise both subscribe, and every message would be collected twice.
        self._lifecycle: asyncio.Lock | None = None
        self._lifecycle_loop: asyncio.AbstractEventLoop | None = None
        # Registered by the rules of every on_*(callback, remove=False), each with its throttle and news.
        self._listeners: StatefulCallbackList[[Any], Listener] = StatefulCallbackList(
            self._what,
            lambda callback: Listener(callback=callback, min_interval=0.0),
            logger=_logger,
            hint=_SYNC_HINT,
        )
        # Whether any listener is registered, as a plain attribute: the hot path of a subclass reads it
        # for every message, where the list's __bool__ would cost a Python call.
        self._listening: bool = False
        self._waiters: list[_Waiter] = []
        self._wake_seq: int = _NEVER
        self._trigger_seq: int = _NEVER
        self._dispatch_scheduled: bool = False
        self._timer: asyncio.TimerHandle | None = None
        self._received: int = 0
        self._skipped: int = 0
        self._lost_before: int = 0
        self._started_ns: int = 0
        self._paused: bool = False
        # Listeners are not called while this is set (a paused index keeps counting, its views hold still).
        self._hold_listeners: bool = False
        self.error: PermissionDeniedError | None = None
        """Set when the server refused a subscription after the start (a permission taken away and a
        reconnect, or a config reload): the object no longer counts as running. ``start()`` tries again."""
        self._refused_callbacks: CallbackList[[PermissionDeniedError]] = CallbackList(
            f"{self._what} refusal", logger=_logger
        )

    # -- what subclasses provide --------------------------------------------------------------------

    def _subscription_plan(self) -> list[tuple[str, MessageHandler]]:
        """The (pattern, handler) pairs to get messages of; a handler is a plain function of a nats Msg."""
        raise NotImplementedError

    def _listener_news(self, listener: Listener) -> Any:
        """What to call ``listener`` with, or ``None`` if nothing happened since its last call."""
        raise NotImplementedError

    # -- life cycle ---------------------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        """Whether the subscriptions are active (and none was refused since the start)."""
        return bool(self._feeds) and self.error is None

    def on_refused(self, callback: Callable[[PermissionDeniedError], None], remove: bool = False) -> None:
        """Call ``callback(error)`` when the server refuses a subscription of this object after it started.

        ``callback`` is a plain function; the error is also kept in :attr:`error`.

        Example:
            >>> capture.on_refused(lambda err: print("no longer live:", err))  # doctest: +SKIP
        """
        self._refused_callbacks.register(callback, remove=remove)

    def _on_refused(self, err: PermissionDeniedError) -> None:
        if self.error is None:
            self.error = err
            _logger.error("%s of %s is no longer live: %s", self._what, err.subject, err)
            self._refused_callbacks(err)

    @property
    def include_deliveries(self) -> bool:
        """Whether JetStream consumers' deliveries (reply ``$JS.ACK.…``) count as messages too."""
        return self._include_deliveries

    @property
    def connection(self) -> BrokerConnection | None:
        """The broker connection in use (``None`` before the first start without an explicit one)."""
        return self._active_connection or self._connection

    async def _subscribe_plan(self, connection: BrokerConnection) -> list[Feed]:
        """Feeds of every pattern of the plan; on return the server has the subscriptions."""
        hub = shared_subscriptions(connection)
        feeds: list[Feed] = []
        try:
            for pattern, handler in self._subscription_plan():
                feed = await hub.attach(
                    pattern,
                    handler,
                    pending_msgs_limit=self._pending_msgs_limit,
                    pending_bytes_limit=self._pending_bytes_limit,
                    include_deliveries=self._include_deliveries,
                )
                feed.on_refused = self._on_refused
                feeds.append(feed)
        except BaseException:
            for feed in feeds:
                await _close_quietly(feed)
            raise
        self.knows_retained = hub.watches_retained
        self._on_subscribed()
        return feeds

    def _on_subscribed(self) -> None:
        """After the subscriptions are made; for subclasses."""

    async def start(self) -> Any:
        """Subscribe and start collecting. Starting a running object does nothing.

        Without an explicit connection this uses the workbench's shared connection until :meth:`stop`
        (:func:`fastiot.workbench.use_connection`), and ``workbench.shutdown()`` stops the object.

        Returns:
            The object itself, so ``capture = await MessageCapture(...).start()`` works.
        """
        if self._feeds and self.error is None:
            return self
        async with self._lifecycle_lock():
            if self._feeds and self.error is not None:  # refused since: subscribe anew
                await self._stop()
            if not self._feeds:
                self.error = None
                await self._start()
        return self

    def _lifecycle_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lifecycle is None or self._lifecycle_loop is not loop:  # a lock belongs to one loop
            self._lifecycle, self._lifecycle_loop = asyncio.Lock(), loop
        return self._lifecycle

    async def _start(self) -> None:
        lease = await use_connection(self._connection, owner=self)
        self._loop = asyncio.get_running_loop()
        self._active_connection = lease.connection
        try:
            self._feeds = await self._subscribe_plan(lease.connection)
        except BaseException:
            await lease.release()
            raise
        self._lease = lease
        self._started_ns = _time_ns()
        self._rearm()

    async def stop(self) -> None:
        """Unsubscribe. What was collected stays readable; :meth:`start` continues collecting."""
        async with self._lifecycle_lock():
            await self._stop()

    async def _stop(self) -> None:
        if self._feeds:
            self._lost_before = self.lost
            feeds, self._feeds = self._feeds, []
            for feed in feeds:
                await _close_quietly(feed)
        lease, self._lease = self._lease, None
        if lease is not None:
            await lease.release()  # in a script the last user of the shared connection closes it
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._dispatch_now()  # last notifications; waiters that can no longer be satisfied fail
        for waiter in self._waiters:
            if not waiter.future.done():
                waiter.future.set_exception(NotRunningError(f"the {self._what} was stopped while waiting"))
        self._waiters.clear()

    async def __aenter__(self) -> Any:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- counters -----------------------------------------------------------------------------------

    @property
    def lost(self) -> int:
        """Messages the NATS client discarded because this object fell behind (slow consumer).

        Zero unless the message rate exceeds what the callbacks handle for longer than the pending
        limits (``pending_msgs_limit`` / ``pending_bytes_limit``) can buffer.
        """
        return self._lost_before + sum(feed.lost for feed in self._feeds)

    @property
    def skipped(self) -> int:
        """Messages that arrived while paused and were not kept."""
        return self._skipped

    @property
    def is_paused(self) -> bool:
        """Whether the object is paused (see :meth:`pause`)."""
        return self._paused

    def pause(self) -> None:
        """Ignore arriving messages until :meth:`resume`; they are counted in :attr:`skipped`."""
        self._paused = True

    def resume(self) -> None:
        """Keep arriving messages again after :meth:`pause`."""
        self._paused = False

    # -- listeners and waiters ----------------------------------------------------------------------

    def _add_listener(
        self, callback: Callable[..., None], remove: bool, min_interval: float, mark: Any
    ) -> None:
        """Register (or with ``remove`` unregister) a throttled listener; its news start at ``mark``.

        By the rules of :class:`fastiot._callbacks.CallbackList`: removing a callback that is not
        registered does nothing, and registering one again keeps it once (with the new
        ``min_interval``, its news unchanged).
        """
        listeners = self._listeners
        if remove:
            if callback in listeners:
                listeners.register(callback, remove=True)
                self._listening = bool(listeners)
                self._rearm()
            return
        listeners.check(callback)
        if min_interval < 0:
            raise ValueError(f"min_interval must be >= 0 seconds, got {min_interval}")
        if callback in listeners:
            listeners.state(callback).min_interval = min_interval
            return
        listeners.register(callback)
        listener = listeners.state(callback)
        listener.min_interval = min_interval
        listener.mark = mark
        self._listening = True
        self._rearm()

    def _rearm(self) -> None:
        """Have the hot path call :meth:`_wake` when a listener or waiter needs to look."""
        if not self._dispatch_scheduled:
            wake_seq = self._received if self._listening else _NEVER
            for waiter in self._waiters:
                wake_seq = min(wake_seq, max(self._received, waiter.wake_seq))
            self._wake_seq = wake_seq
            self._update_trigger()

    def _update_trigger(self) -> None:
        """Recompute ``_trigger_seq``, the one number the hot path compares each message's seq with."""
        self._trigger_seq = self._wake_seq

    def _wake(self) -> None:
        self._wake_seq = _NEVER
        self._update_trigger()
        if not self._dispatch_scheduled and self._loop is not None:
            self._dispatch_scheduled = True
            self._loop.call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._dispatch_scheduled = False
        self._dispatch_now()
        self._rearm()

    def _on_timer(self) -> None:
        self._timer = None
        self._dispatch()

    def _call_listener(self, listener: Listener, news: Any) -> None:
        self._listeners.call_one(listener.callback, news)  # one that raises is logged

    def _dispatch_now(self) -> None:
        if self._waiters:
            pending = []
            for waiter in self._waiters:
                if waiter.future.done():
                    continue
                if waiter.done():
                    waiter.future.set_result(None)
                else:
                    pending.append(waiter)
            self._waiters = pending
        if not self._listening or self._hold_listeners:
            return
        now = time.monotonic()
        next_due = math.inf
        for listener in self._listeners.states():
            due = listener.last_call + listener.min_interval
            if now < due:
                next_due = min(next_due, due)
                continue
            news = self._listener_news(listener)
            if news is not None:
                listener.last_call = now
                self._call_listener(listener, news)
        if next_due < math.inf and self._timer is None and self._loop is not None and self._loop.is_running():
            self._timer = self._loop.call_later(next_due - now, self._on_timer)

    async def _wait(
        self,
        done: Callable[[], bool],
        timeout: float | None,
        describe: Callable[[], str],
        wake_seq: int = 0,
    ) -> None:
        if done():
            return
        if not self._feeds:
            raise NotRunningError(
                f"the {self._what} is not running, so {describe()} will not happen; "
                f"await start() first (or use `async with`)"
            )
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(_Waiter(done=done, future=future, wake_seq=wake_seq))
        self._rearm()
        try:
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            paused = " (it is paused: call resume())" if self._paused and self._pause_skips else ""
            raise WaitTimeoutError(f"{describe()} did not happen within {timeout} s{paused}") from None
        finally:
            if not future.done():
                future.cancel()

    async def sync(self, timeout: float | None = DEFAULT_WAIT_TIMEOUT) -> None:
        """Wait until every message the server sent before this call has been handled.

        Publish from the same connection (or ``await publisher.flush()`` on the publisher's
        :class:`NatsBrokerConnection` first); after ``sync`` returns, those messages are in (or, while
        paused, were skipped by) this object.

        Raises:
            WaitTimeoutError: If the backlog is not handled within ``timeout`` seconds.
            NotRunningError: If the object is not started.
        """
        if not self._feeds or self._active_connection is None:
            raise NotRunningError(f"the {self._what} is not running; await start() first")
        try:
            await asyncio.wait_for(self._active_connection.flush(), timeout)
        except (asyncio.TimeoutError, nats.errors.TimeoutError):
            raise WaitTimeoutError(f"the NATS server did not answer a flush within {timeout} s") from None
        subscriptions = list({id(s): s for feed in self._feeds for s in feed.subscriptions}.values())
        target = sum(s.delivered for s in subscriptions)

        def done() -> bool:
            return sum(handled_by_client(s) for s in subscriptions) >= target

        await self._wait(done, timeout, lambda: "handling the messages already sent")


async def _close_quietly(feed: Feed) -> None:
    """Close a feed; one whose connection is gone is gone already."""
    try:
        await feed.close()
    except Exception:  # the connection is gone, and the subscription with it
        pass
