"""Parts of the RecordingBrowser: a range picker, a subject chooser and a two-step (confirmed) button.

Example:
    >>> from datetime import timedelta
    >>> from fastiot_widgets._history_parts import RangePicker
    >>> picker = RangePicker()
    >>> picker.set_range(timedelta(minutes=5))
    >>> picker.selected_range
    (datetime.timedelta(seconds=300), None)
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta, timezone
from typing import Any

import ipywidgets as widgets
import traitlets

from fastiot.history import Bound, RecordingInfo

from . import _loop_bound as ui
from ._common import plural

__all__ = [
    "MAX_SUBJECT_OPTIONS",
    "Coalesced",
    "ConfirmButton",
    "RangePicker",
    "ReplayOptions",
    "SubjectChooser",
    "info_html",
    "when",
]

MAX_SUBJECT_OPTIONS = 500  # subjects listed at once; the filter box finds the others


def when(value: datetime | None) -> str:
    """A time as the browsers show it (UTC, to the second); ``-`` for none."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


class Coalesced:
    """An async action run once, a moment after the first of a burst of requests for it.

    A bucket's initial values or a script making recordings bring many changes at once; the view
    is redone once for all of them.

    Args:
        action: What to run, e.g. the view's refresh.
        delay: Seconds between the first request and the run.
        spawn: Starts a coroutine as the widget's own background task (``spawn(coro, what)``).
        what: A few words for error messages.
    """

    def __init__(
        self,
        action: Callable[[], Awaitable[object]],
        delay: float,
        spawn: Callable[[Coroutine[Any, Any, None], str], object],
        what: str,
    ) -> None:
        self._action = action
        self._delay = delay
        self._spawn = spawn
        self._what = what
        self._pending: bool = False

    def request(self) -> None:
        """Run the action soon, unless a run is already due."""
        if not self._pending:
            self._pending = True
            self._spawn(self._run(), self._what)

    async def _run(self) -> None:
        await asyncio.sleep(self._delay)
        self._pending = False
        await self._action()


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB"):
        if n < 1000:
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} GB"


def info_html(info: RecordingInfo) -> str:
    """A recording's state, subjects, size and time range, as the browser shows them."""
    state = "recording" if info.recording else "stopped (read-only)"
    limit = f", kept for {info.max_age}" if info.max_age else ""
    duration = f" ({timedelta(seconds=round(info.duration.total_seconds()))})" if info.duration else ""
    return (
        f"<b>{html.escape(info.name)}</b> <span style='color:#757575'>{state}{limit}</span><br>"
        f"{html.escape(', '.join(info.subjects))}<br>"
        f"{plural(info.messages, 'message')}, {_size(info.bytes)}, "
        f"{plural(len(info.subject_counts), 'subject')}<br>"
        f"from {when(info.first_time)} to {when(info.last_time)}{duration}"
    )


class ReplayOptions(widgets.HBox):
    """The speed of a replay (or as fast as possible) and the prefix of the subjects it publishes on."""

    def __init__(self, **kwargs: Any) -> None:
        self.speed_input = ui.BoundedFloatText(
            value=1.0, min=0.001, max=1e6, description="speed", layout=widgets.Layout(width="10em")
        )
        self.max_speed = ui.Checkbox(
            value=False, description="as fast as possible", indent=False, layout=widgets.Layout(width="auto")
        )
        self.prefix_input = ui.Text(
            value="replay",
            description="prefix",
            placeholder="none",
            tooltip="Replayed messages go to PREFIX.SUBJECT; none: to the recorded subjects",
            layout=widgets.Layout(width="16em"),
        )
        super().__init__(children=[self.speed_input, self.max_speed, self.prefix_input], **kwargs)

    @property
    def speed(self) -> float | None:
        """The speed factor; None for as fast as possible."""
        return None if self.max_speed.value else float(self.speed_input.value)

    @property
    def subject_prefix(self) -> str | None:
        """The prefix of the replayed subjects; None for none."""
        return self.prefix_input.value.strip() or None


class RangePicker(widgets.VBox):
    """Everything, the last N minutes, or between two times: ``start`` / ``end`` of a recording's range."""

    def __init__(self, **kwargs: Any) -> None:
        self.mode = ui.Dropdown(
            options=[("everything", "all"), ("the last minutes", "last"), ("between", "between")],
            value="all",
            layout=widgets.Layout(width="11em"),
        )
        self.last_minutes = ui.BoundedFloatText(
            value=5.0, min=0.01, max=1e7, layout=widgets.Layout(width="7em")
        )
        self.start_picker = ui.DatetimePicker(description="from")
        self.end_picker = ui.DatetimePicker(description="to")
        self.mode.observe(lambda _c: self._render(), names="value")
        super().__init__(
            children=[
                widgets.HBox([widgets.HTML("range:"), self.mode, self.last_minutes]),
                widgets.HBox([self.start_picker, self.end_picker]),
            ],
            **kwargs,
        )
        self._render()

    def set_range(self, start: Bound = None, end: Bound = None) -> None:
        """Nothing for everything, a timedelta for "the last ...", or datetimes (either may be None).

        Raises:
            TypeError: Anything else (a stream sequence is for code: ``Recording.to_dataframe(start=...)``).
        """
        if start is None and end is None:
            self.mode.value = "all"
        elif isinstance(start, timedelta) and end is None:
            self.last_minutes.value = start.total_seconds() / 60
            self.mode.value = "last"
        elif isinstance(start, (datetime, type(None))) and isinstance(end, (datetime, type(None))):
            self.start_picker.value = start.astimezone(timezone.utc) if start else None
            self.end_picker.value = end.astimezone(timezone.utc) if end else None
            self.mode.value = "between"
        else:
            raise TypeError(
                f"a range is nothing (everything), a timedelta (the last ...) or datetimes, "
                f"got {start!r}, {end!r}"
            )

    @property
    def selected_range(self) -> tuple[Bound, Bound]:
        """``(start, end)`` as chosen, in the form ``Recording.to_dataframe`` and ``replay`` take."""
        if self.mode.value == "last":
            return timedelta(minutes=self.last_minutes.value), None
        if self.mode.value == "between":
            return self.start_picker.value, self.end_picker.value
        return None, None

    def _render(self) -> None:
        mode = self.mode.value
        self.last_minutes.layout.display = None if mode == "last" else "none"
        for picker in (self.start_picker, self.end_picker):
            picker.layout.display = None if mode == "between" else "none"


class SubjectChooser(widgets.HBox):
    """The subjects of a recording with their counts, a filter box, and the time ranges of the chosen ones."""

    subjects = traitlets.List(traitlets.Unicode(), help="The chosen subjects; empty: all of them.")

    def __init__(self, **kwargs: Any) -> None:
        self.counts: dict[str, int] = {}
        self._updating: bool = False
        self.filter = ui.Text(placeholder="filter subjects", layout=widgets.Layout(width="22em"))
        self.select = ui.SelectMultiple(
            options=[], rows=8, layout=widgets.Layout(width="22em"), tooltip="None chosen: all subjects"
        )
        self.ranges_view = widgets.HTML()
        self.filter.observe(lambda _c: self._render(), names="value")
        self.select.observe(self._on_chosen, names="value")
        super().__init__(children=[widgets.VBox([self.filter, self.select]), self.ranges_view], **kwargs)

    def set_counts(self, counts: dict[str, int], *, keep_ranges: bool = False) -> None:
        """Show these subjects (messages per subject); chosen ones that are still there stay chosen.

        Args:
            counts: Messages per subject.
            keep_ranges: The same recording's newer counts: the time ranges shown stay until read again.
        """
        self.counts = dict(counts)
        if not keep_ranges:
            self.ranges_view.value = ""
        self._render()

    def _render(self) -> None:
        counts = self.counts
        text = self.filter.value.strip()
        matching = [s for s in counts if text in s] if text else list(counts)
        shown = matching[:MAX_SUBJECT_OPTIONS]
        # Subjects chosen before a recording's counts are in stay chosen; a recording's counts drop the
        # ones it does not have.
        keep = [s for s in self.subjects if s in counts] if counts else list(self.subjects)
        self._updating = True
        try:
            self.select.options = [
                (f"{s}  ({counts[s]:,})" if s in counts else s, s) for s in dict.fromkeys([*keep, *shown])
            ]
            self.select.value = tuple(keep)
        finally:
            self._updating = False
        more = len(matching) - len(shown)
        self.select.tooltip = f"{more:,} more; type in the filter to find them" if more else ""
        self.subjects = keep

    def _on_chosen(self, change: dict[str, Any]) -> None:
        if not self._updating:
            self.subjects = list(change["new"])

    def show_ranges(self, ranges: dict[str, tuple[int, datetime | None, datetime | None]]) -> None:
        """Show ``subject -> (messages, first time, last time)``."""
        rows = "".join(
            f"<tr><td><code>{html.escape(s)}</code></td><td style='text-align:right'>{n:,}</td>"
            f"<td>{when(first)}</td><td>{when(last)}</td></tr>"
            for s, (n, first, last) in ranges.items()
        )
        head = "<tr><th>subject</th><th>messages</th><th>first</th><th>last</th></tr>"
        self.ranges_view.value = f"<table style='font-size:90%'>{head}{rows}</table>" if rows else ""


class ConfirmButton(widgets.VBox):
    """A button that acts only after a second click on "Delete NAME" (or a Cancel).

    Args:
        description: The first button's text, e.g. "Delete…".
        on_confirm: Called (no arguments) when the person confirms.
    """

    confirming = traitlets.Bool(False, help="The confirmation is shown.")

    def __init__(self, description: str, on_confirm: Callable[[], None], **kwargs: Any) -> None:
        self.button = ui.Button(description=description, icon="trash", button_style="danger")
        self.text = widgets.HTML()
        self.confirm_button = ui.Button(description="Delete", icon="trash", button_style="danger")
        self.cancel_button = ui.Button(description="Cancel")
        for button in (self.button, self.confirm_button, self.cancel_button):
            button.layout = widgets.Layout(width="auto")
        self.box = widgets.HBox([self.text, self.confirm_button, self.cancel_button])
        self._on_confirm = on_confirm
        self.confirm_button.on_click(lambda _b: self._confirmed())
        self.cancel_button.on_click(lambda _b: self.cancel())
        super().__init__(children=[self.box], **kwargs)
        self.cancel()

    def ask(self, question_html: str, confirm_label: str) -> None:
        """Show ``question_html`` with the confirming button ``confirm_label`` and Cancel."""
        self.text.value = question_html
        self.confirm_button.description = confirm_label
        self.confirming = True
        self.layout.display = None

    def cancel(self) -> None:
        """Hide the confirmation."""
        self.confirming = False
        self.layout.display = "none"

    def _confirmed(self) -> None:
        if self.confirming:
            self.cancel()
            self._on_confirm()
