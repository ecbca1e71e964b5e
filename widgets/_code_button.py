"""Copy as code, the button: a click inserts the code for a widget's action as a new cell below.

The half of copy as code that lives in the notebook (:mod:`fastiot_widgets._code` writes the code).
:class:`CopyAsCode` asks the widget for the code and inserts it as a new cell below the active one
(the cell whose output was clicked) through JupyterLab's own commands ``notebook:insert-cell-below``
and ``notebook:replace-selection``, sent by ipylab. Where no JupyterLab answers (VS Code, classic
Notebook without ipylab, nbclient), the code appears in a read-only text box under the button, with a
Copy button and an attempt to put it on the clipboard.

Example:
    >>> from fastiot_widgets._code_button import CopyAsCode
    >>> button = CopyAsCode(lambda: "print('hello')")  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

import anywidget
import ipywidgets as widgets
import traitlets

from fastiot._callbacks import CallbackList
from fastiot._tasks import BackgroundTasks

from ._common import front_end_file
from ._loop_bound import LoopBound

__all__ = [
    "DEFAULT_FRONTEND_TIMEOUT",
    "INSERT_CELL_BELOW",
    "REPLACE_SELECTION",
    "CodeBox",
    "CopyAsCode",
    "CopyButton",
    "insert_cell_below",
]

# JupyterLab 4's command ids (@jupyterlab/notebook-extension); both exist since JupyterLab 1.
INSERT_CELL_BELOW = "notebook:insert-cell-below"
REPLACE_SELECTION = "notebook:replace-selection"
# How long a click waits for JupyterLab to answer (the first click only) before showing the code instead.
DEFAULT_FRONTEND_TIMEOUT = 3.0


class CodeBox(LoopBound, anywidget.AnyWidget):
    """A read-only code box with a Copy button: where the code goes when no JupyterLab inserts it.

    The front end also tries to put new code on the clipboard by itself (browsers allow that shortly
    after the click that asked for it); :attr:`copied` says whether that worked.
    """

    _esm = front_end_file("code_box.js")
    code = traitlets.Unicode("", help="The code shown ('' hides the box).").tag(sync=True)
    copied = traitlets.Bool(False, help="The front end put the current code on the clipboard.").tag(sync=True)


class CopyButton(LoopBound, anywidget.AnyWidget):
    """The "Copy as code" button (``copy_button.js``): a click first activates the notebook cell the
    button is in, so the new cell lands right below it, then tells Python (:meth:`on_click`)."""

    _esm = front_end_file("copy_button.js")
    description = traitlets.Unicode("Copy as code", help="The button's label.").tag(sync=True)
    tooltip = traitlets.Unicode("", help="The button's tooltip.").tag(sync=True)
    disabled = traitlets.Bool(False, help="The button does nothing while disabled.").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._click_handlers: CallbackList[[CopyButton]] = CallbackList("Copy as code click")
        self.on_msg(self._on_custom_msg)

    def on_click(self, callback: Callable[[CopyButton], Any], remove: bool = False) -> None:
        """Call ``callback(button)`` on a click (as ``ipywidgets.Button.on_click``)."""
        self._click_handlers.register(callback, remove=remove)

    def click(self) -> None:
        """Click the button from code (as a click in the browser does)."""
        if not self.disabled:
            self._click_handlers(self)

    def _on_custom_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "click":
            self.click()


class CopyAsCode(widgets.VBox):
    """A "Copy as code" button: a click inserts the code for the widget's action as a new cell below.

    Args:
        make_code: Called on each click; returns the code (e.g. ``lambda: code_for_table(pattern)``).
            Its exceptions are shown under the button, not raised.
        description: The button's label.
        tooltip: The button's tooltip.
        frontend_timeout: Seconds the first click waits for JupyterLab to answer before it shows the
            code in a text box instead.

    Example:
        >>> from fastiot_widgets._code import CopyAsCode, code_for_capture
        >>> button = CopyAsCode(lambda: code_for_capture("v1.>"))   # doctest: +SKIP
        >>> await button.copy()                                       # what a click does  # doctest: +SKIP
        'inserted'
    """

    code = traitlets.Unicode("", help="The code the last click produced.")
    status = traitlets.Enum(
        ("", "waiting", "inserted", "shown", "failed"),
        default_value="",
        help="'' before the first click; 'waiting' for the front end; 'inserted' as a new cell below; "
        "'shown' in the text box (no JupyterLab answered); 'failed' if making the code failed.",
    )
    error = traitlets.Unicode("", help="Why making the code failed last; '' if it did not.")
    frontend_timeout = traitlets.Float(
        DEFAULT_FRONTEND_TIMEOUT, help="Seconds a click waits for JupyterLab before showing the code instead."
    )

    def __init__(
        self,
        make_code: Callable[[], str],
        *,
        description: str = "Copy as code",
        tooltip: str = "Insert the Python that does this as a new cell below",
        frontend_timeout: float = DEFAULT_FRONTEND_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        self._make_code: Callable[[], str] = make_code
        self._frontend: Any = None  # ipylab.JupyterFrontEnd, made at the first click
        self._tasks: BackgroundTasks = BackgroundTasks(lambda exc, what: self._fail(f"{what}: {exc}"))
        self.button = CopyButton(description=description, tooltip=tooltip)
        self.code_box = CodeBox(layout={"display": "none"})
        self.message = widgets.HTML()
        # What appears after a click; a widget with a toolbar puts `button` there and `output` below
        # (then it shows these two, not the CopyAsCode itself).
        self.output = widgets.VBox([self.message, self.code_box])
        self.button.on_click(lambda _b: self._clicked())
        super().__init__(children=[self.button, self.output], **kwargs)
        self.frontend_timeout = frontend_timeout

    def _clicked(self) -> None:
        try:
            self._tasks.spawn(self.copy(), what="copy as code")
        except RuntimeError:  # no event loop at all: show the code right away
            self._show(self._code_or_none() or "")

    def _code_or_none(self) -> str | None:
        try:
            code = self._make_code()
        except Exception as e:
            self._fail(f"{type(e).__name__}: {e}")
            return None
        self.code = code
        return code

    def _fail(self, text: str) -> None:
        self.error = text
        self.status = "failed"
        self.message.value = f"<span style='color:#c62828'>{_escape(text)}</span>"

    async def copy(self) -> str:
        """Make the code and insert it as a new cell below (or show it); what a click does.

        Returns:
            :attr:`status`: ``"inserted"``, ``"shown"`` or ``"failed"``.
        """
        code = self._code_or_none()
        if code is None:
            return self.status
        self.error = ""
        self.message.value = ""
        self.status = "waiting"
        if await insert_cell_below(code, self._get_frontend(), timeout=self.frontend_timeout):
            self.status = "inserted"
            self.code_box.layout.display = "none"
        else:
            self._show(code)
        return self.status

    def _get_frontend(self) -> Any:
        if self._frontend is None:
            try:
                from ipylab import JupyterFrontEnd
            except ImportError:  # not installed: the text box is all there is
                return None
            self._frontend = JupyterFrontEnd()
        return self._frontend

    def _show(self, code: str) -> None:
        self.code_box.copied = False
        self.code_box.code = code
        self.code_box.layout.display = ""
        self.status = "shown"

    def close(self) -> None:
        self._tasks.cancel_all()
        frontend, self._frontend = self._frontend, None
        if frontend is not None:
            frontend.close()
        super().close()


async def insert_cell_below(code: str, frontend: Any, *, timeout: float = DEFAULT_FRONTEND_TIMEOUT) -> bool:
    """Insert ``code`` as a new cell below the active one through ipylab's ``frontend``.

    Returns:
        ``True`` if JupyterLab answered within ``timeout`` seconds and has the notebook commands;
        ``False`` otherwise (nothing was inserted; show the code instead).
    """
    if frontend is None:
        return False
    try:
        await asyncio.wait_for(frontend.ready(), timeout)
    except asyncio.TimeoutError:
        return False
    known: Iterable[str] = frontend.commands.list_commands()
    if known and INSERT_CELL_BELOW not in known:  # a front end without notebooks (e.g. a console)
        return False
    frontend.commands.execute(INSERT_CELL_BELOW)
    frontend.commands.execute(REPLACE_SELECTION, {"text": code})
    return True


def _escape(text: str) -> str:
    import html

    return html.escape(text)
