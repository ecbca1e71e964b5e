"""SubjectBrowser: a live tree of the subjects on the broker, with the last messages of the one you pick.

A thin view over :class:`fastiot.subjects.SubjectIndex`, which counts every message per subject and
decodes payloads only when asked. The browser shows the subjects as a collapsible tree by token
(``v1`` > ``thing`` > ``press_1`` > ``temperature``) with the message count and rate of every node,
a filter box, pause / resume / clear; selecting a subject shows its last messages decoded (raw bytes
on demand) and a sparkline of each numeric field, and "Open table" shows a live
:class:`~fastiot_widgets.MessageTable` of it below. The view re-renders at most every
``refresh_interval`` seconds however fast messages arrive.

The tree is an ipywidgets ``Select`` (no front-end extension needed): selecting a folded node unfolds
it, the Fold button folds the selected node, and Unfold all / Fold all act on the whole tree.

Example:
    >>> from fastiot_widgets import SubjectBrowser
    >>> browser = SubjectBrowser("v1.>")                  # doctest: +SKIP
    >>> browser                                           # shows it   # doctest: +SKIP
    >>> browser.select("v1.thing.press_1.temperature")    # or click it  # doctest: +SKIP
    >>> table = browser.open_table()                      # or click "Open table"  # doctest: +SKIP
    >>> browser.to_dataframe().sort_values("rate").tail()  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import pydantic
import traitlets

from fastiot.capture import decode_payload
from fastiot.core.broker_connection import BrokerConnection
from fastiot.core.data_models import Subject
from fastiot.subjects import SubjectIndex, SubjectTreeNode

from ._common import plural
from ._live import DEFAULT_REFRESH_INTERVAL, LiveView, summary_html
from .message_table import MessageTable

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_LAST_MESSAGES",
    "DEFAULT_MAX_NODES",
    "DEFAULT_TABLE_MAX_ROWS",
    "SubjectBrowser",
    "hexdump",
    "sparkline_svg",
    "subject_matcher",
]

DEFAULT_LAST_MESSAGES = 3
# More tree rows than this are not sent to the browser; the filter or folding narrows the tree down.
DEFAULT_MAX_NODES = 500
DEFAULT_TABLE_MAX_ROWS = 10_000
DEFAULT_TREE_ROWS = 18
_MAX_SPARKLINES = 6
_MAX_PAYLOAD_CHARS = 2_000
_MAX_HEXDUMP_BYTES = 256
_MORE = "\x00more"  # the value of the "... more rows" line, which selects nothing
_SPARK_COLOR = "#1565c0"
_MUTED = "#757575"

_TREE_CSS = (
    "<style>.fastiot-subject-tree select{font-family:var(--jp-code-font-family,monospace);"
    "font-size:var(--jp-code-font-size,13px);line-height:1.35}</style>"
)


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


def _pruned(node: SubjectTreeNode, match: Callable[[str], bool]) -> SubjectTreeNode | None:
    """A copy of ``node`` with only the subjects ``match`` accepts, totals summed anew; ``None`` if none."""
    children: dict[str, SubjectTreeNode] = {}
    for token, child in node.children.items():
        kept = _pruned(child, match)
        if kept is not None:
            children[token] = kept
    own = node.is_subject and match(node.path)
    if not children and not own:
        return None
    result = SubjectTreeNode(token=node.token, path=node.path, is_subject=own, children=children)
    if own:  # the subject's own share: its totals minus those of everything below it
        below = node.children.values()
        result.count = node.count - sum(c.count for c in below)
        result.bytes = node.bytes - sum(c.bytes for c in below)
        result.rate = max(0.0, node.rate - sum(c.rate for c in below))
        result.subjects = 1
    for child in children.values():
        result.count += child.count
        result.bytes += child.bytes
        result.rate += child.rate
        result.subjects += child.subjects
    return result


def sparkline_svg(
    values: list[float], *, width: int = 180, height: int = 30, color: str = _SPARK_COLOR
) -> str:
    """An inline SVG line of ``values`` (oldest left), scaled to their range, the newest one dotted.

    Example:
        >>> sparkline_svg([1.0, 3.0, 2.0]).startswith("<svg")
        True
    """
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    pad = 3.0
    if not finite:
        return f"<svg width='{width}' height='{height}'></svg>"
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    step = (width - 2 * pad) / max(1, len(finite) - 1)
    points = [
        (pad + i * step, height - pad - (v - low) / span * (height - 2 * pad) if high > low else height / 2)
        for i, v in enumerate(finite)
    ]
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    last_x, last_y = points[-1]
    return (
        f"<svg class='fastiot-sparkline' width='{width}' height='{height}' viewBox='0 0 {width} {height}' "
        f"style='vertical-align:middle'><polyline fill='none' stroke='{color}' stroke-width='1.5' "
        f"stroke-linejoin='round' points='{coords}'/>"
        f"<circle cx='{last_x:.1f}' cy='{last_y:.1f}' r='2.5' fill='{color}'/></svg>"
    )


def hexdump(data: bytes, limit: int = _MAX_HEXDUMP_BYTES) -> str:
    """``data`` as offset, hex and printable characters, 16 bytes a line, at most ``limit`` bytes.

    Example:
        >>> hexdump(b"hi")
        '0000  68 69                                            hi'
    """
    lines = []
    for offset in range(0, min(len(data), limit), 16):
        chunk = data[offset : offset + 16]
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:04x}  {chunk.hex(' '):<47}  {text}")
    if len(data) > limit:
        lines.append(f"... {plural(len(data) - limit, 'more byte')}")
    return "\n".join(lines)


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return repr(value)


def _pretty(payload: Any) -> str:
    if isinstance(payload, pydantic.BaseModel):
        payload = payload.model_dump()
    try:
        text = json.dumps(payload, indent=2, default=_json_default, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(payload)
    return text if len(text) <= _MAX_PAYLOAD_CHARS else text[:_MAX_PAYLOAD_CHARS] + "\n..."


class SubjectBrowser(LiveView):
    """A live, collapsible tree of subjects with counts and rates, and the last messages of the selected one.

    Args:
        pattern: The NATS pattern to watch (``">"``: everything), a
            :class:`~fastiot.core.data_models.Subject` (its model decodes the payloads), or a
            :class:`~fastiot.subjects.SubjectIndex` to view (which the browser then neither starts nor
            stops; pass no ``connection`` with it).
        connection: The broker connection; ``None`` means the workbench connection.
        refresh_interval: The least seconds between two re-renders.
        table_max_rows: ``max_rows`` of the MessageTable "Open table" shows.
        index_kwargs: Passed on to :class:`~fastiot.subjects.SubjectIndex` (``history``,
            ``max_subjects``, ``include_inbox``, ...).

    The index (the headless model) is :attr:`index`; :meth:`to_dataframe` returns the subject overview
    (one row per subject: subject, count, rate, bytes, first_seen, last_seen). In a notebook the index
    starts when the browser is made; ``await browser.start()`` waits for that. :meth:`close` stops it.
    """

    selected = traitlets.Unicode(
        "", help="The selected tree node: a subject, or a subject prefix (a folder); '' for none."
    )
    filter = traitlets.Unicode(
        "",
        help="Show only subjects containing this text (ignoring case), or matching it as a NATS pattern "
        "when it has a * or > token.",
    )
    collapsed = traitlets.List(traitlets.Unicode(), help="The tree nodes (subject prefixes) shown folded.")
    show_raw = traitlets.Bool(False, help="Show the raw payload bytes of the last messages as a hex dump.")
    last_messages = traitlets.Int(
        DEFAULT_LAST_MESSAGES, help="How many of the selected subject's newest messages are shown."
    )
    max_nodes = traitlets.Int(DEFAULT_MAX_NODES, help="The most tree rows shown; the rest is summarized.")
    subject_count = traitlets.Int(0, help="Subjects in the tree (after the filter), as last rendered.")
    message_count = traitlets.Int(0, help="Messages counted since start or clear, as last rendered.")

    def __init__(
        self,
        pattern: str | Subject | SubjectIndex = ">",
        connection: BrokerConnection | None = None,
        *,
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
        table_max_rows: int = DEFAULT_TABLE_MAX_ROWS,
        **index_kwargs: Any,
    ) -> None:
        if isinstance(pattern, SubjectIndex):
            if connection is not None or index_kwargs:
                raise TypeError(
                    "give connection and other options to the SubjectIndex, not to SubjectBrowser"
                )
            index, owns = pattern, False
            connection = index.connection
        else:
            index = SubjectIndex(pattern, connection, **index_kwargs)  # type: ignore[arg-type]
            owns = True
        self.index: SubjectIndex = index
        self.table: MessageTable | None = None
        self.table_max_rows: int = table_max_rows
        self._updating_tree: bool = False
        self._shown_options: tuple[tuple[str, str], ...] = ()
        self._nodes: dict[str, SubjectTreeNode] = {}

        self.filter_box = widgets.Text(
            placeholder="filter: text, or a pattern like v1.*.press_1.>",
            continuous_update=True,
            layout=widgets.Layout(width="22em"),
        )
        self.fold_button = widgets.Button(
            description="Fold", icon="minus", tooltip="Fold the selected node", layout={"width": "auto"}
        )
        self.unfold_all_button = widgets.Button(
            description="Unfold all", icon="plus-square", tooltip="Show every node", layout={"width": "auto"}
        )
        self.fold_all_button = widgets.Button(
            description="Fold all",
            icon="minus-square",
            tooltip="Show the top level only",
            layout={"width": "auto"},
        )
        self.summary_view = widgets.HTML()
        self.tree_view = widgets.Select(
            options=[], rows=DEFAULT_TREE_ROWS, layout=widgets.Layout(width="100%")
        )
        self.tree_view.add_class("fastiot-subject-tree")
        self.detail_view = widgets.HTML()
        self.sparkline_view = widgets.HTML()
        self.messages_view = widgets.HTML()
        self.open_table_button = widgets.Button(
            description="Open table",
            icon="table",
            tooltip="Show a live table of the selected subject's messages below",
            disabled=True,
            layout={"width": "auto"},
        )
        self.raw_button = widgets.ToggleButton(
            description="Raw bytes", icon="code", tooltip="Show the payloads' bytes", layout={"width": "auto"}
        )
        self.close_table_button = widgets.Button(
            description="Close table", icon="times", layout={"width": "auto"}
        )
        self.table_area = widgets.VBox()

        self.fold_button.on_click(lambda _b: self.toggle(self.selected))
        self.unfold_all_button.on_click(lambda _b: self.expand_all())
        self.fold_all_button.on_click(lambda _b: self.collapse_all())
        self.open_table_button.on_click(lambda _b: self._open_table_clicked())
        self.close_table_button.on_click(lambda _b: self.close_table())
        self.tree_view.observe(self._on_tree_value, names="value")

        super().__init__(
            index,
            owns_model=owns,
            connection=connection,
            refresh_interval=refresh_interval,
            children=[],
        )
        self.children = [
            widgets.HTML(_TREE_CSS),
            widgets.HBox(
                [self.connection_status, self.summary_view], layout=widgets.Layout(align_items="center")
            ),
            widgets.HBox(
                [
                    self.filter_box,
                    self.pause_button,
                    self.resume_button,
                    self.clear_button,
                    self.fold_button,
                    self.unfold_all_button,
                    self.fold_all_button,
                ],
                layout=widgets.Layout(flex_flow="row wrap", align_items="center"),
            ),
            widgets.HBox(
                [
                    widgets.Box([self.tree_view], layout=widgets.Layout(width="46%", min_width="22em")),
                    widgets.VBox(
                        [
                            self.detail_view,
                            self.sparkline_view,
                            widgets.HBox([self.open_table_button, self.raw_button]),
                            self.messages_view,
                        ],
                        layout=widgets.Layout(flex="1 1 auto", padding="0 0 0 12px", overflow="hidden"),
                    ),
                ]
            ),
            self.error_view,
            self.table_area,
        ]
        widgets.link((self.raw_button, "value"), (self, "show_raw"))
        widgets.link((self.filter_box, "value"), (self, "filter"))
        self.refresh()

    def _listen(self, callback: Any, remove: bool) -> None:
        self.index.on_change(callback, remove, min_interval=self.refresh_interval)

    # -- reading -----------------------------------------------------------------------------------

    def to_dataframe(self) -> pd.DataFrame:
        """The subject overview: one row per subject shown (the filter applies), sorted by subject.

        Columns: subject, count, rate (messages/s), bytes, first_seen, last_seen.
        """
        frame = self.index.to_dataframe()
        match = subject_matcher(self.filter)
        if match is not None and len(frame):
            frame = frame[frame["subject"].map(match).astype(bool)].reset_index(drop=True)
        return frame

    def tree(self) -> SubjectTreeNode:
        """The subject tree with the filter applied (the root's path is ``""``)."""
        tree = self.index.tree()
        match = subject_matcher(self.filter)
        if match is None:
            return tree
        return _pruned(tree, match) or SubjectTreeNode(token="", path="")

    # -- selection and folding ---------------------------------------------------------------------

    def select(self, path: str) -> None:
        """Select a subject (or a subject prefix) as a click in the tree does; ``""`` selects nothing."""
        self.selected = path

    def toggle(self, path: str) -> None:
        """Fold ``path`` if it is unfolded, else unfold it."""
        if not path:
            return
        if path in self.collapsed:
            self.collapsed = [p for p in self.collapsed if p != path]
        else:
            self.collapsed = [*self.collapsed, path]

    def expand_all(self) -> None:
        """Unfold every node."""
        self.collapsed = []

    def collapse_all(self) -> None:
        """Fold every node below the top level."""
        tree = self.tree()
        self.collapsed = [node.path for _, node in tree.walk() if node.path and node.children]

    def _on_tree_value(self, change: Any) -> None:
        if self._updating_tree:
            return
        path = change.new
        if path is None or path == _MORE:
            return
        if path in self.collapsed:  # a click on a folded node unfolds it
            self.collapsed = [p for p in self.collapsed if p != path]
        self.selected = path

    @traitlets.observe("selected")
    def _on_selected(self, change: Any) -> None:
        shown = change.new if change.new in self._nodes else None
        if self.tree_view.value != shown:  # selected from code: show it in the tree too
            self._updating_tree = True
            try:
                self.tree_view.value = shown
            finally:
                self._updating_tree = False
        self._request_render(now=True)

    @traitlets.observe("filter", "collapsed", "show_raw", "last_messages", "max_nodes")
    def _on_view_option(self, _change: Any) -> None:
        self._request_render(now=True)

    # -- the table ---------------------------------------------------------------------------------

    def open_table(self, subject: str | None = None, **table_kwargs: Any) -> MessageTable:
        """Show a live MessageTable of ``subject`` (default: the selected node) below the browser.

        A folder (a subject prefix) opens a table of everything below it (``prefix.>``). The table
        replaces the one shown before (whose capture stops).

        Args:
            subject: A subject or subject prefix; ``None`` takes :attr:`selected`.
            table_kwargs: Passed on to :class:`MessageTable` (``max_rows`` defaults to ``table_max_rows``).

        Raises:
            ValueError: Nothing is selected and no subject was given.
        """
        target = self.selected if subject is None else subject
        if not target:
            raise ValueError("select a subject in the tree first, or pass one: open_table('v1.thing.>')")
        node = self._nodes.get(target)
        if node is None:
            node = self.index.tree().find(target)
        is_folder = node is not None and not node.is_subject and bool(node.children)
        pattern = f"{target}.>" if is_folder else target
        table_kwargs.setdefault("max_rows", self.table_max_rows)
        table = MessageTable(pattern, connection=self._connection, **table_kwargs)
        self.close_table()
        self.table = table
        self.table_area.children = [self.close_table_button, table]
        return table

    def close_table(self) -> None:
        """Close the table "Open table" showed (its capture stops)."""
        table, self.table = self.table, None
        self.table_area.children = []
        if table is not None:
            table.close()

    def _open_table_clicked(self) -> None:
        try:
            self.open_table()
        except Exception as e:
            self._show_error(f"open table failed: {type(e).__name__}: {e}")

    def close(self) -> None:
        """Stop the index (if the browser made it), the table's capture, and the view's tasks."""
        if "table_area" in self.__dict__:
            self.close_table()
        super().close()

    async def aclose(self) -> None:
        table = self.table
        self.close_table()
        if table is not None:
            await table.aclose()
        await super().aclose()

    # -- rendering ---------------------------------------------------------------------------------

    def _render(self) -> None:
        tree = self.tree()
        self._render_tree(tree)
        index = self.index
        self.subject_count = tree.subjects
        self.message_count = index.received
        total = len(index)
        parts = [
            f"{tree.subjects:,} of {plural(total, 'subject')}"
            if self.filter.strip()
            else plural(total, "subject"),
            plural(tree.count, "message"),
            f"{tree.rate:,.1f}/s",
        ]
        if index.untracked_messages:
            parts.append(
                f"{plural(index.untracked_messages, 'message')} on untracked subjects (max_subjects)"
            )
        lost = index.lost
        if lost:
            parts.append(f"<span style='color:#c62828'>{lost:,} lost (slow consumer)</span>")
        if self.paused:
            parts.append(f"<b>paused</b>, {index.skipped:,} skipped")
        elif not self.running:
            parts.append("<b>stopped</b>")
        self.summary_view.value = summary_html(parts)
        self._render_detail(tree)
        self._set_shows_traffic(tree.rate > 0)

    def _render_tree(self, tree: SubjectTreeNode) -> None:
        collapsed = set(self.collapsed)
        rows: list[tuple[int, SubjectTreeNode]] = []
        hidden = 0

        def visit(node: SubjectTreeNode, depth: int) -> None:
            nonlocal hidden
            for child in node.children.values():
                if len(rows) >= self.max_nodes:
                    hidden += 1
                    continue
                rows.append((depth, child))
                if child.children and child.path not in collapsed:
                    visit(child, depth + 1)

        visit(tree, 0)
        self._nodes = {node.path: node for _, node in rows}
        heads = []
        for depth, node in rows:
            if node.children:
                marker = "▸" if node.path in collapsed else "▾"
            else:
                marker = "·"
            heads.append(f"{'  ' * depth}{marker} {node.token}")
        width = min(48, max((len(h) for h in heads), default=0))
        options = [
            (f"{head:<{width}}  {node.count:>9,}  {node.rate:>8,.1f}/s", node.path)
            for head, (_, node) in zip(heads, rows, strict=True)
        ]
        if hidden:
            options.append((f"... {hidden:,} more nodes: filter or fold", _MORE))
        if not options:
            options.append(
                ("(no subjects yet)" if not len(self.index) else "(nothing matches the filter)", _MORE)
            )
        new = tuple(options)
        if new == self._shown_options:
            return
        self._shown_options = new
        selected = self.selected if self.selected in self._nodes else None
        self._updating_tree = True
        try:
            with self.tree_view.hold_sync():
                self.tree_view.options = new  # resets the selection to the first row ...
                self.tree_view.value = selected  # ... so set it again
        finally:
            self._updating_tree = False

    def _render_detail(self, tree: SubjectTreeNode) -> None:
        path = self.selected
        self.open_table_button.disabled = not path
        self.fold_button.disabled = not (path and path in self._nodes and self._nodes[path].children)
        self.fold_button.description = "Unfold" if path in self.collapsed else "Fold"
        if not path:
            self.detail_view.value = (
                f"<span style='color:{_MUTED}'>Select a subject to see its last messages.</span>"
            )
            self.sparkline_view.value = ""
            self.messages_view.value = ""
            return
        if path not in self.index:
            node = tree.find(path)
            if node is None or not node.path:
                self.detail_view.value = (
                    f"<b>{html.escape(path)}</b><br><span style='color:{_MUTED}'>no messages yet</span>"
                )
            else:
                self.detail_view.value = f"<b>{html.escape(path)}.&gt;</b><br>" + summary_html(
                    [plural(node.subjects, "subject"), plural(node.count, "message"), f"{node.rate:,.1f}/s"]
                )
            self.sparkline_view.value = ""
            self.messages_view.value = ""
            return
        stats = self.index.stats(path)
        self.detail_view.value = f"<b>{html.escape(path)}</b><br>" + summary_html(
            [
                plural(stats.count, "message"),
                f"{stats.rate:,.1f}/s",
                plural(stats.bytes, "byte"),
                f"last {stats.last_seen.strftime('%H:%M:%S')} UTC",
            ]
        )
        self.sparkline_view.value = self._sparklines_html(stats.history)
        self.messages_view.value = self._messages_html(path)

    def _sparklines_html(self, history: dict[str, list[float]]) -> str:
        rows = []
        for name, values in list(history.items())[:_MAX_SPARKLINES]:
            if not values:
                continue
            last = values[-1]
            rows.append(
                "<tr>"
                f"<td style='padding:0 8px 0 0'><code>{html.escape(name)}</code></td>"
                f"<td>{sparkline_svg(values)}</td>"
                f"<td style='padding:0 0 0 8px'><b>{last:.4g}</b> "
                f"<span style='color:{_MUTED}'>min {min(values):.4g} max {max(values):.4g} "
                f"({plural(len(values), 'value')})</span></td></tr>"
            )
        if not rows:
            return ""
        return f"<table style='border-collapse:collapse;font-size:90%'>{''.join(rows)}</table>"

    def _messages_html(self, subject: str) -> str:
        recent = self.index.recent(subject, self.last_messages)
        # The model of a Subject pattern decodes its payloads; SubjectIndex keeps it but does not expose it.
        msg_cls = self.index.msg_cls
        blocks = []
        for received, raw in recent:
            payload, error = decode_payload(raw, msg_cls)
            head = f"{received.strftime('%H:%M:%S.%f')[:-3]} UTC · {plural(len(raw), 'byte')}"
            if error is not None:
                body = f"<span style='color:#c62828'>{html.escape(error)}</span>"
            else:
                body = html.escape(_pretty(payload))
            if self.show_raw:
                body += f"\n<span style='color:{_MUTED}'>{html.escape(hexdump(raw))}</span>"
            blocks.append(
                f"<div style='color:{_MUTED};font-size:85%'>{head}</div><pre style='{_PRE}'>{body}</pre>"
            )
        if not blocks:
            return ""
        return "<div style='max-height:16em;overflow:auto'>" + "".join(blocks) + "</div>"

    def __repr__(self) -> str:
        return f"SubjectBrowser({self.index.pattern}, {plural(len(self.index), 'subject')})"


_PRE = (
    "margin:0 0 6px 0;white-space:pre-wrap;font-size:90%;"
    "background:var(--jp-layout-color2,#f5f5f5);padding:4px"
)
