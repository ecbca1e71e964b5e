"""The "Plot" action of the table views: pick a numeric column, click Plot, a LivePlot opens below.

MessageTable plots its capture (the chart follows it while it runs), RecordingBrowser the frame it
loaded. Both place :attr:`PlotAction.field_box` and :attr:`PlotAction.button` in their toolbar and
:attr:`PlotAction.area` below; a second Plot adds the chosen column to the chart that is open.

Example:
    >>> import pandas as pd
    >>> from fastiot_widgets._plot_action import numeric_columns
    >>> numeric_columns(pd.DataFrame({"subject": ["a"], "value": [1.5], "ok": [True], "n": [2]}))
    ['value', 'n']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import ipywidgets as widgets

from . import _loop_bound as ui
from ._common import close_widgets

if TYPE_CHECKING:
    import pandas as pd

    from .live_plot import LivePlot

__all__ = ["PlotAction", "PlotsColumns", "numeric_columns"]

# Columns that are numbers but no measurement: where the row came from, not what it says.
_NOT_PLOTTED = frozenset({"sequence"})


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    """The columns of ``frame`` a chart can draw: numbers (ints, floats, nullable ones), not booleans."""
    from pandas.api import types

    return [
        str(name)
        for name, dtype in frame.dtypes.items()
        if name not in _NOT_PLOTTED and types.is_numeric_dtype(dtype) and not types.is_bool_dtype(dtype)
    ]


class PlotAction:
    """A field chooser, a "Plot" button and the area where the chart opens, with a Close button.

    Args:
        make_plot: Makes the chart of the given columns (e.g. ``LivePlot.from_capture(capture, fields)``).
        on_error: Shows why opening the chart failed (the owner's error view).
        tooltip: The button's tooltip.
    """

    def __init__(
        self,
        make_plot: Callable[[list[str]], LivePlot],
        on_error: Callable[[str], None],
        *,
        tooltip: str,
    ) -> None:
        self._make_plot = make_plot
        self._on_error = on_error
        self.plot: LivePlot | None = None
        """The chart open now; None if none."""
        self.field_box = ui.Dropdown(
            options=[],
            description="plot",
            layout=widgets.Layout(width="12em"),
            style={"description_width": "initial"},
            tooltip="A numeric column",
        )
        self.button = ui.Button(
            description="Plot", icon="line-chart", disabled=True, tooltip=tooltip, layout={"width": "auto"}
        )
        self.area = widgets.VBox()
        self.button.on_click(lambda _b: self._clicked())

    def set_fields(self, names: Sequence[str]) -> None:
        """Offer these columns (the choice stays if it is still among them)."""
        names = list(names)
        if names != list(self.field_box.options):
            chosen = self.field_box.value
            self.field_box.options = names
            self.field_box.value = chosen if chosen in names else (names[0] if names else None)
        self.button.disabled = not names

    def open(self, fields: str | Sequence[str] | None = None, *, new: bool = False) -> LivePlot:
        """Chart ``fields`` (default: the chosen column), added to the chart open unless ``new``.

        Raises:
            ValueError: No column is chosen and none was given.
        """
        wanted = [fields] if isinstance(fields, str) else list(fields or [])
        if not wanted:
            if not self.field_box.value:
                raise ValueError(
                    "no numeric column to plot yet; wait for messages, or name one: open_plot('value')"
                )
            wanted = [self.field_box.value]
        if self.plot is not None and not new:
            wanted = list(dict.fromkeys([*self.plot.series.fields, *wanted]))
        plot = self._make_plot(wanted)
        self.close_plot()
        self.plot = plot
        close = ui.Button(description="Close plot", icon="times", layout={"width": "auto"})
        close.on_click(lambda _b: self.close_plot())
        self.area.children = [close, plot]
        return plot

    def _clicked(self) -> None:
        try:
            self.open()
        except Exception as e:
            self._on_error(f"plot failed: {type(e).__name__}: {e}")

    def close_plot(self) -> None:
        """Close the chart (it stops following its source)."""
        self.plot = None
        shown, self.area.children = self.area.children, ()
        close_widgets(*shown)  # the chart and its Close button

    def close(self) -> None:
        """Close the chart and the action's own widgets."""
        self.close_plot()
        close_widgets(self.field_box, self.button, self.area)


class PlotsColumns:
    """The public side of a view's :class:`PlotAction` (kept in its ``plot_action`` attribute)."""

    plot_action: PlotAction

    @property
    def plot(self) -> LivePlot | None:
        """The chart "Plot" opened; None if none is open."""
        return self.plot_action.plot

    def open_plot(self, fields: str | list[str] | None = None, *, new: bool = False) -> LivePlot:
        """Chart numeric columns below the view, a line per subject (what "Plot" does).

        Args:
            fields: A column or several (default: the one chosen beside the button).
            new: Open a new chart instead of adding the columns to the one open.

        Raises:
            ValueError: No column is given and none is chosen, or there is nothing to plot yet.
        """
        return self.plot_action.open(fields, new=new)

    def close_plot(self) -> None:
        """Close the chart "Plot" opened."""
        self.plot_action.close_plot()
