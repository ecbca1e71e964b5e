"""Run notebook cells in a real ipykernel (through nbclient) and read their outputs."""

from __future__ import annotations

from dataclasses import dataclass

import nbclient
import nbformat


@dataclass
class CellResult:
    text: str
    errors: list[str]
    stderr: str = ""
    """What the cell wrote to stderr: a notebook shows it in red."""


def execute_cells(cells: list[str], *, timeout: float = 60, allow_errors: bool = False) -> list[CellResult]:
    """Execute ``cells`` top to bottom in a fresh python3 kernel (inheriting this process's environment).

    The kernel is shut down when the last cell has run. Returns each cell's text output and error texts.
    """
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    client = nbclient.NotebookClient(
        nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors, startup_timeout=60
    )
    client.execute()
    results = []
    for cell in nb.cells:
        texts, errors, stderr = [], [], []
        for output in cell.outputs:
            if output.output_type == "stream":
                texts.append(output.text)
                if output.name == "stderr":
                    stderr.append(output.text)
            elif output.output_type in ("execute_result", "display_data"):
                texts.append(output.get("data", {}).get("text/plain", ""))
            elif output.output_type == "error":
                errors.append(f"{output.ename}: {output.evalue}")
        results.append(CellResult("".join(texts), errors, "".join(stderr)))
    return results
