"""SubjectBrowser: a live, virtualized tree of the subjects on the broker, and what the selected one carries.

A thin view over :class:`fastiot.subjects.SubjectIndex`, which counts every message per subject. The
tree (:mod:`~fastiot_widgets.subject_tree`, an anywidget) draws only the rows in view, so 10,000
subjects scroll as smoothly as ten, and each update sends only the rows in view that changed: count,
rate (per minute below 1/s), the last value inline and "3 s ago"; a row flashes when its subject
gets a message. Sort by name, count, rate or last seen (click a column head). The pattern field
changes the index's subscription; the filter narrows the tree down. NATS' own subjects (``$JS.``,
``$KV.``, ``$SYS.``, ``$MQTT.``, ``$SRV.``, any ``$...``, ``_INBOX.``) are hidden until "System
subjects" shows them; the index counts them all the same. Pause freezes the view while the index
keeps counting, so counts and rates are right again at Resume.

Selecting a subject shows (:mod:`~fastiot_widgets.subject_detail`) its statistics, NATS headers, the
model's JSON schema when the subject is typed, its newest fields (changed ones marked; a numeric one
opens a :class:`~fastiot_widgets.LivePlot`), the diff of its last two messages (or of any two you
pick) and its recent messages decoded. "Open table" shows a live MessageTable, "Record" records the
pattern into JetStream (:mod:`fastiot.history`).

Example:
    >>> from fastiot_widgets import SubjectBrowser
    >>> browser = SubjectBrowser("v1.>")                  # doctest: +SKIP
    >>> browser                                           # shows it   # doctest: +SKIP
    >>> browser.select("v1.thing.press_1.temperature")    # or click it  # doctest: +SKIP
    >>> browser.detail["diff"]["changes"]                 # what changed last  # doctest: +SKIP
    >>> plot = browser.open_plot(field="value")           # or click "plot"  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import html
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import traitlets

from fastiot._tasks import loop_is_running
from fastiot.core.broker_connection import BrokerConnection, NatsBrokerConnection
from fastiot.core.data_models import Subject
from fastiot.core.subject_helper import is_system_subject
from fastiot.exceptions import JetStreamUnavailableError
from fastiot.services import which_services
from fastiot.subjects import SubjectIndex
from fastiot.subjects.tree import (
    DEFAULT_RESORT_INTERVAL,
    MAX_NEW_PER_SYNC,
    SORT_KEYS,
    LiveSubjectTree,
    SubjectTree,
    TreeRow,
    subject_matcher,
)

from . import _loop_bound as ui
from ._code import code_for_browser, code_for_capture, code_for_record
from ._common import close_widgets, plural
from ._live import DEFAULT_REFRESH_INTERVAL, summary_html
from ._subject_browser_layout import SubjectBrowserLayout
from .live_plot import LivePlot
from .message_table import MessageTable
from .subject_detail import (
    DEFAULT_LAST_MESSAGES,
    folder_detail,
    subject_detail,
)
from .subject_tree import DEFAULT_TREE_HEIGHT, recent_messages

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_TABLE_MAX_ROWS", "SubjectBrowser", "subject_matcher"]

DEFAULT_TABLE_MAX_ROWS = 10_000
# While the tree takes in thousands of new subjects, slice after slice, this long between the slices.
_CATCH_UP_DELAY = 0.05
_ERROR = "#c62828"


def _is_system_top(token: str) -> bool:
    """Whether the subjects below a top-level token are NATS' own (the tree hides that node)."""
    return is_system_subject(f"{token}.")


class SubjectBrowser(SubjectBrowserLayout):
    """A live, virtualized tree of subjects with counts, rates and last values, and a detail pane.

    Args:
        pattern: The NATS pattern to watch (``">"``: everything), a
            :class:`~fastiot.core.data_models.Subject`, or a :class:`~fastiot.subjects.SubjectIndex` to
            view (which the browser then neither starts nor stops; pass no ``connection`` with it).
        connection: The broker connection; ``None`` means the workbench connection.
        refresh_interval: The least seconds between two updates of the view.
        table_max_rows: ``max_rows`` of the MessageTable "Open table" shows.
        height: The tree's height in pixels.
        index_kwargs: Passed on to :class:`~fastiot.subjects.SubjectIndex` (``history``,
            ``max_subjects``, ...).

    The index (the headless model) is :attr:`index`; :meth:`rows` are the tree's rows as shown and
    :attr:`detail` what the detail pane shows. In a notebook the index starts when the browser is
    made; ``await browser.start()`` waits for that. :meth:`close` stops it.
    """

    selected = traitlets.Unicode("", help="The selected row: a subject or a subject prefix; '' for none.")
    pattern = traitlets.Unicode(
        ">", help="The NATS pattern the index subscribes to; changing it re-subscribes."
    )
    filter = traitlets.Unicode(
        "", help="Show only subjects containing this text (any case), or matching it as a NATS pattern."
    )
    collapsed = traitlets.List(traitlets.Unicode(), help="The tree nodes (subject prefixes) shown folded.")
    sort_by = traitlets.Enum(SORT_KEYS, default_value="name", help="Sort by name, count, rate or last seen.")
    show_raw = traitlets.Bool(False, help="Show the raw bytes of the selected subject's messages too.")
    show_deliveries = traitlets.Bool(
        False,
        help="Count what JetStream consumers deliver (a recording being read, a KV watch) as messages too; "
        "off, only what is published counts.",
    )
    show_system = traitlets.Bool(
        False,
        help="Show NATS' system subjects ($JS., $KV., $SYS., $MQTT., $SRV., ... _INBOX.); the index counts "
        "them either way (_INBOX. ones only with include_inbox=True).",
    )
    nats_names = traitlets.Bool(
        False,
        help="Show MQTT devices' subjects as NATS names (tele.plug_1.SENSOR, spBv1//0) instead of their "
        "MQTT topics (tele/plug_1/SENSOR, spBv1.0/...) with QoS and retained flags.",
    )
    last_messages = traitlets.Int(DEFAULT_LAST_MESSAGES, help="How many recent messages the pane shows.")
    resort_interval = traitlets.Float(
        DEFAULT_RESORT_INTERVAL, help="Seconds between re-sorts by a live number (rows then stay put)."
    )
    subject_count = traitlets.Int(0, help="Subjects in the tree (after the filter), as last rendered.")
    message_count = traitlets.Int(0, help="Messages counted since start or clear, as last rendered.")
    recording = traitlets.Any(None, help="The Recording that Record started, while it runs; else None.")

    def __init__(
        self,
        pattern: str | Subject | SubjectIndex = ">",
        connection: BrokerConnection | None = None,
        *,
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
        table_max_rows: int = DEFAULT_TABLE_MAX_ROWS,
        height: int = DEFAULT_TREE_HEIGHT,
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
            index = SubjectIndex(pattern, connection, **index_kwargs)
            owns = True
        self.index: SubjectIndex = index
        self.tree_model: LiveSubjectTree = LiveSubjectTree(index)
        self.tree_model.hide_top = _is_system_top  # until show_system
        self.table: MessageTable | None = None
        self.plot: LivePlot | None = None
        self.table_max_rows: int = table_max_rows
        self._detail_due: bool = True
        self._detail_count: int = -1  # messages at or below the selection when the pane was drawn

        self._make_controls(
            pattern=index.pattern,
            height=height,
            code=self._code,
            record_code=lambda: code_for_record(self._recording_name(), self.index.pattern),
        )
        self.tree_view.handlers(toggle=self.toggle, hello=lambda: self._request_render(now=True))
        self.detail_view.on_plot(lambda field: self._clicked(lambda: self.open_plot(field=field), "plot"))
        self.unfold_all_button.on_click(lambda _b: self.expand_all())
        self.fold_all_button.on_click(lambda _b: self.collapse_all())
        self.open_table_button.on_click(lambda _b: self._clicked(self.open_table, "open table"))
        self.record_button.on_click(lambda _b: self._record_clicked())

        super().__init__(
            index, owns_model=owns, connection=connection, refresh_interval=refresh_interval, children=[]
        )
        self.pattern = index.pattern
        widgets.link((self.pattern_box, "value"), (self, "pattern"))
        widgets.link((self.filter_box, "value"), (self, "filter"))
        widgets.link((self.sort_box, "value"), (self, "sort_by"))
        widgets.link((self.tree_view, "sort_by"), (self, "sort_by"))
        widgets.link((self.tree_view, "selected"), (self, "selected"))
        widgets.link((self.raw_button, "value"), (self, "show_raw"))
        widgets.link((self.system_button, "value"), (self, "show_system"))
        widgets.link((self.nats_names_button, "value"), (self, "nats_names"))
        self.show_deliveries = index.include_deliveries
        widgets.link((self.deliveries_button, "value"), (self, "show_deliveries"))
        widgets.dlink((self, "paused"), (self.tree_view, "paused"))
        self.tree_view.observe(lambda _c: self._request_render(now=True), names="viewport")
        self.detail_view.observe(self._on_diff_pair, names="diff_pair")
        self.children = self._arrange()
        self.refresh()

    def _listen(self, callback: Any, remove: bool) -> None:
        self.index.on_change(callback, remove, min_interval=self.refresh_interval)

    def _on_model_news(self, news: Any) -> None:
        self.tree_model.note(news)
        super()._on_model_news(news)

    # -- reading ------------------------------------------------------------------------------------

    @property
    def detail(self) -> dict[str, Any]:
        """What the detail pane shows for the selection (see :func:`.subject_detail.subject_detail`)."""
        return dict(self.detail_view.detail)

    def to_dataframe(self) -> pd.DataFrame:
        """The subject overview, one row per subject shown (the filter applies), sorted by subject."""
        frame = self.index.to_dataframe()
        if not self.show_system and len(frame):
            frame = frame[~frame["subject"].map(is_system_subject).astype(bool)].reset_index(drop=True)
        match = subject_matcher(self.filter)
        if match is not None and len(frame):
            frame = frame[frame["subject"].map(match).astype(bool)].reset_index(drop=True)
        return frame

    def rows(self, start: int = 0, stop: int | None = None) -> list[TreeRow]:
        """The tree's rows from ``start`` to ``stop`` as shown (children of folded nodes left out)."""
        flat = self.tree_model.flat()
        now = time.monotonic()
        return [self.tree_model.row(node, now) for node in flat[start : len(flat) if stop is None else stop]]

    # -- selection, folding, sorting ----------------------------------------------------------------

    def select(self, path: str) -> None:
        """Select a subject (or a subject prefix), unfold its ancestors and scroll it into view."""
        self.tree_model.reveal(path)
        self.collapsed = sorted(self.tree_model.collapsed)
        self.selected = path

    def toggle(self, path: str) -> None:
        """Fold ``path`` if it is unfolded, else unfold it (what a click on a caret does)."""
        if path in self.collapsed:
            self.collapsed = [p for p in self.collapsed if p != path]
        elif path:
            self.collapsed = [*self.collapsed, path]

    def expand_all(self) -> None:
        """Unfold every node."""
        self.collapsed = []

    def collapse_all(self) -> None:
        """Fold every node that has children (the top level stays in view)."""
        self.collapsed = self.tree_model.folders()

    def scroll_to(self, path: str) -> None:
        """Scroll the tree so the row of ``path`` is in view (unfolding its ancestors)."""
        self.tree_model.reveal(path)
        index = self.tree_model.index_of(path)
        if index is not None:
            self.tree_view.scroll_to(index)

    @traitlets.observe("selected")
    def _on_selected(self, change: Any) -> None:
        self._detail_due = True
        if change.new:
            self.scroll_to(change.new)
        self.detail_view.diff_pair = [1, 0]
        self._request_render(now=True)

    @traitlets.observe("collapsed", "filter", "sort_by", "show_system", "nats_names")
    def _on_tree_option(self, _change: Any) -> None:
        tree = self.tree_model
        tree.mqtt_names = not self.nats_names
        self._detail_due = True
        tree.hide_top = None if self.show_system else _is_system_top
        tree.collapsed = set(self.collapsed)
        tree.match = subject_matcher(self.filter)
        tree.sort_by = self.sort_by
        tree.invalidate()
        tree.resorted = 0.0
        self._request_render(now=True)

    @traitlets.observe("show_raw", "last_messages")
    def _on_detail_option(self, _change: Any) -> None:
        self._detail_due = True
        self._request_render(now=True)

    def _on_diff_pair(self, _change: Any) -> None:
        self._detail_due = True
        self._request_render(now=True)

    def diff_messages(self, older: int, newer: int) -> dict[str, Any] | None:
        """Diff two of the selected subject's recent messages (0 = newest); returns the pane's diff."""
        self.detail_view.diff_pair = [older, newer]
        self.refresh()
        return self.detail.get("diff")

    @traitlets.observe("show_deliveries")
    def _on_show_deliveries(self, change: Any) -> None:
        if "index" in self.__dict__ and change.new != self.index.include_deliveries:
            self._clicked(lambda: self.index.set_include_deliveries(change.new), "show deliveries")

    @traitlets.observe("pattern")
    def _on_pattern(self, change: Any) -> None:
        if change.new == self.index.pattern or not change.new.strip():
            return
        self._clicked(lambda: self.set_pattern(change.new.strip()), "subscribe")

    async def set_pattern(self, pattern: str) -> None:
        """Subscribe the index to ``pattern`` instead (what the pattern field does)."""
        await self.index.set_pattern(pattern)
        self.pattern = self.index.pattern
        self.tree_model.note(set())
        self._request_render(now=True)

    # -- actions ------------------------------------------------------------------------------------

    def _clicked(self, action: Callable[[], Any], what: str) -> None:
        """Run a click's action; a coroutine it returns runs in the background; failures are shown."""
        try:
            result = action()
        except Exception as e:
            self._show_error(f"{what} failed: {type(e).__name__}: {e}")
            return
        if hasattr(result, "__await__"):
            self._tasks.spawn(result, what=what)

    def _target_pattern(self, subject: str | None) -> str:
        target = self.selected if subject is None else subject
        if not target:
            raise ValueError("select a subject in the tree first, or pass one: open_table('v1.thing.>')")
        node = self.tree_model.nodes.get(target)
        return f"{target}.>" if node is not None and not node.is_subject and node.children else target

    def open_table(self, subject: str | None = None, **table_kwargs: Any) -> MessageTable:
        """Show a live MessageTable of ``subject`` (default: the selection; a folder: all below it).

        Raises:
            ValueError: Nothing is selected and no subject was given.
        """
        pattern = self._target_pattern(subject)
        table_kwargs.setdefault("max_rows", self.table_max_rows)
        table = MessageTable(pattern, connection=self._connection, **table_kwargs)
        self.close_table()
        self.table = table
        close = ui.Button(description="Close table", icon="times", layout={"width": "auto"})
        close.on_click(lambda _b: self.close_table())
        self.table_area.children = [close, table]
        return table

    def close_table(self) -> None:
        """Close the table "Open table" showed (its capture stops)."""
        self.table = None
        shown, self.table_area.children = self.table_area.children, ()
        close_widgets(*shown)  # the table and its Close button

    def open_plot(self, subject: str | None = None, field: str = "value", *, new: bool = False) -> LivePlot:
        """Plot ``field`` of ``subject`` (default: the selection) live below the browser.

        The field joins the plot already open (several subjects and fields on one chart) unless
        ``new``; the plot's Close button or :meth:`close_plot` removes it.

        Raises:
            ValueError: Nothing is selected and no subject was given.
        """
        pattern = self._target_pattern(subject)
        plot = self.plot
        if plot is not None and not new:
            self._tasks.spawn(plot.add(pattern, field), what="plot")
            return plot
        plot = LivePlot(pattern, field, connection=self._connection)
        self.close_plot()
        self.plot = plot
        close = ui.Button(description="Close plot", icon="times", layout={"width": "auto"})
        close.on_click(lambda _b: self.close_plot())
        self.plot_area.children = [close, plot]
        return plot

    def close_plot(self) -> None:
        """Close the plot (its subscription ends)."""
        self.plot = None
        shown, self.plot_area.children = self.plot_area.children, ()
        close_widgets(*shown)  # the plot and its Close button

    def _recording_name(self) -> str:
        stem = "".join(c if c.isalnum() else "_" for c in self.index.pattern).strip("_") or "all"
        return f"{stem}_{dt.datetime.now().strftime('%Y%m%d_%H%M%S')}"

    async def record(self, name: str | None = None) -> Any:
        """Start recording the subscribed pattern into JetStream as ``name`` (what Record does).

        On ``>`` (everything) a broker with the rolling history records everything but NATS' own
        subjects from it; elsewhere the first tokens of the subjects seen so far are recorded
        (``v1`` and ``v1.>``, ...), as JetStream cannot record ``>`` next to buckets and other streams.

        Returns:
            The :class:`fastiot.history.Recording`; :meth:`stop_recording` (or Stop) ends it.

        Raises:
            JetStreamUnavailableError: The browser watches a connection that is not to a NATS server.
        """
        # Imported on use: JetStream is needed only to record.
        from fastiot.exceptions import InvalidRecordingError
        from fastiot.history import Recording
        from fastiot.history.rolling import covers_system_subjects, first_token_patterns

        # On the broker the browser watches, not on whichever one FASTIOT_NATS_* names.
        connection = self.index.connection
        if connection is not None and not isinstance(connection, NatsBrokerConnection):
            raise JetStreamUnavailableError(
                f"recording needs JetStream on a NATS server, and this browser watches a "
                f"{type(connection).__name__}; give SubjectBrowser a NatsBrokerConnection (or none, for the "
                f"workbench's) to record"
            )
        name = name or self._recording_name()
        try:
            recording = await Recording.start(name, self.index.pattern, connection=connection)
        except InvalidRecordingError:
            seen = first_token_patterns(self.index.subjects)
            if not covers_system_subjects(self.index.pattern) or not seen:
                raise
            recording = await Recording.start(name, seen, connection=connection)
        self.recording = recording
        return recording

    async def stop_recording(self) -> None:
        """Stop the recording Record started."""
        recording, self.recording = self.recording, None
        if recording is not None:
            await recording.stop()

    def _record_clicked(self) -> None:
        self._clicked(self.stop_recording if self.recording is not None else self.record, "record")

    @traitlets.observe("recording")
    def _on_recording(self, change: Any) -> None:
        recording = change.new
        self.record_button.description = "Stop recording" if recording is not None else "Record"
        self.record_button.icon = "stop" if recording is not None else "circle"
        name = getattr(recording, "name", "")
        self.status_view.value = (
            f"<span style='color:{_ERROR}'>&#9679;</span> recording <b>{html.escape(str(name))}</b> "
            f"({html.escape(', '.join(getattr(recording, 'subjects', [])))})"
            if recording is not None
            else ""
        )

    def _code(self) -> str:
        if self.table is not None:  # "Open table" showed one: its code, the last thing done here
            return self.table._code()
        if not self.selected:
            return code_for_browser(self.index.pattern)
        return code_for_capture(self._target_pattern(None), wait_for=10)

    def close(self) -> None:
        """Stop the index (if the browser made it), the table's capture, the plot, and the view's tasks."""
        if "table_area" in self.__dict__:
            self.close_table()
            self.close_plot()
        super().close()

    async def aclose(self) -> None:
        table, plot = self.table, self.plot
        self.close_table()
        self.close_plot()
        if table is not None:
            await table.aclose()
        if plot is not None:
            await plot.aclose()
        await super().aclose()

    # -- rendering ----------------------------------------------------------------------------------

    def _render(self) -> None:
        index = self.index
        if self.paused:
            since = max(0, index.received - self.message_count)
            self.summary_view.value = summary_html(
                [f"<b>paused</b>: {plural(since, 'message')} since, still counted"]
            )
            return
        now = time.monotonic()
        tree = self.tree_model
        tree.sync(now, MAX_NEW_PER_SYNC if loop_is_running() else None)
        tree.resort(now, self.resort_interval)
        flat = tree.flat()
        window = self.tree_view.window()
        rows = {i: tree.row(flat[i], now) for i in window if i < len(flat)}
        flash = tree.grown(rows)
        reset = self._flat_id != id(flat)
        self._flat_id = id(flat)
        self.tree_view.empty_text = "no subjects yet" if not len(tree) else "nothing matches the filter"
        self.tree_view.show(len(flat), rows, reset=reset, flash=sorted(flash), now_ns=time.time_ns())
        self.subject_count = tree.matching_subjects(tree.root)
        self.message_count = index.received
        self._render_detail()
        self._render_summary(tree)
        self._set_shows_traffic(True)  # ages and rates change without messages
        if tree.behind:  # new subjects not in the tree yet: the next slice of them soon
            self._request_render(delay=_CATCH_UP_DELAY)

    _flat_id: int = 0

    def _render_summary(self, tree: SubjectTree) -> None:
        index = self.index
        hidden = sum(top.subjects for top in tree.hidden())
        total = len(tree) - hidden
        parts = [
            f"{self.subject_count:,} of {plural(total, 'subject')}"
            if self.filter.strip()
            else plural(total, "subject"),
            plural(index.received, "message"),
            f"pattern {index.pattern}",
        ]
        if hidden:
            parts.append(f"{plural(hidden, 'system subject')} hidden")
        if index.untracked_messages:
            parts.append(
                f"{plural(index.untracked_messages, 'message')} on untracked subjects (max_subjects)"
            )
        if index.lost:
            parts.append(f"<span style='color:{_ERROR}'>{index.lost:,} lost (slow consumer)</span>")
        if not self.running:
            parts.append("<b>stopped</b>")
        self.summary_view.value = summary_html(parts)

    def _render_detail(self) -> None:
        path = self.selected
        self.open_table_button.disabled = not path
        node = self.tree_model.nodes.get(path)
        count = self.tree_model.count_of(node) if node is not None else 0
        if not self._detail_due and count == self._detail_count:
            return  # nothing new at or below the selection
        self._detail_due = False
        self._detail_count = count
        if not path:
            self.detail_view.detail = {}
            return
        if path not in self.index:
            if node is None:
                self.detail_view.detail = {"path": path, "kind": "folder", "summary": _EMPTY_FOLDER}
            else:
                self.detail_view.detail = folder_detail(
                    path,
                    subjects=node.subjects,
                    count=count,
                    rate=self.tree_model.node_rate(node, time.monotonic()),
                    last_seen_ns=self.tree_model.last_seen_of(node),
                )
            return
        stats = self.index.stats(path)
        self.detail_view.detail = subject_detail(
            path,
            recent_messages(self.index, path, self.last_messages),
            count=stats.count,
            rate=stats.rate,
            size=stats.bytes,
            first_seen_ns=int(stats.first_seen.timestamp() * 1e9),
            last_seen_ns=int(stats.last_seen.timestamp() * 1e9),
            diff_pair=self.detail_view.diff_pair,
            show_raw=self.show_raw,
            mqtt=None if self.nats_names else self.index.mqtt(path),
        ) | {"services": [f"{s.name} ({s.use_of(path)})" for s in which_services(path)]}

    def __repr__(self) -> str:
        return f"SubjectBrowser({self.index.pattern}, {plural(len(self.index), 'subject')})"


_EMPTY_FOLDER = {"subjects": 0, "count": 0, "rate": "0/s", "last_seen": 0}
