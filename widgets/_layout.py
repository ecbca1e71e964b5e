"""Layout rules shared by the views: toolbars that wrap instead of cutting their buttons' labels.

A view must read from 1280 px wide with JupyterLab's file browser open (an output about 850 px wide).
ipywidgets lets a flex item shrink below its content, and a button then shows "Load into t…"; in a
toolbar every control keeps its natural width and the row wraps onto a second line instead.

Example:
    >>> import ipywidgets as widgets
    >>> from fastiot_widgets._layout import toolbar
    >>> bar = toolbar(widgets.Button(description="Load into table"), widgets.Button(description="Plot"))
    >>> bar.layout.flex_flow, bar.children[0].layout.flex
    ('row wrap', '0 0 auto')
"""

from __future__ import annotations

import ipywidgets as widgets

__all__ = ["BOX", "keep_width", "toolbar"]

BOX = {"border": "1px solid #e0e0e0", "padding": "4px", "margin": "2px 0"}
"""A frame around a group of controls."""


def keep_width(*controls: widgets.Widget) -> None:
    """Never shrink ``controls`` below their content (a button's label stays whole).

    A control whose flex is set already (e.g. a pane that takes the rest of the row) keeps it.
    """
    for control in controls:
        if not control.layout.flex:
            control.layout.flex = "0 0 auto"


def toolbar(*children: widgets.Widget, keep: bool = True, **layout: str) -> widgets.HBox:
    """A row of controls that wraps onto further lines when the output is narrow.

    Args:
        children: The controls, left to right.
        keep: Keep each control's natural width (False lets text views such as a summary shrink).
        layout: More CSS of the row, e.g. ``justify_content="space-between"``.
    """
    if keep:
        keep_width(*(c for c in children if not isinstance(c, widgets.HTML)))
    return widgets.HBox(
        list(children), layout=widgets.Layout(flex_flow="row wrap", align_items="center", **layout)
    )
