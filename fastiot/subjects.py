"""SubjectIndex: live statistics of every subject seen on the broker.

The index subscribes to a pattern (everything, ``">"``, by default) and counts per subject: messages,
bytes, rate, first and last seen. Payloads are decoded only when somebody asks (the last payload,
the recent values of each numeric field), so watching a busy broker costs a few counters per message.

Example:
    >>> from fastiot.subjects import SubjectIndex
    >>> async def main(connection):
    ...     async with SubjectIndex(">", connection) as index:
    ...         await index.wait_for(10, timeout=5)
    ...         return index.to_dataframe().sort_values("rate", ascending=False)
"""

from __future__ import annotations

import collections
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from fastiot.capture import (
    DEFAULT_RATE_WINDOW,
    DEFAULT_WAIT_TIMEOUT,
    NotRunningError,
    WaitTimeoutError,
    _BrokerObserver,
    _Listener,
    decode_payload,
    flatten_payload,
    string_array,
)
from fastiot.core.broker_connection import (
    DEFAULT_PENDING_BYTES_LIMIT,
    DEFAULT_PENDING_MSGS_LIMIT,
    NatsBrokerConnection,
)
from fastiot.core.data_models import Subject

if TYPE_CHECKING:
    import pandas as pd
    from nats.aio.msg import Msg as NatsMsg

__all__ = [
    "DEFAULT_HISTORY",
    "DEFAULT_MAX_SUBJECTS",
    "ChangeCallback",
    "NotRunningError",
    "SubjectIndex",
    "SubjectStats",
    "SubjectTreeNode",
    "WaitTimeoutError",
]

# How many recent messages per subject are kept (undecoded) for the numeric history and the rate.
DEFAULT_HISTORY = 50
DEFAULT_MAX_SUBJECTS = 10_000
# Numeric fields followed per subject at most (a payload with more is not a sensor reading).
_MAX_HISTORY_FIELDS = 100
# Names of untracked subjects are remembered (to count them) up to this many.
_MAX_UNTRACKED_NAMES = 100_000
_INBOX_PREFIX = "_INBOX."

_time_ns = time.time_ns

# Called with the subjects that changed since the last call; an empty set means the index was cleared.
ChangeCallback = Callable[[set[str]], None]


def _to_datetime(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)


@dataclass(frozen=True)
class SubjectStats:
    """A snapshot of one subject's statistics (see :meth:`SubjectIndex.stats`)."""

    subject: str
    count: int
    """Messages seen."""
    bytes: int
    """Payload bytes seen."""
    rate: float
    """Messages per second over the index's rate window."""
    first_seen: datetime
    last_seen: datetime
    last_payload: Any
    """The newest payload, decoded (a dict, a model, or a plain value); ``None`` if it did not decode."""
    last_error: str | None
    """Why the newest payload did not decode, or ``None``."""
    history: dict[str, list[float]]
    """The recent values of each numeric field (flattened names), oldest first, for sparklines."""


@dataclass
class SubjectTreeNode:
    """One token of the subject hierarchy, with the totals of every subject at or below it.

    Example:
        >>> root = SubjectTreeNode(token="", path="")
        >>> [node.path for _, node in root.walk()]
        ['']
    """

    token: str
    """The last token of :attr:`path` (``""`` for the root)."""
    path: str
    """The subject prefix this node stands for, e.g. ``v1.thing.press_1``."""
    count: int = 0
    bytes: int = 0
    rate: float = 0.0
    subjects: int = 0
    """How many subjects are at or below this node."""
    is_subject: bool = False
    """Whether :attr:`path` itself is a subject that carried messages."""
    children: dict[str, SubjectTreeNode] = field(default_factory=dict)

    def walk(self, depth: int = 0) -> Iterator[tuple[int, SubjectTreeNode]]:
        """Yield ``(depth, node)`` for this node and every node below it, depth first, in token order."""
        yield depth, self
        for child in self.children.values():
            yield from child.walk(depth + 1)

    def find(self, path: str) -> SubjectTreeNode | None:
        """The node of a subject prefix below this node, or ``None``."""
        node: SubjectTreeNode | None = self
        for token in path.split(".") if path else []:
            node = node.children.get(token) if node is not None else None
        return node

    def to_dict(self) -> dict[str, Any]:
        """The tree as nested plain dicts (e.g. for JSON)."""
        return {
            "token": self.token,
            "path": self.path,
            "count": self.count,
            "bytes": self.bytes,
            "rate": self.rate,
            "subjects": self.subjects,
            "is_subject": self.is_subject,
            "children": [child.to_dict() for child in self.children.values()],
        }


class _Entry:
    """The live counters of one subject. Payloads stay undecoded until somebody asks."""

    __slots__ = (
        "bytes",
        "count",
        "decoded_count",
        "first_seen",
        "history",
        "last_error",
        "last_payload",
        "last_seen",
        "payloads",
        "times",
    )

    def __init__(self, now: int, history: int) -> None:
        self.count: int = 0
        self.bytes: int = 0
        self.first_seen: int = now
        self.last_seen: int = now
        # Two deques, not one of tuples: long-lived tuples would each cost the garbage collector a visit.
        self.times: collections.deque[int] = collections.deque(maxlen=history)
        self.payloads: collections.deque[bytes] = collections.deque(maxlen=history)
        self.decoded_count: int = 0
        self.history: dict[str, collections.deque[float]] = {}
        self.last_payload: Any = None
        self.last_error: str | None = None


class SubjectIndex(_BrokerObserver):
    """Live per-subject statistics of the messages on a NATS pattern.

    Per subject: message count, payload bytes, rate (messages/s over the last ``rate_window``
    seconds), first and last seen, the last decoded payload and the last ``history`` values of each
    numeric field. Decoding is lazy: a message costs a few counter updates; payloads are decoded when
    :meth:`stats`, :meth:`history` or :meth:`last_payload` ask, at most ``history`` per subject.

    Args:
        pattern: The NATS pattern to watch (``">"``: everything), or a :class:`Subject` (its model is
            used to decode payloads).
        connection: The broker connection; ``None`` uses the notebook kernel's connection
            (``fastiot.workbench``), which also stops the index on ``workbench.shutdown()``.
        history: How many recent messages per subject are kept for the numeric history and rate.
        max_subjects: The most subjects tracked; messages on further subjects are counted in
            :attr:`untracked_messages` and their subjects in :attr:`untracked_subjects`.
        include_inbox: Also track ``_INBOX.*`` subjects (request replies, one subject each); they are
            counted in :attr:`ignored_messages` otherwise.
        rate_window: Seconds :attr:`SubjectStats.rate` averages over.
        pending_msgs_limit: Messages the NATS client may buffer for the index before it drops some.
        pending_bytes_limit: The same limit in bytes.

    Example:
        >>> from fastiot.subjects import SubjectIndex
        >>> async def main(connection):
        ...     index = await SubjectIndex("v1.>", connection).start()
        ...     await index.wait_for(1, subject="v1.thing.press_1.temperature", timeout=5)
        ...     tree = index.tree()
        ...     await index.stop()
        ...     return tree.find("v1.thing").count
    """

    _what = "subject index"

    def __init__(
        self,
        pattern: str | Subject = ">",
        connection: NatsBrokerConnection | None = None,
        *,
        history: int = DEFAULT_HISTORY,
        max_subjects: int = DEFAULT_MAX_SUBJECTS,
        include_inbox: bool = False,
        rate_window: float = DEFAULT_RATE_WINDOW,
        pending_msgs_limit: int = DEFAULT_PENDING_MSGS_LIMIT,
        pending_bytes_limit: int = DEFAULT_PENDING_BYTES_LIMIT,
    ) -> None:
        super().__init__(
            connection, pending_msgs_limit=pending_msgs_limit, pending_bytes_limit=pending_bytes_limit
        )
        if isinstance(pattern, Subject):
            self._pattern: str = pattern.name
            self._msg_cls: type | None = pattern.msg_cls
        elif isinstance(pattern, str) and pattern and not any(c.isspace() for c in pattern):
            self._pattern = pattern
            self._msg_cls = None
        else:
            raise ValueError(f"{pattern!r} is not a NATS subject pattern; use e.g. '>' or 'v1.thing.>'")
        if history < 1:
            raise ValueError(f"history must be >= 1, got {history}")
        if max_subjects < 1:
            raise ValueError(f"max_subjects must be >= 1, got {max_subjects}")
        if rate_window <= 0:
            raise ValueError(f"rate_window must be > 0 seconds, got {rate_window}")
        self._history: int = history
        self._max_subjects: int = max_subjects
        self._include_inbox: bool = include_inbox
        self._rate_window_ns: int = int(rate_window * 1e9)
        self._entries: dict[str, _Entry] = {}
        self._dirty: set[str] = set()
        self._untracked_messages: int = 0
        self._untracked_names: set[str] = set()
        self._ignored_messages: int = 0
        self._handled_before_clear: int = 0

    def __repr__(self) -> str:
        state = "paused" if self._paused else ("running" if self.is_running else "stopped")
        return (
            f"<SubjectIndex {self._pattern} {state}: {len(self._entries)} subjects, "
            f"{self._received} messages>"
        )

    # -- the hot path -------------------------------------------------------------------------------

    def _subscription_plan(self) -> list[tuple[str, Callable[[NatsMsg], Any]]]:
        return [(self._pattern, self._on_msg)]

    async def _on_msg(self, msg: NatsMsg) -> None:
        if self._paused:
            self._on_paused_msg()
            return
        subject = msg.subject
        entry = self._entries.get(subject)
        if entry is None:
            entry = self._track(subject)
            if entry is None:
                return
        now = _time_ns()
        data = msg.data
        entry.count += 1
        entry.bytes += len(data)
        entry.last_seen = now
        entry.times.append(now)
        entry.payloads.append(data)
        seq = self._received
        self._received = seq + 1
        if self._listeners:
            self._dirty.add(subject)
        if seq >= self._trigger_seq:
            self._wake()

    def _on_paused_msg(self) -> None:
        self._skipped += 1
        if self._waiters:
            self._wake()

    def _track(self, subject: str) -> _Entry | None:
        if not self._include_inbox and subject.startswith(_INBOX_PREFIX):
            self._ignored_messages += 1
            return None
        if len(self._entries) >= self._max_subjects:
            self._untracked_messages += 1
            if len(self._untracked_names) < _MAX_UNTRACKED_NAMES:
                self._untracked_names.add(subject)
            return None
        entry = self._entries[subject] = _Entry(_time_ns(), self._history)
        return entry

    def _handled_total(self) -> int:
        return (
            self._handled_before_clear
            + self._received
            + self._skipped
            + self._untracked_messages
            + self._ignored_messages
        )

    # -- listeners ----------------------------------------------------------------------------------

    def on_change(self, callback: ChangeCallback, remove: bool = False, *, min_interval: float = 0.0) -> None:
        """Call ``callback(subjects)`` with the set of subjects that got messages since its last call.

        Calls are coalesced: at most one per event-loop iteration and one per ``min_interval`` seconds.
        New subjects are in the set too; after :meth:`clear` the callback gets an empty set.

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
        if self._dirty:
            dirty, self._dirty = self._dirty, set()
            for listener in self._listeners:
                listener.mark |= dirty
        super()._dispatch_now()

    def _listener_news(self, listener: _Listener) -> Any:
        if not listener.mark:
            return None
        news, listener.mark = listener.mark, set()
        return news

    # -- reading ------------------------------------------------------------------------------------

    @property
    def msg_cls(self) -> type | None:
        """The model payloads decode to when the index was made from a Subject, else None (msgpack/JSON)."""
        return self._msg_cls

    @property
    def pattern(self) -> str:
        """The NATS pattern watched."""
        return self._pattern

    @property
    def received(self) -> int:
        """Messages counted in the statistics since the index was made or last cleared."""
        return self._received

    @property
    def untracked_messages(self) -> int:
        """Messages not counted because ``max_subjects`` subjects were tracked already."""
        return self._untracked_messages

    @property
    def untracked_subjects(self) -> int:
        """Distinct subjects not tracked because of ``max_subjects`` (counted up to 100,000)."""
        return len(self._untracked_names)

    @property
    def ignored_messages(self) -> int:
        """Messages on ``_INBOX.*`` subjects, not tracked unless ``include_inbox``."""
        return self._ignored_messages

    @property
    def subjects(self) -> list[str]:
        """The tracked subjects, sorted."""
        return sorted(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, subject: object) -> bool:
        return subject in self._entries

    def __getitem__(self, subject: str) -> SubjectStats:
        return self.stats(subject)

    def _entry(self, subject: str) -> _Entry:
        try:
            return self._entries[subject]
        except KeyError:
            raise KeyError(
                f"no messages on {subject!r} yet (tracking {len(self._entries)} subjects on "
                f"{self._pattern!r}; see .subjects)"
            ) from None

    def _rate(self, entry: _Entry, now: int) -> float:
        window = min(self._rate_window_ns, max(1_000_000_000, now - entry.first_seen))
        cutoff = now - window
        times = entry.times
        recent = 0
        for t in reversed(times):
            if t < cutoff:
                break
            recent += 1
        if recent and recent == len(times) and entry.count > recent:
            # Every kept message is in the window and there were more: use the time they span.
            return recent / max((now - times[0]) / 1e9, 1e-3)
        return recent / (window / 1e9)

    def _decode_new(self, entry: _Entry) -> None:
        new = entry.count - entry.decoded_count
        if new <= 0:
            return
        entry.decoded_count = entry.count
        payloads = entry.payloads
        for data in itertools.islice(payloads, max(0, len(payloads) - new), None):
            payload, error = decode_payload(data, self._msg_cls)
            entry.last_payload, entry.last_error = payload, error
            if error is not None:
                continue
            for name, value in flatten_payload(payload).items():
                if type(value) is not float and type(value) is not int:
                    continue  # bools are ints, but not a measurement
                values = entry.history.get(name)
                if values is None:
                    if len(entry.history) >= _MAX_HISTORY_FIELDS:
                        continue
                    values = entry.history[name] = collections.deque(maxlen=self._history)
                values.append(value)

    def stats(self, subject: str) -> SubjectStats:
        """A snapshot of one subject's statistics, decoding its newest payloads if needed.

        Raises:
            KeyError: If the subject has not been seen.

        Example:
            >>> index = SubjectIndex()
            >>> "v1.thing.press_1.temperature" in index
            False
        """
        entry = self._entry(subject)
        self._decode_new(entry)
        return SubjectStats(
            subject=subject,
            count=entry.count,
            bytes=entry.bytes,
            rate=self._rate(entry, _time_ns()),
            first_seen=_to_datetime(entry.first_seen),
            last_seen=_to_datetime(entry.last_seen),
            last_payload=entry.last_payload,
            last_error=entry.last_error,
            history={name: list(values) for name, values in entry.history.items()},
        )

    def last_payload(self, subject: str) -> Any:
        """The newest payload of a subject, decoded; ``None`` if it did not decode (see :meth:`stats`)."""
        entry = self._entry(subject)
        self._decode_new(entry)
        return entry.last_payload

    def history(self, subject: str) -> dict[str, list[float]]:
        """The last values of each numeric field of a subject (flattened names), oldest first."""
        entry = self._entry(subject)
        self._decode_new(entry)
        return {name: list(values) for name, values in entry.history.items()}

    def recent(self, subject: str, n: int = DEFAULT_HISTORY) -> list[tuple[datetime, bytes]]:
        """The newest ``n`` (receive time, raw payload) pairs of a subject, newest first.

        At most ``history`` are kept per subject; decode them with :func:`fastiot.capture.decode_payload`.

        Raises:
            KeyError: If the subject has not been seen.

        Example:
            >>> async def main(index):
            ...     for received_at, payload in index.recent("v1.thing.press_1.temperature", 5):
            ...         print(received_at, len(payload))
        """
        entry = self._entry(subject)
        if n <= 0:
            return []
        times = list(itertools.islice(reversed(entry.times), n))
        payloads = list(itertools.islice(reversed(entry.payloads), n))
        return [(_to_datetime(t), p) for t, p in zip(times, payloads, strict=True)]

    def to_dataframe(self) -> pd.DataFrame:
        """One row per subject, sorted by subject.

        Columns: ``subject``, ``count``, ``rate`` (messages/s), ``bytes``, ``first_seen`` and
        ``last_seen`` (``datetime64[ns, UTC]``).

        Example:
            >>> SubjectIndex().to_dataframe().columns.tolist()
            ['subject', 'count', 'rate', 'bytes', 'first_seen', 'last_seen']
        """
        import numpy as np
        import pandas as pd

        now = _time_ns()
        subjects = sorted(self._entries)
        entries = [self._entries[s] for s in subjects]
        utc = pd.DatetimeTZDtype("ns", "UTC")
        return pd.DataFrame(
            {
                "subject": string_array(subjects),
                "count": np.array([e.count for e in entries], dtype=np.int64),
                "rate": np.array([self._rate(e, now) for e in entries], dtype=np.float64),
                "bytes": np.array([e.bytes for e in entries], dtype=np.int64),
                "first_seen": pd.array(
                    np.array([e.first_seen for e in entries], dtype=np.int64).view("M8[ns]"), dtype=utc
                ),
                "last_seen": pd.array(
                    np.array([e.last_seen for e in entries], dtype=np.int64).view("M8[ns]"), dtype=utc
                ),
            }
        )

    def tree(self) -> SubjectTreeNode:
        """The subjects grouped by their dot-separated tokens, with totals at every level.

        Returns:
            The root node (``path == ""``); children are sorted by token.

        Example:
            >>> SubjectIndex().tree().subjects
            0
        """
        now = _time_ns()
        root = SubjectTreeNode(token="", path="")
        for subject, entry in self._entries.items():
            rate = self._rate(entry, now)
            node = root
            nodes = [root]
            for token in subject.split("."):
                child = node.children.get(token)
                if child is None:
                    path = f"{node.path}.{token}" if node.path else token
                    child = node.children[token] = SubjectTreeNode(token=token, path=path)
                node = child
                nodes.append(node)
            node.is_subject = True
            for node in nodes:
                node.count += entry.count
                node.bytes += entry.bytes
                node.rate += rate
                node.subjects += 1
        _sort_tree(root)
        return root

    # -- control ------------------------------------------------------------------------------------

    def clear(self) -> None:
        """Forget every subject and count from zero; listeners of :meth:`on_change` get an empty set."""
        self._handled_before_clear += self._received + self._untracked_messages + self._ignored_messages
        self._received = 0
        self._untracked_messages = 0
        self._ignored_messages = 0
        self._untracked_names.clear()
        self._entries.clear()
        self._dirty.clear()
        for listener in self._listeners:
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


def _sort_tree(node: SubjectTreeNode) -> None:
    if node.children:
        node.children = dict(sorted(node.children.items()))
        for child in node.children.values():
            _sort_tree(child)
