"""A stand-in for a browser view of a DataGrid: it speaks data_grid.js's protocol to the kernel side.

It asks for windows as the ES module does and applies the answers as it does (cache by row id, keep
only the window's ids, follow ``shift``), so a test can check what a person would see, and how many
bytes each update costs, without a browser.
"""

from __future__ import annotations

import json
from typing import Any

from fastiot_widgets import DataGrid


class GridViews:
    """Every message the grid sends, recorded by replacing its ``send``; views register here."""

    def __init__(self, grid: DataGrid) -> None:
        self.grid: DataGrid = grid
        self.sent: list[dict[str, Any]] = []
        self.views: dict[str, FakeView] = {}
        grid.send = self._send  # type: ignore[method-assign]

    def _send(self, content: dict[str, Any], buffers: Any = None) -> None:
        self.sent.append(content)
        view = self.views.get(content.get("view", ""))
        if view is not None:
            view.receive(content)

    def view(self, name: str = "view", rows: int = 30) -> FakeView:
        view = FakeView(self, name, rows)
        self.views[name] = view
        view.scroll_to(0, reset=True)
        return view

    def bytes_sent(self) -> int:
        return sum(len(json.dumps(m)) for m in self.sent)


class FakeView:
    """One view showing ``rows`` rows from position :attr:`first`."""

    def __init__(self, views: GridViews, name: str, rows: int) -> None:
        self.views: GridViews = views
        self.name: str = name
        self.rows: int = rows
        self.first: int = 0
        self.cache: dict[int, list[str]] = {}
        self.ids: list[int] = []
        self.start: int = 0
        self.count: int = 0
        self.layout: int = -1
        self.messages: list[dict[str, Any]] = []

    def scroll_to(self, first: int, *, reset: bool = False) -> None:
        self.first = first
        content = {"type": "window", "view": self.name, "start": first, "stop": first + self.rows}
        if reset:
            content["reset"] = True
        self.views.grid._handle_custom_msg(content, [])

    def receive(self, msg: dict[str, Any]) -> None:
        assert msg["type"] == "rows"
        self.messages.append(msg)
        if msg["reset"] or msg["layout"] != self.layout:
            self.cache, self.layout = {}, msg["layout"]
        for row_id, *values in msg["rows"]:
            self.cache[row_id] = values
        self.cache = {i: v for i, v in self.cache.items() if i in set(msg["ids"])}
        self.ids, self.start, self.count = msg["ids"], msg["start"], msg["count"]
        self.first += msg["shift"]

    def shown(self) -> list[list[str]]:
        """The cells of the rows on screen, as the view draws them (``[]`` for a row still loading)."""
        out = []
        for position in range(self.first, min(self.first + self.rows, self.count)):
            at = position - self.start
            row_id = self.ids[at] if 0 <= at < len(self.ids) else None
            out.append(self.cache.get(row_id, []) if row_id is not None else [])
        return out

    def column(self, name: str) -> list[str]:
        index = self.views.grid.columns.index(name)
        return [row[index] if row else "" for row in self.shown()]
