"""Views that follow a Timeline's cursor: a SubjectBrowser, a LivePlot and a table of a recording.

Each keeps what it holds and takes only what the move changed: the browser gets the messages of the
subjects whose message at the cursor changed (its tree flashes them), the plot adds the rows between the
last cursor and this one (a window ending at the cursor), the table (a MessageTable) reloads only when the
cursor leaves the middle of the rows it holds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from fastiot._tasks import BackgroundTasks
from fastiot.capture import MessageCapture
from fastiot.history.follow import CursorFollower, CursorStep
from fastiot.subjects import SubjectIndex

from . import _loop_bound as ui
from ._live import LiveView
from .live_plot import LivePlot
from .message_table import MessageTable
from .subject_browser import SubjectBrowser

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BrowserFollow", "PlotFollow", "TableFollow"]


class _Latest:
    """Runs ``work(step)`` for the newest step only: moves that come while it runs are coalesced."""

    def __init__(self, tasks: BackgroundTasks, work: Any, what: str) -> None:
        self._tasks, self._work, self._what = tasks, work, what
        self._pending: CursorStep | None = None
        self._running: bool = False

    def __call__(self, step: CursorStep) -> None:
        self._pending = step
        if not self._running:
            self._running = True
            self._tasks.spawn(self._drain(), what=self._what)

    async def _drain(self) -> None:
        try:
            while self._pending is not None:
                step, self._pending = self._pending, None
                await self._work(step)
        finally:
            self._running = False


class _Following:
    """What the three following views share: the "Follow" toggle, and catching up when it is set again.

    Off, the view keeps what it shows and the cursor moves without it; on, it takes the cursor's state
    again (in full: it missed the moves in between).
    """

    follower: CursorFollower
    follow_button: ui.ToggleButton
    _on_step: Any  # what is registered with the follower
    _attached: bool

    def _start_following(self, view: LiveView, on_step: Any) -> None:
        """Show "Follow" on top of ``view`` and register ``on_step`` for the cursor's moves."""
        self._on_step = on_step
        self._attached = True
        self.follow_button = self._make_toggle(view)
        self.follower.on_step(on_step)

    def _make_toggle(self, view: LiveView) -> ui.ToggleButton:
        button = ui.ToggleButton(
            value=True,
            description="Follow",
            icon="link",
            tooltip="Show the state at the timeline's cursor; off keeps what is shown while the cursor moves",
            layout=widgets.Layout(width="auto"),
        )
        button.observe(lambda change: self.follow(bool(change["new"])), names="value")
        view.children = (button, *view.children)
        view.follow_button = button
        return button

    @property
    def following(self) -> bool:
        """Whether the view follows the cursor now."""
        return bool(self.follow_button.value)

    def follow(self, on: bool = True) -> None:
        """Follow the cursor (``on``) or keep what is shown while it moves."""
        self.follow_button.value = on
        if on and not self._attached:
            self._forget()
            self.follower.on_step(self._on_step)
            if self.follower.last is not None:
                self._on_step(self.follower.last)
        elif not on and self._attached:
            self.follower.on_step(self._on_step, remove=True)
        self._attached = on

    def _forget(self) -> None:
        """Forget what the view was fed, so the next step gives it everything at the cursor."""
        raise NotImplementedError

    def _stop(self) -> None:
        if self._attached:
            self.follower.on_step(self._on_step, remove=True)
        self._attached = False


class _FedIndex(SubjectIndex):
    """A SubjectIndex fed with a recording's messages, never subscribed (the browser starts an index it
    is given: here that does nothing, so live traffic never mixes with the state at the cursor)."""

    async def start(self) -> _FedIndex:
        return self


class BrowserFollow(_Following):
    """A SubjectBrowser over an index fed with the recording's messages at the cursor."""

    def __init__(self, follower: CursorFollower, tasks: BackgroundTasks, **browser_kwargs: Any) -> None:
        self.follower: CursorFollower = follower
        self.index: SubjectIndex = _FedIndex(">")
        self.browser: SubjectBrowser = SubjectBrowser(self.index, **browser_kwargs)
        # Not connected, by design: it shows a recording, and "disconnected" would say something is wrong.
        self.browser.connection_status.layout.display = "none"
        self._complete: bool = True  # the index holds the state at the last step it was given
        self._catch_up = _Latest(tasks, self._load_all, "showing the subjects' values at the cursor")
        self._start_following(self.browser, self._on_step)

    def _forget(self) -> None:
        self._complete = False

    def _on_step(self, step: CursorStep) -> None:
        if not self._complete:
            self._catch_up(step)
            return
        if step.gone:
            # The cursor went back before some subjects' first message: the step has every message.
            self.index.clear()
        self.index.add_messages((m.subject, m.data, m.headers) for m in step.messages)

    async def _load_all(self, step: CursorStep) -> None:
        # It missed moves while not following: everything at the cursor (one read, usually cached).
        messages = await self.follower.timeline.messages_at(step.t_ns, self.follower.subjects)
        self.index.clear()
        self.index.add_messages((m.subject, m.data, m.headers) for m in messages)
        self._complete = True

    def close(self) -> None:
        self._stop()
        self.browser.close()


class PlotFollow(_Following):
    """A LivePlot of ``fields`` over the last ``window`` before the cursor."""

    def __init__(
        self,
        follower: CursorFollower,
        tasks: BackgroundTasks,
        fields: str | Sequence[str],
        window: dt.timedelta,
    ) -> None:
        self.follower: CursorFollower = follower
        self.window_ns: int = int(window.total_seconds() * 1e9)
        self.fields: list[str] = [fields] if isinstance(fields, str) else list(fields)
        self.plot: LivePlot = LivePlot.from_dataframe(_empty(self.fields), self.fields, window=window)
        self.loaded_to: int | None = None  # the plot holds the rows up to here
        self._latest = _Latest(tasks, self._load, "loading the plot's rows at the cursor")
        self._start_following(self.plot, self._latest)

    def _forget(self) -> None:
        self.loaded_to = None

    async def _load(self, step: CursorStep) -> None:
        timeline = self.follower.timeline
        t = step.t_ns
        if self.loaded_to is not None and self.loaded_to <= t < self.loaded_to + self.window_ns:
            frame = await timeline.window(self.loaded_to + 1, t, self.follower.subjects)  # only what is new
        else:
            self.plot.series.clear()
            frame = await timeline.window(t - self.window_ns, t, self.follower.subjects)
        if len(frame) and any(f in frame.columns for f in self.fields):
            self.plot.series.add_frame(frame)
        self.loaded_to = t

    def close(self) -> None:
        self._stop()
        self.plot.close()


class TableFollow(_Following):
    """A MessageTable of the rows around the cursor (``window`` before and after it).

    Its capture is never started: it is a bounded, decoding buffer fed with the recording's messages
    (:meth:`MessageCapture.add_messages`), so sort, filter, export and "Plot" work as on live traffic.
    """

    def __init__(
        self, follower: CursorFollower, tasks: BackgroundTasks, window: dt.timedelta, max_rows: int
    ) -> None:
        self.follower: CursorFollower = follower
        self.half_ns: int = int(window.total_seconds() * 1e9)
        self.max_rows: int = max_rows
        self.capture: MessageCapture = MessageCapture(">", max_rows=max_rows)
        self.table: MessageTable = MessageTable(self.capture, live=False)
        self.loaded: tuple[int, int] | None = None
        self._latest = _Latest(tasks, self._load, "loading the table's rows around the cursor")
        self._start_following(self.table, self._latest)

    def _forget(self) -> None:
        self.loaded = None

    async def _load(self, step: CursorStep) -> None:
        t = step.t_ns
        if self.loaded is not None:
            lo, hi = self.loaded
            quarter = (hi - lo) // 4
            if lo + quarter <= t <= hi - quarter:
                return  # still in the middle of what the table holds
        lo, hi = t - self.half_ns, t + self.half_ns
        messages = await self.follower.timeline.window_messages(
            lo, hi, self.follower.subjects, max_rows=self.max_rows
        )
        self.table.clear()
        self.capture.add_messages(
            [m.subject for m in messages],
            [m.time_ns for m in messages],
            [m.data for m in messages],
            {i: m.headers for i, m in enumerate(messages) if m.headers},
        )
        self.loaded = (lo, hi)

    def close(self) -> None:
        self._stop()
        self.table.close()


def _empty(fields: Sequence[str] = ()) -> pd.DataFrame:
    import pandas as pd

    columns = {
        "received_at": pd.Series([], dtype="datetime64[ns, UTC]"),
        "subject": pd.Series([], dtype=object),
    }
    return pd.DataFrame({**columns, **{f: pd.Series([], dtype=float) for f in fields}})
