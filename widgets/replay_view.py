"""Views of a replay: its progress with pause / resume / stop; a ServiceControl for ``%%service --replay``.

:class:`ReplayProgress` follows a :class:`fastiot.history.Replay` through ``on_progress`` (at most ten
updates a second however fast it publishes). The RecordingBrowser shows one under its Replay button;
:class:`ReplayServiceControl` shows one beside the handler counters of a service that runs against a
private broker fed from a recording (:class:`fastiot.history.ReplayBroker`).

Example:
    >>> from fastiot_widgets.replay_view import ReplayProgress
    >>> view = ReplayProgress()
    >>> view.state
    ''
    >>> view.attach(await recording.replay(speed=10, subject_prefix="replay"))  # doctest: +SKIP
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
import traitlets

from fastiot.core.service import FastIoTService
from fastiot.history import Replay, ReplayState
from fastiot.history.replay_broker import ReplayBroker
from fastiot.runner import ServiceRunner

from . import _loop_bound as ui
from ._common import plural
from .service_control import ServiceControl

__all__ = ["ReplayProgress", "ReplayServiceControl"]

_STATE_COLORS = {
    ReplayState.RUNNING: "#2e7d32",
    ReplayState.PAUSED: "#ef6c00",
    ReplayState.FINISHED: "#1565c0",
    ReplayState.STOPPED: "#757575",
    ReplayState.FAILED: "#c62828",
}


class ReplayProgress(widgets.VBox):
    """A progress bar, "published of total", the state, and pause / resume / stop of a replay.

    Args:
        replay: The replay to follow now; :meth:`attach` another one later.

    The traitlets mirror the replay as last shown; the buttons call its ``pause()``, ``resume()`` and
    ``stop()``.
    """

    published = traitlets.Int(0, help="Messages the replay has published, as last shown.")
    total = traitlets.Int(0, help="Messages in the replay's range (exact once it finished).")
    state = traitlets.Unicode("", help="The replay's state (running, paused, finished, stopped, failed); ''.")
    error = traitlets.Unicode("", help="What made the replay fail; '' if nothing did.")
    summary = traitlets.Unicode("", help="The line shown beside the bar, e.g. 'replay of plant at 10x: ...'.")

    def __init__(self, replay: Replay | None = None, **kwargs: Any) -> None:
        self.replay: Replay | None = None
        self.bar = widgets.FloatProgress(
            value=0.0, min=0.0, max=1.0, layout=widgets.Layout(width="14em"), description=""
        )
        self.label = widgets.HTML()
        self.pause_button = ui.Button(description="Pause", icon="pause", tooltip="Hold the replay")
        self.resume_button = ui.Button(
            description="Resume",
            icon="play",
            tooltip="Go on where the replay was paused, with the same spacing",
        )
        self.stop_button = ui.Button(
            description="Stop replay",
            icon="stop",
            tooltip="End the replay (what was published stays published)",
        )
        for button in (self.pause_button, self.resume_button, self.stop_button):
            button.layout = widgets.Layout(width="auto")
        self.pause_button.on_click(lambda _b: self.replay.pause() if self.replay else None)
        self.resume_button.on_click(lambda _b: self.replay.resume() if self.replay else None)
        self.stop_button.on_click(lambda _b: self._stop())
        super().__init__(
            children=[
                widgets.HBox(
                    [self.bar, self.pause_button, self.resume_button, self.stop_button],
                    layout=widgets.Layout(align_items="center"),
                ),
                self.label,
            ],
            **kwargs,
        )
        self.layout.display = "none"  # nothing to show until a replay is attached
        if replay is not None:
            self.attach(replay)

    def attach(self, replay: Replay | None) -> None:
        """Follow ``replay`` (and stop following the previous one); None shows nothing."""
        previous, self.replay = self.replay, replay
        if previous is not None and previous is not replay:
            previous.on_progress(self._on_progress, remove=True)
        if replay is not None and replay is not previous:
            replay.on_progress(self._on_progress)
        self.layout.display = None if replay is not None else "none"
        self.update()

    def _on_progress(self, _replay: Replay) -> None:
        self.update()

    def _stop(self) -> None:
        if self.replay is not None:
            self.replay.stop()  # the task ends on its own; on_progress reports the end

    def update(self) -> None:
        """Show the replay's state now (it calls this itself as it goes)."""
        replay = self.replay
        if replay is None:
            self.published = self.total = 0
            self.state = self.error = self.summary = ""
            self.label.value = ""
            return
        state = replay.state
        self.published, self.total = replay.published, max(replay.total, replay.published)
        self.state = state.value
        self.error = "" if replay.error is None else f"{type(replay.error).__name__}: {replay.error}"
        self.bar.value = replay.progress
        self.bar.bar_style = {"finished": "success", "failed": "danger"}.get(state.value, "")
        speed = "as fast as possible" if replay.speed is None else f"at {replay.speed:g}x"
        target = f" onto {replay.subject_prefix}.SUBJECT" if replay.subject_prefix else ""
        self.summary = (
            f"replay of {replay.recording} {speed}{target}: {self.published:,} of "
            f"{plural(self.total, 'message')} published, {state.value}"
        )
        color = _STATE_COLORS.get(state, "inherit")
        text = html.escape(self.summary)
        if self.error:
            text += f"<br><span style='color:{color}'>{html.escape(self.error)}</span>"
        self.label.value = f"<span style='color:{color}'>&#9679;</span> {text}"
        running = replay.is_running
        self.pause_button.disabled = state is not ReplayState.RUNNING
        self.resume_button.disabled = state is not ReplayState.PAUSED
        self.stop_button.disabled = not running

    def close(self) -> None:
        self.attach(None)
        super().close()


class ReplayServiceControl(ServiceControl):
    """A :class:`ServiceControl` whose service runs against a private broker fed from a recording.

    Args:
        service_cls_or_instance: The service (class or instance), as for ServiceControl.
        replay_broker: The private broker and the recording to replay into it.
        service_kwargs: Passed to the service class.

    Each start makes a new private nats-server and replays the recording into it from the start of
    the range once the service's subscriptions are in place; :attr:`replay_view` shows the replay's
    progress beside the handler counters. Stopping the service stops the replay and the private
    server. The live broker never sees the service.

    Example:
        >>> ctl = ReplayServiceControl(MyService, ReplayBroker("plant", speed=10))  # doctest: +SKIP
        >>> await ctl.start()                                                  # doctest: +SKIP
        >>> ctl.replay_view.published, ctl.handler_counts                     # doctest: +SKIP
    """

    children: tuple[widgets.Widget, ...]  # the Box trait, typed for mypy (assigned below)

    def __init__(
        self,
        service_cls_or_instance: type[FastIoTService] | FastIoTService,
        replay_broker: ReplayBroker,
        **service_kwargs: Any,
    ) -> None:
        runner = ServiceRunner(
            service_cls_or_instance, environment=replay_broker, echo_log=False, **service_kwargs
        )
        self.replay_broker: ReplayBroker = replay_broker
        self.replay_view: ReplayProgress = ReplayProgress(replay_broker.replay)
        self.replay_title = widgets.HTML()
        super().__init__(runner)
        # The replay's progress goes beside the handler counters; everything else stays where
        # ServiceControl puts it.
        shown = self.children
        beside = widgets.HBox(
            [self.counters_view, self.replay_view], layout=widgets.Layout(align_items="flex-start")
        )
        self.children = (
            self.replay_title,
            *(beside if child is self.counters_view else child for child in shown),
        )
        replay_broker.on_change(self._on_broker_change)
        self._render_replay_title()

    def _on_broker_change(self, replay_broker: ReplayBroker) -> None:
        self.replay_view.attach(replay_broker.replay)
        self._render_replay_title()

    def _on_status_change(self, status: Any) -> None:
        super()._on_status_change(status)
        self._render_replay_title()

    def _render_replay_title(self) -> None:
        self.replay_title.value = (
            f"<span style='color:#1565c0'>&#9654;</span> {html.escape(self.replay_broker.description)}; "
            f"the live broker never sees this service"
        )

    def close(self) -> None:
        if "replay_broker" in self.__dict__:
            self.replay_broker.on_change(self._on_broker_change, remove=True)
            self.replay_view.close()
        super().close()
