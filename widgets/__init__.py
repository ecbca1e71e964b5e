"""fastiot_widgets: ipywidgets views over the headless fastiot models, and the ``%%service`` magics.

Every widget is a thin view: the state lives in a model from :mod:`fastiot` (a SubjectIndex, a
MessageCapture, a ServiceRunner); the widget renders it and forwards clicks to the kernel's loop, so
no cell is ever blocked.

Example:
    >>> from fastiot_widgets import LivePlot, MessageTable, Publisher, ServiceControl, SubjectBrowser
    >>> SubjectBrowser("v1.>")           # doctest: +SKIP
    >>> LivePlot("v1.thing.*.temperature", "value")  # doctest: +SKIP
    >>> MessageTable("v1.thing.>")       # doctest: +SKIP
    >>> ServiceControl(MyService)        # doctest: +SKIP
    >>> Publisher(Thing)                 # doctest: +SKIP

In IPython (a notebook), importing the package registers ``%%service``, ``%service_stop`` and
``%services`` (see :mod:`fastiot_widgets.magics`); ``%load_ext fastiot_widgets`` does the same.
"""

from __future__ import annotations

import sys
from typing import Any

from .data_grid import DataGrid
from .errors import CodeGenerationError, ServiceCellError, WidgetError
from .kv_browser import KeyValueBrowser
from .live_plot import LivePlot
from .message_table import MessageTable
from .publisher import Publisher
from .recording_browser import RecordingBrowser
from .service_browser import ServiceBrowser
from .service_control import ServiceControl
from .subject_browser import SubjectBrowser
from .timeline import Timeline

__all__ = [
    "CodeGenerationError",
    "DataGrid",
    "KeyValueBrowser",
    "LivePlot",
    "MessageTable",
    "Publisher",
    "RecordingBrowser",
    "ServiceBrowser",
    "ServiceCellError",
    "ServiceControl",
    "SubjectBrowser",
    "Timeline",
    "WidgetError",
    "load_ipython_extension",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext fastiot_widgets``: register ``%%service``, ``%service_stop`` and ``%services``.

    Loading it again (re-running a notebook's first cell, or in a workbench kernel, which loads the
    magics at start) is silent and registers nothing twice.
    """
    # Imported here, not at the top: importing the package must not need a running IPython.
    from .magics import forget_extension_load, register_magics

    register_magics(ipython)
    forget_extension_load(ipython, __name__)


def _register_magics_in_running_ipython() -> None:
    # Only when IPython is already imported (a kernel, a terminal shell): a plain script importing the
    # widgets does not pull IPython in.
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None:
        load_ipython_extension(shell)


_register_magics_in_running_ipython()
