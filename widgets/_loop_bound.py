"""Widgets that handle the browser's messages on the event loop they were made on.

JupyterLab (4.6) may send widget messages on a kernel subshell, and ipykernel (7) handles a subshell's
messages on a thread of its own, with an event loop of its own; it also routes a widget's later
messages to the thread that last sent on it. The views of this package work with objects of the
kernel's loop (captures, subject indexes, the NATS connection, their background tasks): a click or a
changed field handled on another thread would read a capture while the loop changes it, or start a task
on the subshell's loop that then awaits the connection of the kernel's. So every widget here that the
person can act on hands each message from the browser to the loop it was made on
(``call_soon_threadsafe``); on that loop's own thread, and where no loop runs (a plain script), a
message is handled at once, as ipywidgets does.

Use the classes of this module (``ui.Button``, ``ui.Text``, ...) instead of ipywidgets' own, and
:class:`LoopBound` as the first base of a custom widget.

Example:
    >>> from fastiot_widgets import _loop_bound as ui
    >>> isinstance(ui.Button(description="Pause"), LoopBound)
    True
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ipywidgets as widgets

from fastiot._tasks import running_loop

__all__ = [
    "Accordion",
    "BoundedFloatText",
    "BoundedIntText",
    "Button",
    "Checkbox",
    "DatetimePicker",
    "Dropdown",
    "FloatLogSlider",
    "FloatText",
    "IntText",
    "LoopBound",
    "Select",
    "SelectMultiple",
    "Text",
    "Textarea",
    "ToggleButton",
    "ToggleButtons",
]

_logger = logging.getLogger("fastiot.widgets")


class LoopBound(widgets.Widget):
    """A widget whose messages from the browser are handled on the loop it was made on (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._home_loop: asyncio.AbstractEventLoop | None = running_loop()

    def _handle_msg(self, msg: dict[str, Any]) -> None:
        loop = self.__dict__.get("_home_loop")
        if loop is None or running_loop() is loop:
            super()._handle_msg(msg)
            return
        try:
            loop.call_soon_threadsafe(super()._handle_msg, msg)
        except RuntimeError:  # the loop is closed (the kernel is stopping): nothing is left to answer
            _logger.debug("a message from the browser came after the %s's loop closed", type(self).__name__)


class Accordion(LoopBound, widgets.Accordion):
    """ipywidgets' Accordion, handled on its loop."""


class BoundedFloatText(LoopBound, widgets.BoundedFloatText):
    """ipywidgets' BoundedFloatText, handled on its loop."""


class BoundedIntText(LoopBound, widgets.BoundedIntText):
    """ipywidgets' BoundedIntText, handled on its loop."""


class Button(LoopBound, widgets.Button):
    """ipywidgets' Button, handled on its loop."""


class Checkbox(LoopBound, widgets.Checkbox):
    """ipywidgets' Checkbox, handled on its loop."""


class DatetimePicker(LoopBound, widgets.DatetimePicker):
    """ipywidgets' DatetimePicker, handled on its loop."""


class Dropdown(LoopBound, widgets.Dropdown):
    """ipywidgets' Dropdown, handled on its loop."""


class FloatLogSlider(LoopBound, widgets.FloatLogSlider):
    """ipywidgets' FloatLogSlider, handled on its loop."""


class FloatText(LoopBound, widgets.FloatText):
    """ipywidgets' FloatText, handled on its loop."""


class IntText(LoopBound, widgets.IntText):
    """ipywidgets' IntText, handled on its loop."""


class Select(LoopBound, widgets.Select):
    """ipywidgets' Select, handled on its loop."""


class SelectMultiple(LoopBound, widgets.SelectMultiple):
    """ipywidgets' SelectMultiple, handled on its loop."""


class Text(LoopBound, widgets.Text):
    """ipywidgets' Text, handled on its loop."""


class Textarea(LoopBound, widgets.Textarea):
    """ipywidgets' Textarea, handled on its loop."""


class ToggleButton(LoopBound, widgets.ToggleButton):
    """ipywidgets' ToggleButton, handled on its loop."""


class ToggleButtons(LoopBound, widgets.ToggleButtons):
    """ipywidgets' ToggleButtons, handled on its loop."""
