"""Run notebook cells in a real ipykernel (through nbclient) and read their outputs.

:func:`execute_cells` runs a list of cells top to bottom in a fresh kernel; :func:`running_kernel`
keeps one kernel for a test that runs cells one by one (:meth:`Kernel.run`), e.g. to re-run an edited
cell. Both read a cell's outputs the same way (:func:`read_outputs`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nbclient
import nbformat

__all__ = ["CellResult", "Kernel", "execute_cells", "read_outputs", "running_kernel"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class CellResult:
    text: str
    """stdout, and the text/plain of results and displays."""
    stderr: str
    """What the cell wrote to stderr: a notebook shows it in red."""
    errors: list[str]
    """``"ename: evalue"`` of each error the cell raised."""
    traceback: str = ""
    """The tracebacks of those errors as the notebook shows them (colours removed)."""

    @property
    def shown(self) -> str:
        """Everything the cell shows as text, stderr included."""
        return self.text + self.stderr


def read_outputs(cell: nbformat.NotebookNode) -> CellResult:
    """The outputs of an executed ``cell``."""
    text, stderr, errors, tracebacks = [], [], [], []
    for output in cell.outputs:
        if output.output_type == "stream":
            (stderr if output.name == "stderr" else text).append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            text.append(output.get("data", {}).get("text/plain", ""))
        elif output.output_type == "error":
            errors.append(f"{output.ename}: {output.evalue}")
            tracebacks.append(_ANSI.sub("", "\n".join(output.get("traceback", []))))
    return CellResult("".join(text), "".join(stderr), errors, "\n".join(tracebacks))


def execute_cells(cells: list[str], *, timeout: float = 60, allow_errors: bool = False) -> list[CellResult]:
    """Execute ``cells`` top to bottom in a fresh python3 kernel (inheriting this process's environment).

    The kernel is shut down when the last cell has run. Returns each cell's outputs.
    """
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    client = nbclient.NotebookClient(
        nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors, startup_timeout=60
    )
    client.execute()
    return [read_outputs(cell) for cell in nb.cells]


class Kernel:
    """One kernel; :meth:`run` executes a cell (a given cell again, like re-running an edited cell)."""

    def __init__(self, client: nbclient.NotebookClient) -> None:
        self.client = client

    def run(self, source: str, cell: nbformat.NotebookNode | None = None) -> CellResult:
        nb = self.client.nb
        if cell is None:
            cell = nbformat.v4.new_code_cell(source)
            nb.cells.append(cell)
        else:
            cell.source = source
        self.client.execute_cell(cell, nb.cells.index(cell))
        return read_outputs(cell)

    def click(self, model_id: str) -> None:
        """Send the comm message a click on button widget ``model_id`` in the browser sends.

        The kernel handles it before the next cell that :meth:`run` executes (one shell channel).
        """
        kc = self.client.kc
        click = {"comm_id": model_id, "data": {"method": "custom", "content": {"event": "click"}}}
        kc.shell_channel.send(kc.session.msg("comm_msg", click))

    def run_ok(self, source: str, cell: nbformat.NotebookNode | None = None) -> CellResult:
        out = self.run(source, cell)
        assert not out.errors, f"cell failed: {out.errors}\n{out.stderr}"
        return out


@contextmanager
def running_kernel(cwd: Path, env: dict[str, str] | None = None, *, timeout: float = 60) -> Iterator[Kernel]:
    """A python3 kernel in ``cwd`` with this process's environment plus ``env``, shut down on exit.

    A failing cell does not raise: read :attr:`CellResult.errors` (or use :meth:`Kernel.run_ok`).
    """
    client = nbclient.NotebookClient(
        nbformat.v4.new_notebook(),
        timeout=timeout,
        startup_timeout=60,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(cwd)}},
    )
    with client.setup_kernel(env={**os.environ, **(env or {})}, cwd=str(cwd)):
        yield Kernel(client)
