"""Where the workbench's exports land: one ``exports/`` folder beside the notebook.

Every export a widget writes without being given a path (a MessageTable's CSV and Parquet buttons)
goes to :func:`exports_dir`, and the tutorials write theirs there too. In the workbench's notebook
workspace (and under the repository's ``notebooks/``) git ignores that folder, so exports never show
up as untracked files.

Example:
    >>> from fastiot.exports import exports_dir
    >>> capture.to_csv(exports_dir() / "plant.csv")  # doctest: +SKIP
    PosixPath('/home/me/fastiot-workspace/exports/plant.csv')
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["EXPORTS_FOLDER", "exports_dir"]

EXPORTS_FOLDER = "exports"
"""The exports folder's name, in the notebook's folder (the kernel's working directory)."""


def exports_dir(base: str | os.PathLike[str] | None = None) -> Path:
    """The exports folder (made if missing): ``exports/`` in ``base``, by default the current directory.

    A notebook's kernel runs in the notebook's folder, so that is ``exports/`` beside the notebook.

    Args:
        base: The folder to put ``exports/`` in; ``None`` means the current working directory.

    Returns:
        The absolute path of the folder.

    Example:
        >>> exports_dir("/tmp/fastiot-doctest").name
        'exports'
    """
    folder = (Path(base).expanduser() if base is not None else Path.cwd()) / EXPORTS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    return folder.resolve()
