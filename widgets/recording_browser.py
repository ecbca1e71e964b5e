"""RecordingBrowser: the recordings (JetStream streams) on the server; load, replay or delete a range.

A thin view over :mod:`fastiot.history`: pick a recording to see its messages, size, time range and
per-subject counts; pick a range (everything, the last N minutes, or between two times) and subjects;
then load them into a table or a DataFrame, plot a numeric column of what was loaded, open the
recording on a :class:`~fastiot_widgets.Timeline` whose views follow its cursor, replay them
at a chosen speed (with progress, pause, resume and stop), or delete the recording after a
confirmation. Each action has a "copy as code"
button that inserts the cell doing the same with :mod:`fastiot.history`.

The list follows the server: a recording made or deleted elsewhere appears or disappears (JetStream
advisories). If the recording shown is deleted, the browser says so and goes on with the others.
While the recording shown is still recording, its numbers (messages, size, time range, per-subject
counts) are read again every ``refresh_interval`` seconds; ⟳ reads them at once, and the delete
confirmation states the count read when it is asked.

Example:
    >>> from datetime import timedelta
    >>> from fastiot_widgets import RecordingBrowser
    >>> browser = RecordingBrowser("plant")          # doctest: +SKIP
    >>> browser                                      # shows it  # doctest: +SKIP
    >>> browser.set_range(timedelta(minutes=1))      # the last minute  # doctest: +SKIP
    >>> df = await browser.load()                    # or click "Load into DataFrame"  # doctest: +SKIP
    >>> plot = browser.open_plot("value")            # or choose it and click "Plot"  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import html
from datetime import datetime
from typing import Any

import pandas as pd
import traitlets

from fastiot._tasks import BackgroundTasks, loop_is_running
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import RecordingNotFoundError
from fastiot.history import Bound, Recording, RecordingInfo, Replay
from fastiot.history import Timeline as TimelineModel

from ._common import follow_connection, plural, pre_html, resolve_connection
from ._history_code import code_for_load, code_for_record_subjects, code_for_replay
from ._history_parts import Coalesced, info_html
from ._plot_action import PlotsColumns, numeric_columns
from ._recording_browser_layout import RecordingBrowserLayout
from .data_grid import DataGrid
from .live_plot import LivePlot
from .message_table import MessageTable
from .subject_browser import SubjectBrowser
from .timeline import Timeline

__all__ = ["DEFAULT_INFO_REFRESH", "DEFAULT_MAX_ROWS", "RecordingBrowser"]

DEFAULT_MAX_ROWS = 100_000  # a load never holds more rows than this unless the person asks
# A running recording's numbers are read again this often: one request (plus two per chosen subject,
# at most MAX_SUBJECT_RANGES) every few seconds, however fast the recording grows.
DEFAULT_INFO_REFRESH = 3.0
MAX_SUBJECT_RANGES = 10  # chosen subjects whose time range is read (two requests each)
_ADVISORIES = "$JS.EVENT.ADVISORY.STREAM.*.*"
_LIST_EVENTS = {"CREATED", "DELETED", "UPDATED"}
_REFRESH_DELAY = 0.2  # advisories in a burst (a test suite, a script) give one refresh


def _is_bucket_stream(recording: Recording) -> bool:
    name = recording.name
    return name.startswith("KV_") and recording.subjects == [f"$KV.{name[3:]}.>"]


class RecordingBrowser(PlotsColumns, RecordingBrowserLayout):
    """Browse the recordings on the server; load, replay and delete ranges of them.

    Args:
        recording: The recording to show first (a name); the first one on the server if None.
        connection: The broker connection; ``None`` means the workbench connection.
        replay_connection: Where replays publish; ``None`` publishes on ``connection`` under the
            subject prefix in the replay box (a replay into the recorded subjects on the same broker
            would be recorded again, and is refused).
        max_rows: The most rows one load returns (the first ones of the range); the box can change it.

    From code: ``await browser.refresh()``, ``await browser.show(name)``, ``browser.set_range(...)``,
    ``browser.subjects = [...]``, ``await browser.load()`` (a DataFrame), ``await browser.load_table()``,
    ``browser.open_plot("value")`` (a LivePlot of the loaded frame),
    ``await browser.start_replay()``, ``await browser.delete_recording()``. Clicks do the same in the
    background; a failure shows in :attr:`error`, what happened in :attr:`notice`.
    """

    recordings = traitlets.List(traitlets.Unicode(), help="The recordings on the server, by name.")
    recording = traitlets.Unicode("", help="The name of the recording shown; '' if none.")
    info = traitlets.Dict(
        help="What the shown recording holds: messages, bytes, first_time, last_time, subject_counts, ..."
    )
    loaded_rows = traitlets.Int(0, help="Rows of the last load (in browser.frame).")
    notice = traitlets.Unicode("", help="What the last action did, or that the recording shown was deleted.")
    error = traitlets.Unicode("", help="Why the last action failed; '' if it did not.")
    show_buckets = traitlets.Bool(False, help="List key-value buckets' streams (KV_*) too.")
    refresh_interval = traitlets.Float(
        DEFAULT_INFO_REFRESH,
        help="Seconds between two reads of the numbers of the recording shown while it still records.",
    )

    def __init__(
        self,
        recording: str | None = None,
        *,
        connection: NatsBrokerConnection | None = None,
        replay_connection: NatsBrokerConnection | None = None,
        max_rows: int = DEFAULT_MAX_ROWS,
    ) -> None:
        self._connection: NatsBrokerConnection | None = connection
        self._replay_connection: NatsBrokerConnection | None = replay_connection
        self._tasks: BackgroundTasks = BackgroundTasks(self._on_task_error)
        # The periodic re-read lives apart from the clicks' tasks: wait_idle() waits for clicks only.
        self._follower: BackgroundTasks = BackgroundTasks(self._on_task_error)
        self._follow_task: asyncio.Task[None] | None = None
        self._advisory: Any = None
        self._refresh_soon = Coalesced(self.refresh, _REFRESH_DELAY, self._background, "list the recordings")
        self._updating: bool = False
        self._wanted: str | None = recording
        self.frame: pd.DataFrame | None = None
        """The DataFrame of the last load."""
        self.table: DataGrid | None = None
        """The table of the last "Load into table"."""
        self.replay: Replay | None = None
        """The replay started last."""
        self.timeline: Timeline | None = None
        """The timeline opened last ("Open timeline"); its views are in :attr:`timeline_views`."""
        self.timeline_views: tuple[SubjectBrowser, LivePlot | None, MessageTable] | None = None
        """The SubjectBrowser, LivePlot (None without numeric fields) and MessageTable following it."""

        self._make_controls(
            max_rows=max_rows,
            confirm_delete=lambda: self._click(self.delete_recording(), "delete"),
            make_plot=self._make_plot,
            show_failure=self._show_failure,
            code={"record": self._record_code, "load": self._load_code, "replay": self._replay_code},
        )
        self.refresh_button.on_click(lambda _b: self._click(self.refresh(), "list the recordings"))
        self.recording_select.observe(self._on_select, names="value")
        self.subject_chooser.observe(self._on_subjects_chosen, names="subjects")
        self.load_table_button.on_click(lambda _b: self._click(self.load_table(), "load"))
        self.load_frame_button.on_click(lambda _b: self._click(self.load(), "load"))
        self.timeline_button.on_click(lambda _b: self._click(self.open_timeline(), "open the timeline"))
        self.replay_button.on_click(lambda _b: self._click(self.start_replay(), "replay"))
        self.delete_button.on_click(lambda _b: self.ask_delete())
        self.observe(lambda _c: self._click(self.refresh(), "list the recordings"), names="show_buckets")
        super().__init__(children=self._arrange())
        self._render_info(None)
        follow_connection(self.connection_status, connection, self._tasks)
        if not loop_is_running():
            return  # a plain script: `await browser.refresh()` when a loop runs
        self._tasks.spawn(self.refresh(), what="list the recordings")

    # -- the list --------------------------------------------------------------------------------------

    async def _conn(self) -> NatsBrokerConnection:
        conn = await resolve_connection(self._connection)
        self.connection_status.attach(conn)
        if self._advisory is None:
            # Made and deleted recordings show up without a click; so does the deletion of the one shown.
            advisory = await conn.subscribe_raw(_ADVISORIES, self._on_advisory)
            if self._advisory is None:
                self._advisory = advisory
            else:  # another call subscribed meanwhile
                await advisory.unsubscribe()
        return conn

    async def refresh(self) -> list[str]:
        """List the recordings again (and show the one chosen, or the first); returns their names."""
        conn = await self._conn()
        found = [
            r for r in await Recording.list(connection=conn) if self.show_buckets or not _is_bucket_stream(r)
        ]
        names = [r.name for r in found]
        self.recordings = names
        if self._wanted and self._wanted not in names:
            self.notice = f"there is no recording {self._wanted!r} on this server"
            self._render_notice()
            self._wanted = None
        wanted = (
            self._wanted if self._wanted in names else self.recording if self.recording in names else None
        )
        self._updating = True
        try:
            self.recording_select.options = names
            self.recording_select.value = wanted or (names[0] if names else None)
        finally:
            self._updating = False
        chosen = self.recording_select.value
        if chosen or self.recording:  # the same one too: a running recording has grown
            await self.show(chosen)
        return names

    async def _on_advisory(self, msg: Any) -> None:
        tokens = msg.subject.split(".")
        event, stream = tokens[-2], tokens[-1]
        if event not in _LIST_EVENTS:
            return
        if event == "DELETED" and stream == self.recording:
            self._gone(stream)
        if event == "UPDATED" and stream == self.recording:
            self._click(self.show(stream), "show the recording")  # e.g. it was stopped (sealed)
        self._refresh_soon.request()

    def _gone(self, name: str) -> None:
        """The recording shown was deleted: say so, show nothing of it, keep the rest working."""
        if name != self.recording:
            return
        self.notice = f"recording {name!r} was deleted; it is no longer on the server"
        if self.replay is not None and self.replay.recording == name and self.replay.is_running:
            self.replay.stop()
        self._wanted = None
        self._follow(False)
        self.recording = ""
        self.info = {}
        self.delete_confirmation.cancel()
        self._render_info(None)
        self._render_notice()

    def _on_select(self, change: dict[str, Any]) -> None:
        if self._updating:
            return
        self._wanted = change["new"]
        self._click(self.show(change["new"]), "show the recording")

    # -- one recording ---------------------------------------------------------------------------------

    async def show(self, name: str | None) -> RecordingInfo | None:
        """Show the recording ``name`` (its info and subjects, read now); None shows nothing.

        Raises:
            RecordingNotFoundError: There is no such recording (the browser says so and lists the others).
        """
        if name != self.recording:
            self.delete_confirmation.cancel()
        if not name:
            self._follow(False)
            self.recording, self.info = "", {}
            self._render_info(None)
            return None
        again = name == self.recording and bool(self.info)
        self._wanted = name
        self.recording = name
        info = await self._read_info(name)
        if info is None or self.recording != name:  # gone, or another one was chosen meanwhile
            return info
        self._render_info(info, keep_ranges=again)
        self._follow(info.recording)
        return info

    async def _read_info(self, name: str) -> RecordingInfo | None:
        """Read ``name``'s numbers into :attr:`info` (if it is still the one shown)."""
        try:
            info = await self._current().info(connection=await self._conn())
        except RecordingNotFoundError:
            self._gone(name)
            self._click(self.refresh(), "list the recordings")
            raise
        if self.recording != name:
            return info
        self.info = {
            "messages": info.messages,
            "bytes": info.bytes,
            "first_time": info.first_time,
            "last_time": info.last_time,
            "subjects": list(info.subjects),
            "subject_counts": dict(info.subject_counts),
            "recording": info.recording,
            "max_age": info.max_age,
        }
        if self.delete_confirmation.confirming:
            self._ask_delete_question()  # the count it states is the one read now
        return info

    # -- following a recording that grows --------------------------------------------------------------

    @property
    def is_following(self) -> bool:
        """True while the numbers of the recording shown are read again periodically (it still records)."""
        return self._follow_task is not None and not self._follow_task.done()

    def _follow(self, on: bool) -> None:
        if not on or not loop_is_running():
            task, self._follow_task = self._follow_task, None
            if task is not None and task is not asyncio.current_task():
                task.cancel()
            return
        if not self.is_following:
            self._follow_task = self._follower.spawn(self._follow_periodically(), what="read the numbers")

    async def _follow_periodically(self) -> None:
        while True:
            await asyncio.sleep(max(self.refresh_interval, 0.05))
            name = self.recording
            if not name:
                return
            try:
                info = await self._read_again(name)
            except RecordingNotFoundError:
                return  # the browser says that it is gone
            except Exception as exc:  # e.g. the connection is down: say so, try again next time
                self._on_task_error(exc, "read the numbers of the recording")
                continue
            if info is not None and self.recording == name and not info.recording:
                self._follow_task = None  # stopped: its numbers stay as they are now
                return

    async def _read_again(self, name: str) -> RecordingInfo | None:
        """Read the numbers of the recording shown again and show them (chosen subjects' ranges too)."""
        info = await self._read_info(name)
        if info is None or self.recording != name:
            return info
        self._render_info(info, keep_ranges=True)
        if self.subjects:
            await self.show_subject_ranges()
        return info

    def _current(self, connection: NatsBrokerConnection | None = None) -> Recording:
        if not self.recording:
            raise RecordingNotFoundError(
                "no recording is chosen; pick one in the list (or make one with Recording.start)", name=""
            )
        return Recording(self.recording, connection=connection or self._connection)

    def _render_info(self, info: RecordingInfo | None, *, keep_ranges: bool = False) -> None:
        for button in (
            self.delete_button,
            self.load_table_button,
            self.load_frame_button,
            self.timeline_button,
            self.replay_button,
        ):
            button.disabled = info is None
        if info is None:
            self.info_view.value = (
                "<i>no recording chosen</i>"
                if self.recordings
                else "<i>no recordings on this server yet; make one with "
                "<code>await Recording.start(NAME, PATTERN)</code></i>"
            )
            self.subject_chooser.set_counts({})
            return
        self.info_view.value = info_html(info)
        self.subject_chooser.set_counts(info.subject_counts, keep_ranges=keep_ranges)

    @property
    def subjects(self) -> list[str]:
        """The subjects to load and replay; empty: all of them."""
        return list(self.subject_chooser.subjects)

    @subjects.setter
    def subjects(self, subjects: list[str]) -> None:
        self.subject_chooser.subjects = list(subjects)
        self.subject_chooser.set_counts(self.subject_chooser.counts)

    def _on_subjects_chosen(self, _change: dict[str, Any]) -> None:
        if self.subjects and self.recording:
            self._click(self.show_subject_ranges(), "read the subjects' time ranges")

    async def show_subject_ranges(self) -> dict[str, tuple[int, datetime | None, datetime | None]]:
        """Read the time range of each chosen subject (the first ten) and show it."""
        chosen = list(self.subjects)[:MAX_SUBJECT_RANGES]
        recording, conn = self._current(), await self._conn()
        ranges = {}
        for subject in chosen:
            found = await recording.subject_range(subject, connection=conn)
            ranges[subject] = (found.messages, found.first_time, found.last_time)
        if chosen == self.subjects[:MAX_SUBJECT_RANGES]:  # else chosen again meanwhile: that read shows
            self.subject_chooser.show_ranges(ranges)
        return ranges

    # -- the range -------------------------------------------------------------------------------------

    def set_range(self, start: Bound = None, end: Bound = None) -> None:
        """Choose the range: nothing for everything, a timedelta for "the last ...", or datetimes.

        Example:
            >>> browser.set_range(timedelta(minutes=1))                     # doctest: +SKIP
            >>> browser.set_range(datetime(2024, 5, 1, 8), datetime(2024, 5, 1, 9))  # doctest: +SKIP
        """
        self.range_picker.set_range(start, end)

    @property
    def selected_range(self) -> tuple[Bound, Bound]:
        """``(start, end)`` as chosen, in the form Recording.to_dataframe and replay take."""
        return self.range_picker.selected_range

    # -- actions ---------------------------------------------------------------------------------------

    async def load(self) -> pd.DataFrame:
        """Load the chosen range and subjects into a DataFrame (kept in :attr:`frame` too).

        Raises:
            RecordingNotFoundError: The recording was deleted (the browser says so).
        """
        name, (start, end) = self.recording, self.selected_range
        limit = self.max_rows_input.value
        try:
            frame = await self._current().to_dataframe(
                start, end, subjects=self.subjects or None, max_rows=limit, connection=await self._conn()
            )
        except RecordingNotFoundError:
            self._gone(name)
            raise
        self.frame, self.loaded_rows = frame, len(frame)
        self.plot_action.set_fields(numeric_columns(frame))
        cut = f" (the first {limit:,} of the range; raise 'at most' for more)" if len(frame) >= limit else ""
        self.notice = f"loaded {plural(len(frame), 'row')} of {name!r} into browser.frame{cut}"
        self._render_notice()
        return frame

    async def load_table(self) -> DataGrid:
        """Load the chosen range and show it in a table below the browser (sort, filter, scroll)."""
        frame = await self.load()
        if self.table is None:
            self.table = DataGrid(frame)
            self.table_box.children = [self.table]
        else:
            self.table.set_data(frame)
        return self.table

    async def open_timeline(
        self,
        fields: str | list[str] | None = None,
        *,
        plot_window: float = 60.0,
        table_window: float = 10.0,
    ) -> Timeline:
        """Open the chosen recording on a :class:`Timeline`, with a browser, a plot and a table following it.

        The views show the chosen subjects (all if none are chosen): the SubjectBrowser each subject's
        value at the cursor (what the last move changed flashes), the LivePlot ``fields`` over the
        ``plot_window`` seconds ending at the cursor, the MessageTable the rows ``table_window`` seconds
        either side of it. A timeline opened before is closed.

        Args:
            fields: The fields to plot; None plots the numeric fields of the last messages (at most 4).
            plot_window: Seconds of the plot's window.
            table_window: Seconds before and after the cursor the table holds.

        Raises:
            RecordingNotFoundError: The recording was deleted (the browser says so).

        Example:
            >>> timeline = await browser.open_timeline("temperature")  # doctest: +SKIP
            >>> await timeline.seek("2026-12-08 03:12")                 # doctest: +SKIP
        """
        name = self.recording
        try:
            model = await TimelineModel.open(self._current(), connection=await self._conn())
        except RecordingNotFoundError:
            self._gone(name)
            raise
        subjects = self.subjects or None
        if fields is None:
            last = await model.at(model.end_ns, subjects)
            fields = [f for f in numeric_columns(last) if f != "sequence"][:4]
        self._close_timeline()
        timeline = Timeline(model, subjects=subjects)
        browser = timeline.subject_browser()
        plot = timeline.live_plot(fields, window=plot_window) if fields else None
        table = timeline.table(window=table_window)
        self.timeline, self.timeline_views = timeline, (browser, plot, table)
        self.timeline_box.children = [w for w in (timeline, browser, plot, table) if w is not None]
        return timeline

    def _close_timeline(self) -> None:
        if self.timeline is not None:
            self.timeline.close()  # closes the views too
        self.timeline, self.timeline_views = None, None
        self.timeline_box.children = []

    def _make_plot(self, fields: list[str]) -> LivePlot:
        if self.frame is None:
            raise ValueError("load a range first (Load into table / DataFrame), then plot a column of it")
        title = f"{self.recording} ({plural(len(self.frame), 'row')})"
        return LivePlot.from_dataframe(self.frame, fields, title=title)

    def _show_failure(self, text: str) -> None:
        self.error = text
        self._render_error()

    async def start_replay(self) -> Replay:
        """Replay the chosen range and subjects at the chosen speed (a replay running already is stopped).

        Raises:
            ReplayLoopError: The replay would publish into the recorded subjects on the same broker;
                give a prefix (or a replay_connection).
            RecordingNotFoundError: The recording was deleted (the browser says so).
        """
        if self.replay is not None and self.replay.is_running:
            await self.replay.stop()
        name, (start, end) = self.recording, self.selected_range
        conn = await self._conn()
        try:
            replay = await self._current(conn).replay(
                speed=self.replay_options.speed,
                start=start,
                end=end,
                subjects=self.subjects or None,
                connection=self._replay_connection or conn,
                subject_prefix=self.replay_options.subject_prefix,
            )
        except RecordingNotFoundError:
            self._gone(name)
            raise
        self.replay = replay
        self.replay_view.attach(replay)
        return replay

    def ask_delete(self) -> None:
        """Show the confirmation of deleting the recording shown (nothing is deleted yet).

        The question states the count known now and is corrected when the count read again arrives
        (a recording that still records has grown since it was shown).
        """
        if self.recording:
            self._ask_delete_question()
            if loop_is_running():
                self._click(self._read_again(self.recording), "read the number of messages")

    def _ask_delete_question(self) -> None:
        count = self.info.get("messages", 0)
        self.delete_confirmation.ask(
            f"Delete <b>{html.escape(self.recording)}</b> and its {plural(count, 'message')}? "
            f"This cannot be undone.",
            f"Delete {self.recording}",
        )

    async def delete_recording(self) -> None:
        """Delete the recording shown (the stream and everything it recorded), then list the others."""
        name = self.recording
        self.delete_confirmation.cancel()
        if not name:
            return
        if self.replay is not None and self.replay.recording == name and self.replay.is_running:
            await self.replay.stop()
        await self._current().delete(connection=await self._conn())
        self._follow(False)
        self._wanted = None
        self.recording, self.info = "", {}
        self.notice = f"deleted recording {name!r}"
        self._render_notice()
        await self.refresh()

    # -- code ------------------------------------------------------------------------------------------

    def _record_code(self) -> str:
        return code_for_record_subjects(
            self._current().name, self.info.get("subjects", []), max_age=self.info.get("max_age")
        )

    def _load_code(self) -> str:
        start, end = self.selected_range
        return code_for_load(self._current().name, start, end, self.subjects, self.max_rows_input.value)

    def _replay_code(self) -> str:
        start, end = self.selected_range
        return code_for_replay(
            self._current().name,
            speed=self.replay_options.speed,
            start=start,
            end=end,
            subjects=self.subjects,
            subject_prefix=self.replay_options.subject_prefix,
        )

    # -- plumbing --------------------------------------------------------------------------------------

    def _background(self, coro: Any, what: str) -> None:
        self._tasks.spawn(coro, what=what)

    def _click(self, coro: Any, what: str) -> None:
        self.error = ""
        self._render_error()
        self._tasks.spawn(coro, what=what)

    def _on_task_error(self, exc: BaseException, what: str) -> None:
        if isinstance(exc, RecordingNotFoundError) and self.notice:
            return  # the notice says that the recording is gone
        self.error = f"{what} failed: {type(exc).__name__}: {exc}"
        self._render_error()

    def _render_notice(self) -> None:
        self.notice_view.value = (
            f"<span style='color:#1565c0'>{html.escape(self.notice)}</span>" if self.notice else ""
        )

    def _render_error(self) -> None:
        self.error_view.value = pre_html(self.error, color="#c62828", max_height="10em")

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until the work started by clicks so far is done (its errors are in :attr:`error`)."""
        await self._tasks.wait(timeout)

    def close(self) -> None:
        """Stop following the server, stop a running replay and close the views."""
        if "_tasks" not in self.__dict__:  # __init__ failed (ipywidgets closes on __del__)
            return
        self._tasks.cancel_all()
        self._follow(False)
        self._follower.cancel_all()
        advisory, self._advisory = self._advisory, None
        if advisory is not None:
            try:
                self._tasks.spawn(advisory.unsubscribe(), what="stop following the server")
            except RuntimeError:
                pass  # no loop any more: the connection is gone with it
        if self.replay is not None and self.replay.is_running:
            self.replay.stop()
        for view in (
            self.replay_view,
            self.delete_confirmation,
            self.range_picker,
            self.subject_chooser,
            self.connection_status,
            self.record_code,
            self.load_code,
            self.replay_code,
        ):
            view.close()
        if self.table is not None:
            self.table.close()
        self._close_timeline()
        self.plot_action.close()
        super().close()
