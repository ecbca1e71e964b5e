"""Timeline: scrub through a recording with a cursor; a SubjectBrowser, LivePlot and MessageTable follow it.

A thin view over :class:`fastiot.history.Timeline` and :class:`fastiot.history.follow.CursorFollower`:
the time axis with the density strip (an anywidget, :mod:`timeline_axis.js`), a cursor to drag or type a
time into, play/pause at 0.1-100x with the cursor moving, and buttons to step to the selected subject's
previous or next message. Views opened from it follow the cursor without reloading what they hold;
each shows a "Follow" toggle (``view.follow_button``) that keeps it where it is while off.

Example:
    >>> from fastiot.history import Timeline as TimelineModel
    >>> from fastiot_widgets import Timeline
    >>> view = Timeline(await TimelineModel.open("plant"))  # doctest: +SKIP
    >>> view                                                 # shows it   # doctest: +SKIP
    >>> browser = view.subject_browser()                     # values at the cursor   # doctest: +SKIP
    >>> plot = view.live_plot("value")                       # the last minute   # doctest: +SKIP
    >>> await view.seek("2026-12-08 03:12")                  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

import anywidget
import ipywidgets as widgets
import pandas as pd
import traitlets

from fastiot._tasks import BackgroundTasks, loop_is_running
from fastiot.history import Timeline as TimelineModel
from fastiot.history.follow import CursorFollower, CursorStep
from fastiot.history.timeline import Time, time_ns

from . import _loop_bound as ui
from ._common import close_widgets, front_end_file
from ._timeline_follow import BrowserFollow, PlotFollow, TableFollow
from .errors import WidgetError
from .live_plot import LivePlot
from .message_table import MessageTable
from .subject_browser import SubjectBrowser

__all__ = ["DEFAULT_BINS", "MAX_SPEED", "MIN_SPEED", "Timeline", "TimelineAxis"]

DEFAULT_BINS = 200
MIN_SPEED, MAX_SPEED = 0.1, 100.0
_FRAME_SECONDS = 0.1  # how often the cursor moves while playing


def _ms(ns: int) -> float:
    return ns / 1e6


class TimelineAxis(ui.LoopBound, anywidget.AnyWidget):
    """The axis: range, density strip and cursor (ms since the epoch: what a browser's numbers hold)."""

    _esm = front_end_file("timeline_axis.js")
    start_ms = traitlets.Float(0.0, help="The first message's time, ms since the epoch.").tag(sync=True)
    end_ms = traitlets.Float(0.0, help="The last message's time, ms since the epoch.").tag(sync=True)
    cursor_ms = traitlets.Float(0.0, help="The cursor, ms since the epoch; the browser sets it.").tag(
        sync=True
    )
    density: traitlets.List[list[int]] = traitlets.List(
        help="Per subject group, the message count of each bin."
    ).tag(sync=True)


class Timeline(widgets.VBox):
    """A recording's time axis with a cursor; views made with :meth:`subject_browser`, :meth:`live_plot`
    and :meth:`table` follow it.

    Args:
        timeline: The headless timeline (``await fastiot.history.Timeline.open("plant")``).
        subjects: Only these subjects (patterns) in the views; all if None.
        groups: Subject patterns drawn as separate rows of the density strip; one row of all if None.
        bins: Bins of the density strip.
    """

    playing = traitlets.Bool(False, help="Whether the cursor moves by itself.")
    speed = traitlets.Float(1.0, help="Recording seconds per real second while playing (0.1 to 100).")
    cursor_ns = traitlets.Int(0, help="Where the cursor is and the views show, ns since the epoch.")

    def __init__(
        self,
        timeline: TimelineModel,
        *,
        subjects: str | Sequence[str] | None = None,
        groups: Sequence[str] | None = None,
        bins: int = DEFAULT_BINS,
    ) -> None:
        self.model: TimelineModel = timeline
        self.follower: CursorFollower = CursorFollower(timeline, subjects)
        self.groups: list[str] | None = list(groups) if groups is not None else None
        self.bins: int = bins
        self.views: list[BrowserFollow | PlotFollow | TableFollow] = []
        self.error: str = ""
        self._tasks: BackgroundTasks = BackgroundTasks(on_error=self._show_error)
        self._target: int | None = None
        self._moving: bool = False
        self._moved: asyncio.Event = asyncio.Event()
        self._play_task: asyncio.Task[None] | None = None

        self.axis = TimelineAxis(
            start_ms=_ms(timeline.start_ns), end_ms=_ms(timeline.end_ns), cursor_ms=_ms(timeline.start_ns)
        )
        self.time_text = ui.Text(
            placeholder="2026-12-08 03:12:00",
            description="Time",
            continuous_update=False,
            layout=widgets.Layout(width="320px"),
        )
        self.play_button = ui.ToggleButton(
            description="Play", icon="play", layout=widgets.Layout(width="90px")
        )
        self.speed_slider = ui.FloatLogSlider(
            value=1.0, base=10, min=-1, max=2, step=0.1, description="Speed", readout_format=".1f"
        )
        self.subject_choice = ui.Dropdown(
            options=[], description="Subject", layout=widgets.Layout(width="360px")
        )
        self.previous_button = ui.Button(
            description="Previous", icon="step-backward", layout=widgets.Layout(width="110px")
        )
        self.next_button = ui.Button(
            description="Next", icon="step-forward", layout=widgets.Layout(width="110px")
        )
        self.status = widgets.HTML()
        super().__init__(
            children=[
                self.axis,
                widgets.HBox([self.play_button, self.speed_slider, self.time_text]),
                widgets.HBox([self.subject_choice, self.previous_button, self.next_button]),
                self.status,
            ]
        )
        self.add_class("fastiot-timeline")
        self.axis.observe(self._on_axis, names="cursor_ms")
        self.time_text.observe(self._on_time_text, names="value")
        self.play_button.observe(self._on_play_button, names="value")
        self.speed_slider.observe(lambda c: setattr(self, "speed", float(c["new"])), names="value")
        self.previous_button.on_click(lambda _b: self._spawn(self.step(-1), "stepping back"))
        self.next_button.on_click(lambda _b: self._spawn(self.step(+1), "stepping on"))
        self.follower.on_step(self._on_step)
        self.cursor_ns = timeline.start_ns
        self._started: bool = False
        self._start_task: asyncio.Task[Any] | None = None
        if loop_is_running():
            self._start_task = self._tasks.spawn(self._start(), what="loading the timeline")

    def __repr__(self) -> str:
        return f"<Timeline of {self.model.recording.name!r} at {self.cursor}>"

    @property
    def cursor(self) -> pd.Timestamp:
        """The cursor's time (UTC)."""
        return pd.Timestamp(self.cursor_ns, tz="UTC")

    def _spawn(self, coro: Any, what: str) -> None:
        self._tasks.spawn(coro, what=what)

    def _show_error(self, error: BaseException, what: str = "") -> None:
        self.error = f"{what}: {error}" if what else str(error)
        self.status.value = f'<span style="color:#c62828">{self.error}</span>'

    async def start(self) -> Timeline:
        """Load the density strip and the subjects, and show the state at the cursor (done by the
        constructor in a notebook; awaiting it waits for that)."""
        task = self._start_task
        if task is not None and not task.done():
            await asyncio.shield(task)
        elif not self._started:
            await self._start()
        return self

    async def _start(self) -> None:
        self._started = True
        strip = await self.model.density(self.bins, self.groups)
        self.axis.density = [strip[c].astype(int).tolist() for c in strip.columns]
        subjects = sorted(set(self.follower.sequences) | set(await self._subjects()))
        self.subject_choice.options = subjects
        if self.subject_choice.value is None and subjects:
            self.subject_choice.value = subjects[0]
        await self.seek(self.cursor_ns)

    async def _subjects(self) -> list[str]:
        state = await self.model.at(self.model.end_ns, self.follower.subjects)
        return state["subject"].tolist()

    # -- moving the cursor --------------------------------------------------------------------------

    async def seek(self, t: Time | str) -> CursorStep | None:
        """Move the cursor to ``t`` (a datetime, a ``pandas.Timestamp``, ns, or text like
        ``"2026-12-08 03:12"``, UTC) and wait until the views show the state there.

        Raises:
            WidgetError: ``t`` is text that is no time.
        """
        if isinstance(t, str):
            try:
                stamp = pd.Timestamp(t)
            except ValueError:
                raise WidgetError(f"{t!r} is not a time; type it like 2026-12-08 03:12:00 (UTC)") from None
            t_ns = time_ns(stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp)
        else:
            t_ns = time_ns(t)
        self._target = t_ns
        if not self._moving:
            await self._move_to_target()
        else:
            await self._wait_moved()
        return self.follower.last

    async def _wait_moved(self) -> None:
        while self._moving:
            self._moved.clear()
            await asyncio.wait_for(self._moved.wait(), 30.0)

    async def _move_to_target(self) -> None:
        # Moves that come while one is read are coalesced: only the newest target is read next.
        self._moving = True
        try:
            while self._target is not None:
                target, self._target = self._target, None
                await self.follower.move(target)
        finally:
            self._moving = False
            self._moved.set()

    def _on_axis(self, change: dict[str, Any]) -> None:
        t_ns = int(change["new"] * 1e6)
        # A browser's ms hold ~250 ns at today's times: at an end of the axis, the end exactly.
        start, end = self.model.start_ns, self.model.end_ns
        t_ns = end if t_ns >= end - 1_000 else start if t_ns <= start + 1_000 else t_ns
        if abs(t_ns - self.cursor_ns) >= 1_000_000:  # not the echo of a move made here
            self._target = t_ns
            if not self._moving:
                self._spawn(self._move_to_target(), "moving the cursor")

    def _on_time_text(self, change: dict[str, Any]) -> None:
        if change["new"].strip():
            self._spawn(self.seek(change["new"]), "moving the cursor to the time typed")

    def _on_step(self, step: CursorStep) -> None:
        self.cursor_ns = step.t_ns
        if abs(self.axis.cursor_ms - _ms(step.t_ns)) >= 1.0:
            self.axis.cursor_ms = _ms(step.t_ns)
        changed = ", ".join(step.changed[:5]) + (" ..." if len(step.changed) > 5 else "")
        self.status.value = (
            f"{self.cursor.isoformat()} &middot; {len(step.state)} subjects &middot; "
            f"{len(step.changed)} changed{': ' + changed if changed else ''}"
        )
        if self.subject_choice.options == () and len(step.state):
            self.subject_choice.options = sorted(step.state["subject"])

    async def step(self, direction: int) -> CursorStep | None:
        """Move the cursor to the selected subject's previous (-1) or next (+1) message."""
        subject = self.subject_choice.value
        if not subject:
            raise WidgetError("choose a subject first: the step buttons go to its previous or next message")
        self.model.cursor_ns = self.cursor_ns
        row = await self.model.step(subject, direction)
        if row.empty:
            self.status.value = f"{subject} has no {'next' if direction > 0 else 'previous'} message"
            return None
        return await self.seek(int(row["received_at"].astype("int64").iloc[0]))

    # -- playing ------------------------------------------------------------------------------------

    @traitlets.validate("speed")
    def _check_speed(self, proposal: dict[str, Any]) -> float:
        return float(min(MAX_SPEED, max(MIN_SPEED, proposal["value"])))

    @traitlets.observe("speed")
    def _on_speed(self, change: dict[str, Any]) -> None:
        if abs(self.speed_slider.value - change["new"]) > 1e-9:
            self.speed_slider.value = change["new"]

    def _on_play_button(self, change: dict[str, Any]) -> None:
        self.playing = bool(change["new"])

    @traitlets.observe("playing")
    def _on_playing(self, change: dict[str, Any]) -> None:
        self.play_button.value = change["new"]
        self.play_button.description = "Pause" if change["new"] else "Play"
        self.play_button.icon = "pause" if change["new"] else "play"
        if change["new"] and (self._play_task is None or self._play_task.done()):
            self._play_task = self._tasks.spawn(self._play(), what="playing the timeline")
        elif not change["new"] and self._play_task is not None:
            self._play_task.cancel()
            self._play_task = None

    async def _play(self) -> None:
        last = time.perf_counter()
        if self.cursor_ns >= self.model.end_ns:
            await self.seek(self.model.start_ns)
        while self.playing:
            await asyncio.sleep(_FRAME_SECONDS)
            now = time.perf_counter()
            target = self.cursor_ns + int((now - last) * self.speed * 1e9)
            last = now
            await self.seek(min(target, self.model.end_ns))
            if target >= self.model.end_ns:
                self.playing = False

    def play(self, speed: float | None = None) -> None:
        """Let the cursor move at ``speed`` (recording seconds per second, 0.1 to 100)."""
        if speed is not None:
            self.speed = speed
        self.playing = True

    def pause(self) -> None:
        """Stop the cursor where it is."""
        self.playing = False

    # -- views that follow --------------------------------------------------------------------------

    def _attach(self, view: BrowserFollow | PlotFollow | TableFollow) -> None:
        self.views.append(view)
        self.follower.forget()  # the next move gives the new view everything
        self._target = self.cursor_ns
        if not self._moving and loop_is_running():
            self._spawn(self._move_to_target(), "showing the cursor's state in a new view")

    def subject_browser(self, *, height: int | None = None) -> SubjectBrowser:
        """A SubjectBrowser of each subject's value at the cursor; rows changed by the last move flash."""
        view = BrowserFollow(self.follower, self._tasks, **({"height": height} if height is not None else {}))
        self._attach(view)
        return view.browser

    def live_plot(
        self, fields: str | Sequence[str] = "value", window: dt.timedelta | float = 60.0
    ) -> LivePlot:
        """A LivePlot of ``fields`` over the ``window`` (seconds or a timedelta) ending at the cursor."""
        span = window if isinstance(window, dt.timedelta) else dt.timedelta(seconds=window)
        view = PlotFollow(self.follower, self._tasks, fields, span)
        self._attach(view)
        return view.plot

    def table(self, window: dt.timedelta | float = 10.0, max_rows: int = 10_000) -> MessageTable:
        """A MessageTable of the rows from ``window`` before the cursor to ``window`` after it."""
        span = window if isinstance(window, dt.timedelta) else dt.timedelta(seconds=window)
        view = TableFollow(self.follower, self._tasks, span, max_rows)
        self._attach(view)
        return view.table

    async def settled(self, timeout: float = 30.0) -> None:
        """Wait until the cursor's last move and the views' loads are done (for scripts and tests).

        Raises:
            asyncio.TimeoutError: They are not done after ``timeout`` seconds.
        """
        await asyncio.wait_for(self._settle(), timeout)

    async def _settle(self) -> None:
        while True:
            pending = [t for t in self._tasks.tasks() if t is not self._play_task]
            if pending:
                await asyncio.wait(pending)
            elif self._moving:
                await self._wait_moved()
            else:
                return

    def close(self) -> None:
        """Stop playing, stop the views following, close everything."""
        self.playing = False
        self._tasks.cancel_all()
        for view in self.views:
            view.close()
        self.views.clear()
        self.follower.on_step(self._on_step, remove=True)
        close_widgets(*self.children)
        super().close()
