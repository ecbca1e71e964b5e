"""SubjectIndex: live statistics of every subject seen on the broker.

The index subscribes to a pattern (everything, ``">"``, by default) and counts per subject: messages,
bytes, rate, first and last seen, and keeps the newest messages with their headers. Payloads are
decoded (by :mod:`fastiot.payloads`) only when somebody asks, so watching a busy broker with tens of
thousands of subjects costs a few counters per message.

This module collects; what the index tells about its subjects (counters, payloads, diffs, MQTT
topics, the DataFrame and tree) is :class:`fastiot.subjects.reading.SubjectIndexReading`, its base.

Example:
    >>> from fastiot.subjects import SubjectIndex
    >>> async def main(connection):
    ...     async with SubjectIndex(">", connection) as index:
    ...         await index.wait_for(10, timeout=5)
    ...         return index.to_dataframe().sort_values("rate", ascending=False)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from fastiot.capture._delivery import MessageView
from fastiot.capture.observer import DEFAULT_WAIT_TIMEOUT, BrokerObserver, Listener, MessageHandler
from fastiot.capture.shared import shared_subscriptions
from fastiot.core.broker_connection import (
    DEFAULT_PENDING_BYTES_LIMIT,
    DEFAULT_PENDING_MSGS_LIMIT,
    BrokerConnection,
)
from fastiot.core.data_models import Subject
from fastiot.core.subject_helper import subject_matches, subject_targets
from fastiot.env import env_broker
from fastiot.exceptions import InvalidSubjectError
from fastiot.payloads import BatchDecoder
from fastiot.rates import DEFAULT_RATE_WINDOW
from fastiot.subjects.entry import NOT_KEPT, SubjectEntry
from fastiot.subjects.reading import DEFAULT_HISTORY, SubjectIndexReading

if TYPE_CHECKING:
    from fastiot.capture import Message

__all__ = ["DEFAULT_HISTORY", "DEFAULT_MAX_BYTES", "DEFAULT_MAX_SUBJECTS", "ChangeCallback", "SubjectIndex"]

DEFAULT_MAX_SUBJECTS = 20_000
DEFAULT_MAX_BYTES = 64 * 1024**2
"""The payload bytes the kept messages of all subjects may hold together by default (64 MiB)."""
# Names of untracked subjects are remembered (to count them) up to this many.
_MAX_UNTRACKED_NAMES = 100_000
_INBOX_PREFIX = "_INBOX."

_time_ns = time.time_ns

# Called with the subjects that changed since the last call; an empty set means the index was cleared.
# Subjects in the set that are no longer ``in index`` were removed (by set_pattern).
ChangeCallback = Callable[[set[str]], None]


class SubjectIndex(SubjectIndexReading, BrokerObserver):
    """Live per-subject statistics of the messages on a NATS pattern.

    Per subject: message count, payload bytes, rate (messages/s over the last ``rate_window``
    seconds; a slow subject is averaged over its kept messages, so it never reads 0 while alive),
    first and last seen, the last decoded payload and headers, and the last ``history`` messages
    (for diffs and the numeric history of each field). Decoding is lazy: a message costs a few counter
    updates; payloads are decoded when :meth:`stats`, :meth:`last`, :meth:`messages` or
    :meth:`history` ask. :meth:`pause` holds the listeners (views freeze) but counting goes on, so
    counts and rates are right after :meth:`resume`. :meth:`set_pattern` changes the subscription.

    Args:
        pattern: The NATS pattern to watch (``">"``: everything), or a :class:`Subject` (its model is
            used to decode payloads).
        connection: The broker connection; ``None`` uses the notebook kernel's connection
            (``fastiot.workbench``), which also stops the index on ``workbench.shutdown()``.
        history: How many recent messages per subject are kept for diffs, numeric history and rate.
        max_bytes: The payload bytes the kept messages of all subjects may hold together. When they
            would hold more, every subject keeps fewer messages (down to its newest one), and a newest
            message that still does not fit is counted without its payload; the messages let go early
            are counted in :attr:`dropped_payloads`.
        max_subjects: The most subjects tracked; messages on further subjects are counted in
            :attr:`untracked_messages` and their subjects in :attr:`untracked_subjects`.
        include_inbox: Also track ``_INBOX.*`` subjects (request replies, one subject each); they are
            counted in :attr:`ignored_messages` otherwise.
        include_deliveries: Also count what JetStream consumers deliver (reply subject ``$JS.ACK.…``:
            somebody reading a recording, a KV watch): stored messages, not traffic published now.
        rate_window: Seconds :attr:`SubjectStats.rate` counts messages over.
        typed: Decode payloads on a FastIoTData model's subject to the model (see
            :func:`fastiot.payloads.decode`).
        pending_msgs_limit: Messages the NATS client may buffer for the index before it drops some.
        pending_bytes_limit: The same limit in bytes.

    Example:
        >>> from fastiot.subjects import SubjectIndex
        >>> async def main(connection):
        ...     index = await SubjectIndex("v1.>", connection).start()
        ...     await index.wait_for(2, subject="v1.thing.press_1.temperature", timeout=5)
        ...     changes = index.diff("v1.thing.press_1.temperature")
        ...     await index.stop()
        ...     return changes
    """

    _what = "subject index"
    _pause_skips = False

    def __init__(
        self,
        pattern: str | Subject = ">",
        connection: BrokerConnection | None = None,
        *,
        history: int = DEFAULT_HISTORY,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_subjects: int = DEFAULT_MAX_SUBJECTS,
        include_inbox: bool = False,
        include_deliveries: bool = False,
        rate_window: float = DEFAULT_RATE_WINDOW,
        typed: bool = True,
        pending_msgs_limit: int = DEFAULT_PENDING_MSGS_LIMIT,
        pending_bytes_limit: int = DEFAULT_PENDING_BYTES_LIMIT,
    ) -> None:
        super().__init__(
            connection,
            pending_msgs_limit=pending_msgs_limit,
            pending_bytes_limit=pending_bytes_limit,
            include_deliveries=include_deliveries,
        )
        self._pattern, self._msg_cls = _parse_pattern(pattern)
        if history < 1:
            raise ValueError(f"history must be >= 1, got {history}")
        if max_subjects < 1:
            raise ValueError(f"max_subjects must be >= 1, got {max_subjects}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        if rate_window <= 0:
            raise ValueError(f"rate_window must be > 0 seconds, got {rate_window}")
        self._history: int = history
        self._max_bytes: int = max_bytes
        self._keep: int = history  # messages kept per subject now (fewer once max_bytes is reached)
        self._kept_bytes: int = 0
        self._dropped_payloads: int = 0
        self._max_subjects: int = max_subjects
        self._include_inbox: bool = include_inbox
        # FASTIOT_NATS_INBOX_PREFIX moves this kernel's own reply inboxes; other clients' stay at _INBOX.
        self._inbox_prefixes: tuple[str, ...] = (_INBOX_PREFIX, f"{env_broker.inbox_prefix or '_INBOX'}.")
        self._typed: bool = typed
        self._rate_window_ns: int = int(rate_window * 1e9)
        self._entries: dict[str, SubjectEntry] = {}
        self._dirty: set[str] = set()
        self._untracked_messages: int = 0
        self._untracked_names: set[str] = set()
        self._ignored_messages: int = 0
        self._switching = asyncio.Lock()
        self._decoder: BatchDecoder = BatchDecoder(self._msg_cls, pattern=self._pattern, typed=typed)

    def __repr__(self) -> str:
        state = "paused" if self._paused else ("running" if self.is_running else "stopped")
        return (
            f"<SubjectIndex {self._pattern} {state}: {len(self._entries)} subjects, "
            f"{self._received} messages>"
        )

    # -- the hot path -------------------------------------------------------------------------------

    def _subscription_plan(self) -> list[tuple[str, MessageHandler]]:
        return [(self._pattern, self._handler())]

    def _handler(self) -> MessageHandler:
        """The handler of every message: counts and keeps the payload, nothing else."""
        entries = self._entries  # cleared in place, never replaced

        def on_msg(msg: Message) -> None:
            subject = msg.subject
            entry = entries.get(subject)
            if entry is None:
                entry = self._track(subject)
                if entry is None:
                    return
            now = _time_ns()
            data = msg.data
            size = len(data)
            entry.count += 1
            entry.bytes += size
            entry.last_seen = now
            ring = entry.kept
            kept = self._kept_bytes + size
            if len(ring) == ring.maxlen:
                kept -= len(ring[1])  # the appends let the oldest message go
                if self._keep < self._history:  # earlier than `history` would: max_bytes is full
                    self._dropped_payloads += 1
            ring.append(now)
            ring.append(data)
            self._kept_bytes = kept
            if kept > self._max_bytes:
                self._shed(entry)
            headers = msg.headers
            if headers is not None or entry.headers is not None:
                entry.note_headers(headers)
            seq = self._received
            self._received = seq + 1
            if self._listening:
                self._dirty.add(subject)
            if seq >= self._trigger_seq:
                self._wake()

        return on_msg

    def add_messages(self, messages: Iterable[tuple[str, bytes, dict[str, str] | None]]) -> None:
        r"""Count ``(subject, data, headers)`` messages as if they had arrived now.

        For an index that shows messages from elsewhere than a subscription: a recording at a
        timeline's cursor (:mod:`fastiot.history.follow`). They go through the same path as received ones.

        Example:
            >>> index = SubjectIndex()
            >>> index.add_messages([("v1.x", b"\x01", None)])
            >>> index.last_payload("v1.x")
            1
        """
        handler = self._handler()
        view = MessageView()
        for subject, data, headers in messages:
            view.subject, view.data, view.headers = subject, data, headers
            handler(view)

    def _track(self, subject: str) -> SubjectEntry | None:
        if not self._include_inbox and subject.startswith(self._inbox_prefixes):
            self._ignored_messages += 1
            return None
        if len(self._entries) >= self._max_subjects:
            self._untracked_messages += 1
            if len(self._untracked_names) < _MAX_UNTRACKED_NAMES:
                self._untracked_names.add(subject)
            return None
        entry = self._entries[subject] = SubjectEntry(_time_ns(), self._keep)
        return entry

    def _shed(self, newest: SubjectEntry) -> None:
        """Keep fewer messages per subject until the payloads fit ``max_bytes`` (with room to grow)."""
        target = self._max_bytes * 3 // 4  # so that this pass over every subject stays rare
        while self._kept_bytes > target and self._keep > 1:
            self._keep = max(1, min(self._keep - 1, self._keep * target // self._kept_bytes))
            for entry in self._entries.values():
                gone, size = entry.keep_only(self._keep)
                self._dropped_payloads += gone
                self._kept_bytes -= size
        if self._kept_bytes > self._max_bytes:  # one message per subject is too much: not this payload
            size = len(newest.kept[-1])
            newest.kept[-1] = NOT_KEPT
            self._kept_bytes -= size
            self._dropped_payloads += 1

    # -- pause, pattern -----------------------------------------------------------------------------

    def pause(self) -> None:
        """Hold the listeners (views freeze) while counting goes on; :meth:`resume` tells them the rest."""
        self._paused = True
        self._hold_listeners = True

    def resume(self) -> None:
        """Call the listeners again, first with every subject that changed while paused."""
        self._paused = False
        self._hold_listeners = False
        if self._loop is not None:
            self._wake()

    async def set_pattern(self, pattern: str | Subject) -> None:
        """Watch another pattern: subscribe to it, drop the subjects it does not match.

        The new subscription is in place before the old one goes, and a message both deliver during
        the hand-over is counted once. Listeners get the subjects dropped. Calls are taken one at a time.

        Raises:
            InvalidSubjectError: If ``pattern`` is not a NATS pattern (a ``ValueError``).

        Example:
            >>> async def main(index):
            ...     await index.set_pattern("v1.thing.press_1.>")
        """
        parsed = _parse_pattern(pattern)
        async with self._switching:
            await self._switch_to(*parsed)

    async def set_include_deliveries(self, include: bool) -> None:
        """Count what JetStream consumers deliver too (``True``), or only what is published (``False``).

        The subscription is handed over at one instant, as :meth:`set_pattern` does; what was counted
        stays.

        Example:
            >>> async def main(index):
            ...     await index.set_include_deliveries(True)  # a recording being read shows up
        """
        async with self._switching:
            self._include_deliveries = bool(include)
            connection = self._active_connection
            if self._feeds and connection is not None:
                hub = shared_subscriptions(connection)
                self._feeds = [
                    await hub.replace(feed, feed.pattern, include_deliveries=self._include_deliveries)
                    for feed in self._feeds
                ]

    async def _switch_to(self, pattern: str, msg_cls: type | None) -> None:
        self._pattern, self._msg_cls = pattern, msg_cls
        self._decoder = BatchDecoder(msg_cls, pattern=pattern, typed=self._typed)
        connection = self._active_connection
        if self._feeds and connection is not None:
            # One instant splits the stream: the old feed handles what the server sent before it, the
            # new one what came after, so a message both patterns match is counted once.
            hub = shared_subscriptions(connection)
            self._feeds = [await hub.replace(feed, pattern) for feed in self._feeds]
        self._drop_unmatched()

    def _drop_unmatched(self) -> None:
        dropped = {s for s in self._entries if not subject_matches(s, self._pattern)}
        for subject in dropped:
            entry = self._entries.pop(subject)
            self._received -= entry.count
            self._kept_bytes -= sum(map(len, entry.payloads))
        self._untracked_names = {s for s in self._untracked_names if subject_matches(s, self._pattern)}
        if dropped and self._listeners:
            self._dirty |= dropped
            if self._loop is not None:
                self._wake()

    # -- listeners ----------------------------------------------------------------------------------

    def on_change(self, callback: ChangeCallback, remove: bool = False, *, min_interval: float = 0.0) -> None:
        """Call ``callback(subjects)`` with the set of subjects that got messages since its last call.

        Calls are coalesced: at most one per event-loop iteration and one per ``min_interval`` seconds.
        New subjects are in the set too, and subjects dropped by :meth:`set_pattern` (no longer
        ``in index``); after :meth:`clear` the callback gets an empty set. Not called while paused.

        Args:
            callback: A plain (not async) function taking a set of subject names.
            remove: Unregister ``callback`` instead.
            min_interval: The least time in seconds between two calls of this callback.

        Raises:
            TypeError: If ``callback`` is an async function or not callable.

        Example:
            >>> index = SubjectIndex()
            >>> index.on_change(lambda changed: print(sorted(changed)), min_interval=1.0)
        """
        self._add_listener(callback, remove, min_interval, mark=set())

    def _dispatch_now(self) -> None:
        if self._dirty and not self._hold_listeners:
            dirty, self._dirty = self._dirty, set()
            for listener in self._listeners.states():
                listener.mark |= dirty
        super()._dispatch_now()

    def _listener_news(self, listener: Listener) -> Any:
        if not listener.mark:
            return None
        news, listener.mark = listener.mark, set()
        return news

    # -- control ------------------------------------------------------------------------------------

    def clear(self) -> None:
        """Forget every subject and count from zero; listeners of :meth:`on_change` get an empty set."""
        self._received = 0
        self._untracked_messages = 0
        self._ignored_messages = 0
        self._untracked_names.clear()
        self._entries.clear()
        self._keep, self._kept_bytes = self._history, 0
        self._dirty.clear()
        for listener in self._listeners.states():
            listener.mark = set()
            self._call_listener(listener, set())
        self._rearm()

    async def wait_for(
        self, n: int, timeout: float | None = DEFAULT_WAIT_TIMEOUT, *, subject: str | None = None
    ) -> int:
        """Wait until ``n`` messages were counted (on ``subject``, or on all subjects).

        Args:
            n: The number of messages to wait for.
            timeout: Seconds to wait at most; ``None`` waits forever.
            subject: Count only this subject's messages.

        Returns:
            The count when the wait ended.

        Raises:
            WaitTimeoutError: If fewer than ``n`` messages arrived within ``timeout``.
            NotRunningError: If the index is not started (or is stopped while waiting).

        Example:
            >>> async def main(index):
            ...     await index.wait_for(3, subject="v1.thing.press_1.temperature", timeout=2.0)
        """
        if subject is None:
            await self._wait(
                lambda: self._received >= n,
                timeout,
                lambda: f"{n} messages on {self._pattern!r} (got {self._received})",
                wake_seq=n - 1,
            )
            return self._received

        def count() -> int:
            entry = self._entries.get(subject)
            return entry.count if entry is not None else 0

        await self._wait(
            lambda: count() >= n, timeout, lambda: f"{n} messages on {subject!r} (got {count()})"
        )
        return count()


def _parse_pattern(pattern: str | Subject) -> tuple[str, type | None]:
    targets = subject_targets(pattern, example="'>' or 'v1.thing.>'")
    if len(targets) > 1:
        raise InvalidSubjectError(
            f"a subject index watches one pattern, got {len(targets)}; give the pattern that covers them "
            f"(e.g. 'v1.>'), or one index per pattern"
        )
    return targets[0]
