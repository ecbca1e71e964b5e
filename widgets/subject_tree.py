"""The SubjectBrowser's tree: its own token tree of the index's subjects, flattened and virtualized.

:class:`SubjectTree` keeps one node per subject token (``v1`` > ``thing`` > ``press_1`` >
``temperature``) with the totals of everything below it, updated from the subjects that changed
since the last render (a few additions up the ancestors per changed subject, never a pass over all
10,000). Folding, the filter and the sort order make the flat list of rows a scroller shows; that
list is rebuilt only when one of them changes or new subjects appear (and, for sorts by a live number,
at most every ``resort_interval`` seconds, so rows do not jump under the pointer).

:class:`SubjectTreeView` is the anywidget (``subject_tree.js``) that draws a window of those rows.
The browser's scroller tells Python which rows are in view (:attr:`SubjectTreeView.viewport`); Python
sends only those rows, and of them only the ones that changed since it last sent them, with the total
row count. Relative times ("3 s ago") tick in the browser, so an idle row costs nothing.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import anywidget
import traitlets

from fastiot.rates import describe_rate
from fastiot.subjects import SubjectIndex, SubjectMessage

__all__ = [
    "DEFAULT_RESORT_INTERVAL",
    "SORT_KEYS",
    "LiveSubjectTree",
    "SubjectTree",
    "SubjectTreeView",
    "TreeNode",
    "TreeRow",
    "describe_age",
    "recent_messages",
    "short_text",
    "subject_matcher",
]

SORT_KEYS = ("name", "count", "rate", "last_seen")
DEFAULT_RESORT_INTERVAL = 2.0
DEFAULT_TREE_HEIGHT = 420
# Rows beyond the visible ones the scroller asks for, so a small scroll needs no round trip.
OVERSCAN = 20
_MAX_VALUE_CHARS = 80


class TreeNode:
    """One token of the subject hierarchy with the totals of the subjects at or below it."""

    __slots__ = (
        "children",
        "count",
        "depth",
        "is_subject",
        "last_seen_ns",
        "own_count",
        "parent",
        "path",
        "rate",
        "rate_mark",
        "subjects",
        "token",
    )

    def __init__(self, token: str, path: str, depth: int, parent: TreeNode | None) -> None:
        self.token: str = token
        self.path: str = path
        self.depth: int = depth
        self.parent: TreeNode | None = parent
        self.children: dict[str, TreeNode] = {}
        self.is_subject: bool = False
        self.subjects: int = 0  # subjects at or below
        self.own_count: int = 0  # messages on this subject itself
        self.count: int = 0  # messages at or below
        self.last_seen_ns: int = 0  # newest message at or below
        self.rate: float = 0.0  # messages/s at or below (subjects: the index's; folders: summed)
        self.rate_mark: int = -1  # the render that last set `rate`

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

    Example:
        >>> tree = SubjectTree()
        >>> tree.add("v1.thing.press_1.temperature", count=3, last_seen_ns=1)
        True
        >>> [node.path for node in tree.flat()]
        ['v1', 'v1.thing', 'v1.thing.press_1', 'v1.thing.press_1.temperature']
    """

    def __init__(self) -> None:
        self.root: TreeNode = TreeNode("", "", -1, None)
        self.nodes: dict[str, TreeNode] = {}
        self.collapsed: set[str] = set()
        self.sort_by: str = "name"
        self.match: Callable[[str], bool] | None = None
        self._flat: list[TreeNode] | None = None
        self._matching: dict[int, int] | None = None  # id(node) -> subjects matching the filter below

    def __len__(self) -> int:
        """How many subjects the tree holds."""
        return self.root.subjects

    # -- content ------------------------------------------------------------------------------------

    def add(self, subject: str, *, count: int, last_seen_ns: int) -> bool:
        """Set a subject's message count and last-seen time (adding it if new); returns if it was new."""
        node = self.nodes.get(subject)
        new = node is None or not node.is_subject
        if node is None:
            node = self._make(subject)
        if new:
            node.is_subject = True
            for up in node.ancestors():
                up.subjects += 1
            self.root.subjects += 1
            self.invalidate()
        delta = count - node.own_count
        node.own_count = count
        if delta:
            for up in node.ancestors():
                up.count += delta
            self.root.count += delta
        if last_seen_ns > node.last_seen_ns:
            for up in node.ancestors():
                if up.last_seen_ns >= last_seen_ns:
                    break
                up.last_seen_ns = last_seen_ns
        return new

    def _make(self, subject: str) -> TreeNode:
        parent = self.root
        path = ""
        for depth, token in enumerate(subject.split(".")):
            path = f"{path}.{token}" if path else token
            child = parent.children.get(token)
            if child is None:
                child = parent.children[token] = self.nodes[path] = TreeNode(token, path, depth, parent)
            parent = child
        return parent

    def clear(self) -> None:
        """Forget every subject (folding is kept)."""
        self.root = TreeNode("", "", -1, None)
        self.nodes.clear()
        self.invalidate()

    def invalidate(self) -> None:
        """The flat list must be made anew (structure, folding, filter or sort changed)."""
        self._flat = None
        self._matching = None

    # -- the flat list ------------------------------------------------------------------------------

    def flat(self) -> list[TreeNode]:
        """The rows in order: depth first, children sorted, folded nodes' children left out."""
        if self._flat is None:
            self._flat = []
            self._matching = self._count_matching() if self.match is not None else None
            self._walk(self.root, self._flat)
        return self._flat

    def matching_subjects(self, node: TreeNode) -> int:
        """Subjects at or below ``node`` that pass the filter."""
        if self._matching is None:
            return node.subjects
        return self._matching.get(id(node), 0)

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
        children: Iterable[TreeNode] = node.children.values()
        if self._matching is not None:
            matching = self._matching
            children = [c for c in children if matching.get(id(c), 0)]
        key = self.sort_by
        if key == "name":
            return sorted(children, key=_token_order)
        if key == "count":
            return sorted(children, key=lambda n: (-n.count, _token_order(n)))
        if key == "rate":
            return sorted(children, key=lambda n: (-n.rate, _token_order(n)))
        return sorted(children, key=lambda n: (-n.last_seen_ns, _token_order(n)))

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


def _token_order(node: TreeNode) -> tuple[bool, int, str]:
    # Numbers in numeric order (sensor_2 before sensor_10 would need more; plain numbers at least).
    token = node.token
    return (not token.isdigit(), int(token) if token.isdigit() and len(token) < 19 else 0, token)


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

    Text with a ``*`` or ``>`` token is a NATS pattern (``v1.*.press_1.>``); other text matches
    subjects that contain it, ignoring case.

    Example:
        >>> subject_matcher("PRESS")("v1.thing.press_1.temperature")
        True
        >>> subject_matcher("v1.*.oven_1.>")("v1.thing.press_1.temperature")
        False
    """
    text = text.strip()
    if not text:
        return None
    tokens = text.split(".")
    if "*" in tokens or ">" in tokens:

        def match_pattern(subject: str) -> bool:
            parts = subject.split(".")
            for i, token in enumerate(tokens):
                if token == ">":
                    return len(parts) > i
                if i >= len(parts) or (token != "*" and token != parts[i]):
                    return False
            return len(parts) == len(tokens)

        return match_pattern
    needle = text.lower()
    return lambda subject: needle in subject.lower()


class LiveSubjectTree(SubjectTree):
    """A :class:`SubjectTree` that follows a :class:`~fastiot.subjects.SubjectIndex`.

    :meth:`note` collects the subjects the index reports as changed; :meth:`sync` (once per render)
    reads their counters, a few numbers each, and nothing of the others.
    """

    def __init__(self, index: SubjectIndex) -> None:
        super().__init__()
        self.index: SubjectIndex = index
        self.news: set[str] = set()
        self.synced: bool = False  # the tree holds every subject of the index
        self.resorted: float = 0.0
        self._folder_rates: dict[str, tuple[float, int, float]] = {}  # path -> (time, count, rate)

    def note(self, news: set[str]) -> None:
        """Remember changed subjects; an empty set (the index was cleared) makes the tree anew."""
        if news:
            self.news |= news
        else:
            self.synced = False

    def sync(self) -> set[str]:
        """Bring the tree up to date with the index; returns the subjects that changed."""
        news, self.news = self.news, set()
        if not self.synced:
            self.clear()
            news = set(self.index.subjects)
            self.synced = True
        for subject in news:
            counters = _counters(self.index, subject)
            if counters is not None:
                self.add(subject, count=counters[0], last_seen_ns=counters[1])
            elif subject in self.nodes and self.nodes[subject].is_subject:
                # The index dropped it (a new pattern): rebuild the tree from what it keeps.
                self.synced = False
                return self.sync()
        return news

    def resort(self, now: float, interval: float) -> None:
        """Re-sort by a live number at most every ``interval`` seconds, so rows do not jump about."""
        if self.sort_by == "name" or now - self.resorted < interval:
            return
        if self.sort_by == "rate":
            for node in self.nodes.values():
                node.rate = self.node_rate(node, now)
        self.resorted = now
        self.invalidate()

    def node_rate(self, node: TreeNode, now: float) -> float:
        """A subject's rate from the index; a folder's from its count growing (looked at >= 1 s apart)."""
        if node.is_subject and not node.children:
            return _rate(self.index, node.path)
        before = self._folder_rates.get(node.path)
        if before is None:
            self._folder_rates[node.path] = (now, node.count, 0.0)
            return 0.0
        t, count, rate = before
        if now - t >= 1.0:
            rate = (node.count - count) / (now - t)
            self._folder_rates[node.path] = (now, node.count, rate)
        return rate

    def row(self, node: TreeNode, now: float) -> TreeRow:
        """The row of ``node`` as shown."""
        value = ""
        if node.is_subject:
            rate = _rate(self.index, node.path)
            last = _last_payload(self.index, node.path)
            value = "" if last is None else short_text(last)
        else:
            rate = self.node_rate(node, now)
        return TreeRow(
            path=node.path,
            token=node.token,
            depth=node.depth,
            folder=bool(node.children),
            subject=node.is_subject,
            open=node.path not in self.collapsed,
            count=node.count,
            rate=describe_rate(rate),
            last_seen_ns=node.last_seen_ns,
            value=value,
            subjects=self.matching_subjects(node),
        )


# -- what the browser reads of the index (one place, so its API shows at a glance) -------------------


def _counters(index: SubjectIndex, subject: str) -> tuple[int, int] | None:
    """A subject's message count and last-seen time (ns), without decoding anything."""
    entry = index._entries.get(subject)  # TODO(viewer): a public counters read (requested from capture)
    return None if entry is None else (entry.count, entry.last_seen)


def _rate(index: SubjectIndex, subject: str) -> float:
    return index.rate(subject) if subject in index else 0.0


def _last_payload(index: SubjectIndex, subject: str) -> str | None:
    return index.last(subject).to_text(max_chars=200) if subject in index else None


def recent_messages(index: SubjectIndex, subject: str, n: int) -> list[SubjectMessage]:
    """The newest ``n`` messages of ``subject``, newest first, decoded, with their headers."""
    return index.messages(subject, n) if subject in index else []


class SubjectTreeView(anywidget.AnyWidget):
    """The virtualized tree (``subject_tree.js``): draws the rows Python sends for the viewport.

    Messages to the browser: ``{"type": "rows", "total": n, "reset": bool, "rows": [[i, row], ...],
    "flash": [path, ...], "now": ms}`` (rows as :meth:`TreeRow.wire`) and ``{"type": "scroll",
    "index": i}``. From the browser, as messages: ``select`` (path), ``sort`` (key), ``viewport``
    (start, stop), ``toggle`` (path) and ``hello`` (a new view wants every row again); they set the
    traitlets, which go back to the browser.
    """

    _esm = pathlib.Path(__file__).with_name("subject_tree.js")
    selected = traitlets.Unicode("", help="The selected row's path ('' for none); a click sets it.").tag(
        sync=True
    )
    sort_by = traitlets.Enum(
        SORT_KEYS, default_value="name", help="Sort siblings by name, count, rate or last seen."
    ).tag(sync=True)
    viewport = traitlets.List(
        traitlets.Int(),
        default_value=[0, 60],
        help="[first, stop) rows the browser shows (overscan included); it reports this as it scrolls.",
    ).tag(sync=True)
    height = traitlets.Int(DEFAULT_TREE_HEIGHT, help="The tree's height in pixels.").tag(sync=True)
    paused = traitlets.Bool(False, help="Shown as a 'paused' mark over the tree.").tag(sync=True)
    empty_text = traitlets.Unicode("no subjects yet", help="What an empty tree says.").tag(sync=True)
    total_rows = traitlets.Int(0, help="Rows in the flat tree, as last sent.")
    bytes_sent = traitlets.Int(0, help="JSON bytes of the row messages sent so far (bandwidth, for tests).")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sent: dict[int, list[Any]] = {}
        self._on_toggle: Callable[[str], None] | None = None
        self._on_hello: Callable[[], None] | None = None
        self.on_msg(self._on_custom_msg)

    def handlers(self, *, toggle: Callable[[str], None], hello: Callable[[], None]) -> None:
        """Who handles a click on a caret and a new view."""
        self._on_toggle, self._on_hello = toggle, hello

    def _on_custom_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        # (Not `_handle_msg`: that is ipywidgets' own handler of every comm message.)
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "select" and isinstance(content.get("path"), str):
            self.selected = content["path"]
        elif kind == "sort" and content.get("key") in SORT_KEYS:
            self.sort_by = content["key"]
        elif (
            kind == "viewport"
            and isinstance(content.get("start"), int)
            and isinstance(content.get("stop"), int)
        ):
            self.viewport = [content["start"], content["stop"]]
        elif kind == "toggle" and isinstance(content.get("path"), str) and self._on_toggle is not None:
            self._on_toggle(content["path"])
        elif kind == "hello" and self._on_hello is not None:
            self._sent.clear()
            self._on_hello()

    def window(self) -> range:
        """The row indexes the browser shows now."""
        start, stop = [*self.viewport, 0, 0][:2]
        start = max(0, start)
        return range(start, max(start, min(stop, start + 500)))  # never more than 500 rows at once

    def show(
        self, total: int, rows: dict[int, TreeRow], *, reset: bool, flash: Iterable[str], now_ns: int
    ) -> int:
        """Send the rows of the window that differ from what the browser has; returns how many."""
        if reset:
            self._sent.clear()
        changed = []
        for i, row in rows.items():
            wire = row.wire()
            if self._sent.get(i) != wire:
                self._sent[i] = wire
                changed.append([i, wire])
        window = self.window()
        for i in [i for i in self._sent if i not in window]:  # the browser forgets those too
            del self._sent[i]
        flashing = [p for p in flash]
        if not changed and not reset and total == self.total_rows and not flashing:
            return 0
        message = {
            "type": "rows",
            "total": total,
            "reset": reset,
            "rows": changed,
            "flash": flashing,
            "now": now_ns // 1_000_000,
        }
        self.total_rows = total
        self.bytes_sent += _json_size(message)
        self.send(message)
        return len(changed)

    def scroll_to(self, index: int) -> None:
        """Scroll the browser's view so row ``index`` is in it."""
        self.send({"type": "scroll", "index": index})


def _json_size(message: dict[str, Any]) -> int:
    import json

    return len(json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode())
