"""What a SubjectIndex reports: per-subject snapshots, kept messages, and the subject tree.

Example:
    >>> root = build_tree([("v1.a.x", 3, 30, 1.5, 0), ("v1.b", 1, 10, 0.5, 0)], sort="count", descending=True)
    >>> [(node.path, node.count) for _, node in root.walk()]
    [('', 4), ('v1', 4), ('v1.a', 3), ('v1.a.x', 3), ('v1.b', 1)]
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from fastiot.payloads import Decoded

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "SORT_KEYS",
    "SubjectCounter",
    "SubjectCounters",
    "SubjectMessage",
    "SubjectStats",
    "SubjectTreeNode",
    "build_tree",
    "to_datetime",
]

SORT_KEYS = ("name", "count", "rate", "bytes", "last_seen")
"""What subjects and tree nodes can be sorted by."""


def to_datetime(ns: int) -> datetime:
    """A time in ns since the epoch as a timezone-aware UTC datetime."""
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
    """Messages per second (never 0.0 while the subject is alive, however slow; see :mod:`fastiot.rates`)."""
    first_seen: datetime
    last_seen: datetime
    last_payload: Any
    """The newest payload, decoded (a dict, a model, text, ...); ``None`` if it did not decode."""
    last_error: str | None
    """Why the newest payload did not decode, or ``None``."""
    history: dict[str, list[float]]
    """The recent values of each numeric field (flattened paths), oldest first, for sparklines."""
    last: Decoded | None = None
    """The newest payload as :class:`~fastiot.payloads.Decoded` (kind, value, error, note)."""
    last_headers: dict[str, str] | None = None
    """The NATS headers of the newest message, or ``None`` if it had none."""
    rate_per_minute: float = 0.0
    """:attr:`rate` times 60: below one per second, views show this."""
    mqtt_topic: str | None = None
    """The MQTT topic, when an MQTT client published the newest message (``tele/plug_1/SENSOR``)."""
    mqtt_qos: int | None = None
    """The QoS it was published with (MQTT messages only)."""
    mqtt_retained: bool = False
    """It is the topic's retained message too (seen when the index also sees ``$MQTT.rmsgs.>``)."""


@dataclass(frozen=True)
class SubjectCounter:
    """One subject's counters, read without decoding anything (see :meth:`SubjectIndex.counter`)."""

    count: int
    """Messages seen."""
    bytes: int
    """Payload bytes seen."""
    last_seen_ns: int
    """When the newest message came, in ns since the epoch."""


@dataclass(frozen=True)
class SubjectCounters:
    """Every tracked subject's counters at one instant, as arrays (see :meth:`SubjectIndex.counters`).

    ``subjects[i]`` has ``count[i]`` messages, ``bytes[i]`` payload bytes and its newest message at
    ``last_seen_ns[i]``. The order is the order the subjects were first seen: a subject keeps its
    position until :meth:`~SubjectIndex.clear` or a :meth:`~SubjectIndex.set_pattern` that drops
    subjects, so a view can keep positions from one read to the next.
    """

    subjects: list[str]
    count: np.ndarray
    """int64 per subject."""
    bytes: np.ndarray
    """int64 per subject."""
    last_seen_ns: np.ndarray
    """int64 per subject."""

    def __len__(self) -> int:
        return len(self.subjects)


@dataclass(frozen=True)
class SubjectMessage:
    """One kept message of a subject (see :meth:`SubjectIndex.messages`)."""

    subject: str
    received_at: datetime
    data: bytes
    """The raw payload."""
    headers: dict[str, str] | None
    """The NATS headers, or ``None``."""
    decoded: Decoded
    """The payload decoded by :func:`fastiot.payloads.decode`."""

    @property
    def mqtt_topic(self) -> str | None:
        """The MQTT topic, if an MQTT client published it (nats-server's ``Nmqtt-Pub`` header)."""
        from fastiot.mqtt.topics import is_mqtt_message, subject_to_topic

        return subject_to_topic(self.subject) if is_mqtt_message(self.headers) else None

    @property
    def mqtt_qos(self) -> int | None:
        """The QoS an MQTT client published it with; ``None`` for a NATS publish."""
        from fastiot.mqtt.topics import mqtt_qos

        return mqtt_qos(self.headers)


@dataclass(slots=True)
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
    last_seen_ns: int = 0
    """When the newest message at or below this node arrived (ns since the epoch; 0: never)."""

    @property
    def last_seen(self) -> datetime | None:
        """When the newest message at or below this node arrived, or ``None``."""
        return to_datetime(self.last_seen_ns) if self.last_seen_ns else None

    def walk(self, depth: int = 0) -> Iterator[tuple[int, SubjectTreeNode]]:
        """Yield ``(depth, node)`` for this node and every node below it, depth first, in child order."""
        stack = [(depth, self)]
        while stack:  # no recursion: subjects may have hundreds of tokens
            level, node = stack.pop()
            yield level, node
            stack.extend((level + 1, child) for child in reversed(node.children.values()))

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


def build_tree(
    rows: Iterable[tuple[str, int, int, float, int]], *, sort: str = "name", descending: bool = False
) -> SubjectTreeNode:
    """The tree of ``(subject, count, bytes, rate, last_seen_ns)`` rows, children sorted by ``sort``.

    Raises:
        ValueError: If ``sort`` is none of :data:`SORT_KEYS`.
    """
    if sort not in SORT_KEYS:
        raise ValueError(f"cannot sort the tree by {sort!r}; use one of {', '.join(SORT_KEYS)}")
    root = SubjectTreeNode(token="", path="")
    for subject, count, size, rate, last_seen in rows:
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
            node.count += count
            node.bytes += size
            node.rate += rate
            node.subjects += 1
            if last_seen > node.last_seen_ns:
                node.last_seen_ns = last_seen
    # Ties in name order either way: a stable sort by the number (reverse keeps ties in place) of the
    # children in name order; attrgetter reads the keys in C.
    attribute = {"name": "token", "last_seen": "last_seen_ns"}.get(sort, sort)
    by_token, key = operator.attrgetter("token"), operator.attrgetter(attribute)
    stack = [root]
    while stack:
        node = stack.pop()
        if node.children:
            ordered = sorted(node.children.values(), key=by_token)
            if attribute != "token" or descending:
                ordered.sort(key=key, reverse=descending)
            node.children = {child.token: child for child in ordered}
            stack.extend(child for child in ordered if child.children)
    return root
