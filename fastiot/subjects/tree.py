"""The subject tree: the token tree of an index's subjects, flattened to rows (a SubjectBrowser's model).

:class:`SubjectTree` keeps one node per subject token (``v1`` > ``thing`` > ``press_1`` >
``temperature``). The numbers of a row (messages and newest message at or below it) are not kept in
the nodes: each render takes one snapshot of every subject's counters as arrays
(:meth:`fastiot.subjects.SubjectIndex.counters`, nothing decoded), and a folder's totals are one numpy
sum over the slots of the subjects below it (each folder keeps that list, extended as subjects come).
A render therefore costs one pass over the counters in numpy plus the rows in view, however many
subjects changed; with 10,000 subjects busy that is about a millisecond instead of a walk up the
ancestors of each.

Folding, the filter and the sort order make the flat list of rows a scroller shows; that list is
rebuilt only when one of them changes or new subjects appear (and, for sorts by a live number, at
most every ``resort_interval`` seconds, so rows do not jump under the pointer). Sorted by count,
siblings whose counts differ by less than one second of their traffic are a tie, kept in name order:
machines publishing at the same rate would otherwise swap places at each re-sort, depending on whose
latest message had arrived when the counters were read.

Example:
    >>> from fastiot.subjects import SubjectTree
    >>> tree = SubjectTree()
    >>> tree.add("v1.thing.press_1.temperature", count=3, last_seen_ns=1)
    True
    >>> [(node.path, tree.count_of(node)) for node in tree.flat()][:2]
    [('v1', 3), ('v1.thing', 3)]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastiot.exceptions import InvalidTopicError
from fastiot.mqtt.sparkplug import offline_mark
from fastiot.mqtt.topics import filter_to_subject, mqtt_name, subject_to_topic, topic_to_subject
from fastiot.rates import describe_rate
from fastiot.subjects.index import SubjectIndex

__all__ = [
    "DEFAULT_RESORT_INTERVAL",
    "MAX_NEW_PER_SYNC",
    "SORT_KEYS",
    "LiveSubjectTree",
    "SubjectTree",
    "TreeNode",
    "TreeRow",
    "describe_age",
    "short_text",
    "subject_matcher",
]

SORT_KEYS = ("name", "count", "rate", "last_seen")
DEFAULT_RESORT_INTERVAL = 2.0
_MAX_VALUE_CHARS = 80
OFFLINE_MARK = "offline ·"
"""What starts the value of a subject whose Sparkplug B node or device sent its death certificate."""
# Sorting by rate compares counts over at least this many seconds (a shorter span is mostly noise).
_RATE_SPAN = 1.0
# Sorted by count, rows closer than this many seconds of their traffic are a tie (kept in name order).
_TIE_SPAN = 1.0
# New subjects added to the tree per render at most (a few ms); the rest come with the next renders, soon.
MAX_NEW_PER_SYNC = 2_000
_NO_COUNTS = np.zeros(0, dtype=np.int64)


class TreeNode:
    """One token of the subject hierarchy: its place in the tree and, if it is a subject, its slot.

    Args:
        token: Its token of the subject (``temp`` of ``press_1.temp``).
        path: The subject up to and including the token.
        depth: The number of tokens above it (the root, which has no token, is at -1).
        parent: The node above; None for the root.
    """

    __slots__ = (
        "below",
        "by_name",
        "children",
        "depth",
        "is_subject",
        "parent",
        "path",
        "slot",
        "subjects",
        "token",
    )

    def __init__(self, token: str, path: str, depth: int, parent: TreeNode | None) -> None:
        self.token: str = token
        self.path: str = path
        self.depth: int = depth
        self.parent: TreeNode | None = parent
        self.children: dict[str, TreeNode] = {}
        self.by_name: list[TreeNode] | None = None  # the children sorted by token, made when needed
        self.is_subject: bool = False
        self.slot: int = -1  # where the subject's counters are in the snapshot arrays
        self.subjects: int = 0  # subjects at or below
        self.below: list[int] | None = None  # a folder's subjects' slots, its own included; None: a leaf

    def ancestors(self) -> Iterator[TreeNode]:
        """This node, its parent, ..., up to (not including) the root."""
        node: TreeNode | None = self
        while node is not None and node.parent is not None:
            yield node
            node = node.parent


@dataclass(frozen=True)
class TreeRow:
    """One row as drawn: a node of the tree at its place in the flat list."""

    path: str
    token: str
    depth: int
    folder: bool
    """It has children (a caret folds and unfolds it)."""
    subject: bool
    """Its path is itself a subject that carried messages."""
    open: bool
    count: int
    rate: str
    """The rate as shown: ``12.5/s``, below 1/s per minute (``3.0/min``)."""
    last_seen_ns: int
    value: str
    """The last payload, short (subjects only)."""
    subjects: int

    def wire(self) -> list[Any]:
        """The row as the ES module reads it (a list: fewer bytes than keys)."""
        flags = (1 if self.folder else 0) | (2 if self.subject else 0) | (4 if self.open else 0)
        return [
            self.path,
            self.token,
            self.depth,
            flags,
            self.count,
            self.rate,
            self.last_seen_ns // 1_000_000,
            self.value,
            self.subjects,
        ]


class SubjectTree:
    """The browser's token tree of subjects, its folding, filter and sort, flattened to rows.

    Subjects get a slot (0, 1, ... in the order they are added); :meth:`set_counters` gives the
    counters of all slots at once, :meth:`add` one subject with its counters.
    """

    def __init__(self) -> None:
        self.root: TreeNode = TreeNode("", "", -1, None)
        self.nodes: dict[str, TreeNode] = {}
        self.collapsed: set[str] = set()
        self.sort_by: str = "name"
        self.mqtt_names: bool = True
        """Show tokens as the MQTT levels they stand for (``spBv1//0`` as ``spBv1.0``), MQTT flags too."""
        self.match: Callable[[str], bool] | None = None
        # Which first tokens' subjects are not shown (NATS' system subjects unless asked for).
        self.hide_top: Callable[[str], bool] | None = None
        self.slots: list[str] = []  # the subject of each slot
        self._count: np.ndarray = _NO_COUNTS
        self._last_seen: np.ndarray = _NO_COUNTS
        self._flat: list[TreeNode] | None = None
        self._matching: dict[int, int] | None = None  # id(node) -> subjects matching the filter below
        self._below: dict[int, np.ndarray] = {}  # id(folder) -> its `below` as an array, made on use
        self._rates: np.ndarray | None = None  # messages/s per slot, for sorting by rate

    def __len__(self) -> int:
        """How many subjects the tree holds."""
        return self.root.subjects

    # -- content ------------------------------------------------------------------------------------

    def add(self, subject: str, *, count: int = 0, last_seen_ns: int = 0) -> bool:
        """Set one subject's message count and last-seen time (adding it if new); returns if it was new.

        A view of an index sets every subject's counters at once with :meth:`set_counters` instead.
        """
        new = self.add_subject(subject)
        slot = self.nodes[subject].slot
        count_array, seen_array = self._count.copy(), self._last_seen.copy()
        if len(count_array) < len(self.slots):
            grow = len(self.slots) - len(count_array)
            count_array = np.concatenate([count_array, np.zeros(grow, dtype=np.int64)])
            seen_array = np.concatenate([seen_array, np.zeros(grow, dtype=np.int64)])
        count_array[slot], seen_array[slot] = count, last_seen_ns
        self.set_counters(count_array, seen_array)
        return new

    def add_subject(self, subject: str) -> bool:
        """Add a subject (its counters come with the next :meth:`set_counters`); returns if it was new."""
        node = self.nodes.get(subject)
        if node is None:
            node = self._make(subject)
        if node.is_subject:
            return False
        node.is_subject = True
        slot = node.slot = len(self.slots)
        self.slots.append(subject)
        for up in node.ancestors():
            up.subjects += 1
            if up.below is not None:
                up.below.append(slot)
        self.root.subjects += 1
        self.invalidate()
        return True

    def _make(self, subject: str) -> TreeNode:
        # Most new subjects are new leaves of a known folder (another sensor of a machine).
        parent_path, _dot, token = subject.rpartition(".")
        parent = self.nodes.get(parent_path) if parent_path else self.root
        if parent is not None:
            return self._child(parent, token, subject)
        node = self.root
        path = ""
        for token in subject.split("."):
            path = f"{path}.{token}" if path else token
            child = node.children.get(token)
            node = child if child is not None else self._child(node, token, path)
        return node

    def _child(self, parent: TreeNode, token: str, path: str) -> TreeNode:
        if not parent.children and parent.parent is not None:  # a leaf becomes a folder
            parent.below = [parent.slot] if parent.is_subject else []
        child = parent.children[token] = self.nodes[path] = TreeNode(token, path, parent.depth + 1, parent)
        parent.by_name = None
        return child

    def set_counters(self, count: np.ndarray, last_seen_ns: np.ndarray) -> None:
        """The counters of every slot (int64 arrays, slot order), as of now."""
        self._count, self._last_seen = count, last_seen_ns

    def clear(self) -> None:
        """Forget every subject (folding is kept)."""
        self.root = TreeNode("", "", -1, None)
        self.nodes.clear()
        self.slots = []
        self.set_counters(_NO_COUNTS, _NO_COUNTS)
        self._below.clear()
        self._rates = None
        self.invalidate()

    def invalidate(self) -> None:
        """The flat list must be made anew (structure, folding, filter or sort changed)."""
        self._flat = None
        self._matching = None

    # -- numbers ------------------------------------------------------------------------------------

    def _slots_below(self, node: TreeNode) -> np.ndarray:
        below = node.below or []
        array = self._below.get(id(node))
        if array is None or len(array) != len(below):  # subjects were added below it
            array = self._below[id(node)] = np.fromiter(below, np.int64, len(below))
        return array[array < len(self._count)]

    def count_of(self, node: TreeNode) -> int:
        """Messages at or below ``node``, as of the last :meth:`set_counters`."""
        if node.below is None:
            return int(self._count[node.slot]) if 0 <= node.slot < len(self._count) else 0
        return int(self._count[self._slots_below(node)].sum())

    def last_seen_of(self, node: TreeNode) -> int:
        """The newest message at or below ``node`` (ns since the epoch; 0: none), as of the last counters."""
        if node.below is None:
            return int(self._last_seen[node.slot]) if 0 <= node.slot < len(self._last_seen) else 0
        slots = self._slots_below(node)
        return int(self._last_seen[slots].max()) if len(slots) else 0

    def _rate_of(self, node: TreeNode) -> float:
        rates = self._rates
        if rates is None:
            return 0.0
        if node.below is None:
            return float(rates[node.slot]) if 0 <= node.slot < len(rates) else 0.0
        slots = self._slots_below(node)
        return float(rates[slots[slots < len(rates)]].sum())

    # -- the flat list ------------------------------------------------------------------------------

    def flat(self) -> list[TreeNode]:
        """The rows in order: depth first, children sorted, folded nodes' children left out."""
        if self._flat is None:
            self._flat = []
            self._matching = self._count_matching() if self.match is not None else None
            self._walk(self.root, self._flat)
        return self._flat

    def matching_subjects(self, node: TreeNode) -> int:
        """Subjects at or below ``node`` that pass the filter (hidden ones left out)."""
        count = node.subjects if self._matching is None else self._matching.get(id(node), 0)
        if node is self.root:
            count -= sum(self.matching_subjects(top) for top in self.hidden())
        return count

    def hidden(self) -> list[TreeNode]:
        """The top-level nodes not shown (their tokens pass :attr:`hide_top`)."""
        hide = self.hide_top
        return [] if hide is None else [top for token, top in self.root.children.items() if hide(token)]

    def _count_matching(self) -> dict[int, int]:
        assert self.match is not None
        counts: dict[int, int] = {}
        for path, node in self.nodes.items():
            if node.is_subject and self.match(path):
                for up in node.ancestors():
                    counts[id(up)] = counts.get(id(up), 0) + 1
                counts[id(self.root)] = counts.get(id(self.root), 0) + 1
        return counts

    def _walk(self, node: TreeNode, out: list[TreeNode]) -> None:
        # Iterative: a subject can have up to 255 tokens, deeper than Python likes to recurse.
        stack = [iter(self._ordered(node))]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
                continue
            out.append(child)
            if child.children and child.path not in self.collapsed:
                stack.append(iter(self._ordered(child)))

    def _ordered(self, node: TreeNode) -> list[TreeNode]:
        if node.by_name is None:
            node.by_name = sorted(node.children.values(), key=_token_order)
        children = node.by_name
        hide = self.hide_top
        if node is self.root and hide is not None:
            children = [c for c in children if not hide(c.token)]
        if self._matching is not None:
            matching = self._matching
            children = [c for c in children if matching.get(id(c), 0)]
        key = self.sort_by
        if key == "name" or len(children) < 2:
            return children
        # Leaves in one numpy pass (10,000 siblings sort in about a millisecond), folders one by one; a
        # stable sort of the name order, so ties stay in name order.
        value_of = {"count": self.count_of, "rate": self._rate_of}.get(key, self.last_seen_of)
        leaf = np.fromiter((c.below is None for c in children), bool, len(children))
        slots = np.fromiter((c.slot for c in children), np.int64, len(children))
        per_slot = {"count": self._count, "rate": self._rates}.get(key, self._last_seen)
        values = np.zeros(len(children), dtype=np.float64)
        if per_slot is not None:
            known = leaf & (slots < len(per_slot))
            values[known] = per_slot[slots[known]]
        for i in np.flatnonzero(~leaf):
            values[i] = value_of(children[i])
        order = np.argsort(-values, kind="stable")
        if key == "count" and self._rates is not None:
            # Siblings publishing at the same rate differ by the messages of a burst that has reached one
            # and not yet the others when the counters are read; sorted by those, they swapped places at
            # every re-sort. Counts closer than one second of a row's traffic are a tie, kept in name order.
            slack = np.zeros(len(children), dtype=np.float64)
            known = leaf & (slots < len(self._rates))
            slack[known] = self._rates[slots[known]]
            for i in np.flatnonzero(~leaf):
                slack[i] = self._rate_of(children[i])
            order = _near_ties_in_name_order(values, np.maximum(slack, 0.0) * _TIE_SPAN, order)
        return [children[i] for i in order]

    def index_of(self, path: str) -> int | None:
        """The row of ``path`` in :meth:`flat` (unfolding nothing), or ``None`` if not shown."""
        for i, node in enumerate(self.flat()):
            if node.path == path:
                return i
        return None

    def reveal(self, path: str) -> None:
        """Unfold every ancestor of ``path`` so its row is shown."""
        node = self.nodes.get(path)
        opened = False
        while node is not None and node.parent is not None:
            node = node.parent
            if node.path in self.collapsed:
                self.collapsed.discard(node.path)
                opened = True
        if opened:
            self.invalidate()

    def folders(self) -> list[str]:
        """Every node that has children."""
        return [path for path, node in self.nodes.items() if node.children]


def _near_ties_in_name_order(values: np.ndarray, slack: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``order`` (highest value first, ties in name order), with near ties in name order too.

    Going down the order, a row and the rows after it whose value is within the row's ``slack`` below it
    form one group, shown in name order (``values`` and ``slack`` are indexed in name order, so name order
    is index order). Groups start at the highest value left, so one never spans more than one slack.
    """
    if not slack[order].any():
        return order  # no slack anywhere: exact ties only, name-ordered by the stable sort already
    ranked = values[order]
    # Where the group a row heads would end (everything down to its value minus its slack), for all rows
    # at once; then the groups' heads, walked in plain Python ints (10,000 rows: about a millisecond).
    ends = np.searchsorted(-ranked, -(ranked - slack[order]), side="right").tolist()
    starts = np.zeros(len(order), dtype=bool)
    head = 0
    while head < len(order):
        starts[head] = True
        head = max(ends[head], head + 1)
    group = np.cumsum(starts)
    return order[np.lexsort((order, group))]


def _token_order(node: TreeNode) -> tuple[bool, int, str]:
    # Numbers in numeric order (sensor_2 before sensor_10 would need more; plain numbers at least).
    token = node.token
    return (not token.isdigit(), int(token) if token.isdigit() and len(token) < 19 else 0, token)


class LiveSubjectTree(SubjectTree):
    """A :class:`SubjectTree` that follows a :class:`~fastiot.subjects.SubjectIndex`.

    :meth:`sync` (once per render) reads the counters of every subject as arrays and adds the
    subjects that are new; rows read their numbers from that snapshot, so a paused view stands still.

    Args:
        index: The subject index to follow.
    """

    def __init__(self, index: SubjectIndex) -> None:
        super().__init__()
        self.index: SubjectIndex = index
        self.synced: bool = False  # False: make the tree anew at the next sync (the index was cleared)
        self.resorted: float = 0.0
        self._folder_rates: dict[str, tuple[float, int, float]] = {}  # path -> (time, count, rate)
        # Counts a while ago (time, counts by slot): sorting by rate compares with them.
        self._rate_bases: list[tuple[float, np.ndarray]] = []
        self._shown: dict[str, int] = {}  # path -> count, of the rows in view at the last render
        self.behind: int = 0  # subjects of the index not in the tree yet (added by the next syncs)
        self._values: dict[str, tuple[int, str]] = {}  # path -> (count, inline value) of rows shown

    def note(self, news: set[str]) -> None:
        """What the index reported; an empty set (the index was cleared) makes the tree anew."""
        if not news:
            self.synced = False

    def sync(self, now: float, limit: int | None = MAX_NEW_PER_SYNC) -> None:
        """Bring the tree up to date with the index: new subjects, and everybody's counters.

        At most ``limit`` new subjects are added per call (``None``: all), so the first look at a broker
        with 10,000 subjects does not hold the kernel for one long render; :attr:`behind` says how many
        are still to come.
        """
        counters = self.index.counters()
        subjects = counters.subjects
        known = len(self.slots)
        # Subjects keep their position in the index until it drops some (clear, a new pattern).
        if not self.synced or len(subjects) < known or subjects[:known] != self.slots:
            self.clear()
            self._shown.clear()
            self._rate_bases.clear()
            self._folder_rates.clear()
            self.synced, known = True, 0
        for subject in subjects[known : None if limit is None else known + limit]:
            self.add_subject(subject)
        self.behind = len(subjects) - len(self.slots)
        self.set_counters(counters.count, counters.last_seen_ns)
        bases = self._rate_bases
        if not bases or now - bases[-1][0] >= _RATE_SPAN:
            bases.append((now, counters.count))
            del bases[:-3]

    def grown(self, rows: dict[int, TreeRow]) -> list[str]:
        """The paths of ``rows`` (the rows in view now) whose count grew since the last call: they flash."""
        before = self._shown
        grown = [row.path for row in rows.values() if row.count > before.get(row.path, row.count)]
        self._shown = {row.path: row.count for row in rows.values()}
        self._values = {path: self._values[path] for path in self._shown if path in self._values}
        return grown

    def resort(self, now: float, interval: float) -> None:
        """Re-sort by a live number at most every ``interval`` seconds, so rows do not jump about."""
        if self.sort_by == "name" or now - self.resorted < interval:
            return
        if self.sort_by in ("rate", "count"):  # a count sort takes its ties' slack from the rates
            self._rates = self._slot_rates(now)
        self.resorted = now
        self.invalidate()

    def _slot_rates(self, now: float) -> np.ndarray | None:
        """Each subject's messages/s since a snapshot a second or more ago (by slot); None: too early."""
        base = next((b for b in reversed(self._rate_bases) if now - b[0] >= _RATE_SPAN), None)
        if base is None:
            return None  # too early to tell: name order
        then, counts_then = base
        grown = self._count.astype(np.float64)
        common = min(len(grown), len(counts_then))
        grown[:common] -= counts_then[:common]
        return grown / (now - then)

    def node_rate(self, node: TreeNode, now: float) -> float:
        """A subject's rate from the index; a folder's from its count growing (looked at >= 1 s apart)."""
        if node.is_subject and not node.children:
            return self.index.rate(node.path) if node.path in self.index else 0.0
        count = self.count_of(node)
        before = self._folder_rates.get(node.path)
        if before is None:
            self._folder_rates[node.path] = (now, count, 0.0)
            return 0.0
        t, count_then, rate = before
        if now - t >= 1.0:
            rate = (count - count_then) / (now - t)
            self._folder_rates[node.path] = (now, count, rate)
        return rate

    def _value(self, subject: str) -> str:
        """The newest payload of ``subject``, short, decoded again only when a message came."""
        count = self.index.counter(subject).count
        known = self._values.get(subject)
        if known is None or known[0] != count:
            text = short_text(self.index.last(subject).to_text(max_chars=200))
            known = self._values[subject] = (count, text)
        return known[1]

    def row(self, node: TreeNode, now: float) -> TreeRow:
        """The row of ``node`` as shown."""
        value = ""
        index = self.index
        count = self.count_of(node)
        if node.is_subject and node.path in index:
            rate = index.rate(node.path)
            value = self._value(node.path)
            mqtt = index.mqtt(node.path) if self.mqtt_names else None
            if mqtt is not None:
                value = f"[QoS {mqtt[1]}{', retained' if mqtt[2] else ''}] {value}"
            # A dead Sparkplug node's rows say so first.
            if node.path.startswith("spBv1//0.") and offline_mark(node.path, index.last, index.__contains__):
                value = f"{OFFLINE_MARK} {value}"
        else:
            rate = self.node_rate(node, now)
        return TreeRow(
            path=node.path,
            token=mqtt_name(node.token) if self.mqtt_names else node.token,
            depth=node.depth,
            folder=bool(node.children),
            subject=node.is_subject,
            open=node.path not in self.collapsed,
            count=count,
            rate=describe_rate(rate),
            last_seen_ns=self.last_seen_of(node),
            value=value,
            subjects=self.matching_subjects(node),
        )


def describe_age(seconds: float) -> str:
    """How long ago, as the tree shows it (its ES module has the same function): ``"3 s ago"``.

    Example:
        >>> describe_age(0.2), describe_age(3.7), describe_age(125), describe_age(7300)
        ('now', '3 s ago', '2 min ago', '2 h ago')
    """
    if seconds < 1:
        return "now"
    if seconds < 60:
        return f"{int(seconds)} s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} d ago"


def short_text(text: str, limit: int = _MAX_VALUE_CHARS) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def subject_matcher(text: str) -> Callable[[str], bool] | None:
    """The subject test a filter text stands for; ``None`` for an empty filter (everything).

    Text with a ``*`` or ``>`` token is a NATS pattern (``v1.*.press_1.>``); text with a ``/`` is
    MQTT's: an MQTT filter with ``+`` or ``#`` levels (``tele/+/SENSOR``), else text the MQTT topics
    contain (``tasmota_1/SENSOR``); other text matches subjects that contain it, ignoring case.

    Example:
        >>> subject_matcher("PRESS")("v1.thing.press_1.temperature")
        True
        >>> subject_matcher("v1.*.oven_1.>")("v1.thing.press_1.temperature")
        False
    """
    text = text.strip()
    if not text:
        return None
    if "/" in text or text in ("+", "#"):
        return _topic_matcher(text)
    tokens = text.split(".")
    if "*" in tokens or ">" in tokens:
        return _pattern_matcher(tokens)
    needle = text.lower()
    return lambda subject: needle in subject.lower()


def _pattern_matcher(tokens: list[str]) -> Callable[[str], bool]:
    """The test of a NATS pattern, given as its tokens."""

    def match_pattern(subject: str) -> bool:
        parts = subject.split(".")
        for i, token in enumerate(tokens):
            if token == ">":
                return len(parts) > i
            if i >= len(parts) or (token != "*" and token != parts[i]):
                return False
        return len(parts) == len(tokens)

    return match_pattern


def _topic_matcher(text: str) -> Callable[[str], bool]:
    """:func:`subject_matcher` for MQTT's way of writing: a filter (``tele/+/SENSOR``) or a piece of topic."""
    levels = text.split("/")
    if "+" in levels or "#" in levels:
        try:
            pattern = _pattern_matcher(filter_to_subject(text).split("."))
        except InvalidTopicError:
            pattern = None
        if pattern is not None:
            # MQTT's "a/#" matches "a" itself too.
            above = text[:-2] if text.endswith("/#") and "+" not in levels else ""
            parent = topic_to_subject(above) if above and "#" not in above else None
            return lambda subject: subject == parent or pattern(subject)
    needle = text.lower()
    return lambda subject: needle in subject_to_topic(subject).lower()
