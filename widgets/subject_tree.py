"""The SubjectBrowser's tree: its own token tree of the index's subjects, flattened and virtualized.

The model (:class:`~fastiot.subjects.tree.SubjectTree`, :class:`~fastiot.subjects.tree.LiveSubjectTree`,
headless in :mod:`fastiot.subjects.tree`) keeps one node per subject token and reads every subject's
counters once per render as arrays, so a render costs the rows in view however many of 10,000 subjects
changed.

:class:`SubjectTreeView` is the anywidget (``subject_tree.js``) that draws a window of those rows.
The browser's scroller tells Python which rows are in view (:attr:`SubjectTreeView.viewport`); Python
sends only those rows, and of them only the ones that changed since it last sent them, with the total
row count. Relative times ("3 s ago") tick in the browser, so an idle row costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import anywidget
import traitlets

from fastiot.subjects import SubjectIndex, SubjectMessage
from fastiot.subjects.tree import SORT_KEYS, TreeRow

from ._common import front_end_file
from ._loop_bound import LoopBound

__all__ = ["DEFAULT_TREE_HEIGHT", "SubjectTreeView", "recent_messages"]

DEFAULT_TREE_HEIGHT = 420
# Rows beyond the visible ones the scroller asks for, so a small scroll needs no round trip.
OVERSCAN = 20


def recent_messages(index: SubjectIndex, subject: str, n: int) -> list[SubjectMessage]:
    """The newest ``n`` messages of ``subject``, newest first, decoded, with their headers."""
    return index.messages(subject, n) if subject in index else []


class SubjectTreeView(LoopBound, anywidget.AnyWidget):
    """The virtualized tree (``subject_tree.js``): draws the rows Python sends for the viewport.

    Messages to the browser: ``{"type": "rows", "total": n, "reset": bool, "rows": [[i, row], ...],
    "flash": [path, ...], "now": ms}`` (rows as :meth:`TreeRow.wire`) and ``{"type": "scroll",
    "index": i}``. From the browser, as messages: ``select`` (path), ``sort`` (key), ``viewport``
    (start, stop), ``toggle`` (path) and ``hello`` (a new view wants every row again); they set the
    traitlets, which go back to the browser.
    """

    _esm = front_end_file("subject_tree.js")
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
