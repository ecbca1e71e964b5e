"""Run one notebook top to bottom with nbclient in a scratch folder; exit 1 naming the cell that failed.

CI runs it with the Python of a venv where the wheel is installed (not editable), from outside the
work tree, so the kernel imports the installed fastiot. No FASTIOT_NATS_* settings: the notebook's
kernel starts the workbench's broker on demand, as on a user's machine.

Example:
    $ venv/bin/python -I .ci/run_notebook.py notebooks/03_capture_to_dataframe.ipynb
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import nbclient
import nbformat

TIMEOUT = 180  # seconds per cell


def main(notebook: Path) -> int:
    with tempfile.TemporaryDirectory(prefix="fastiot-ci-notebook-") as scratch:
        work = Path(scratch) / notebook.name
        shutil.copy(notebook, work)
        nb = nbformat.read(work, as_version=4)
        client = nbclient.NotebookClient(
            nb, timeout=TIMEOUT, kernel_name="python3", resources={"metadata": {"path": scratch}}
        )
        try:
            client.execute()
        except nbclient.exceptions.CellExecutionError as e:
            print(f"{notebook.name} failed:\n{e}", file=sys.stderr)
            return 1
    import fastiot  # where the kernel's fastiot came from, for the log

    print(f"{notebook.name} ran top to bottom with fastiot from {Path(fastiot.__file__).parent}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]).resolve()))
