"""The notebook workspace ``fastiot-workbench`` opens JupyterLab on: the user's folder, not the tutorials.

JupyterLab autosaves what a person does in a notebook, and "New notebook" lands in the folder it
shows. Opened on the repository's ``notebooks/``, a first hour with the tutorials changed tracked
files (edits, inserted "copy as code" cells) and left untracked ones (``Untitled.ipynb``). So the
workbench opens a workspace of the user's own instead:

- ``--notebook-dir DIR`` if given (made if missing);
- else, in a checkout of the project (an editable install), ``workspace/`` at its root, a folder git
  ignores;
- else ``fastiot-workspace/`` in the current directory.

On start, :func:`prepare_workspace` copies each tutorial (:data:`TUTORIALS`) the workspace lacks into
it. A file already there is never overwritten: to get a fresh copy of a tutorial, delete (or rename)
yours and start again. The copies are the user's notebooks: they are saved with their outputs like
any other.

Example:
    >>> workspace = prepare_workspace()  # doctest: +SKIP
    >>> workspace.folder, workspace.copied  # doctest: +SKIP
    (PosixPath('/home/me/fastiot-workbench/workspace'), ['01_explore_live_subjects.ipynb', ...])
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastiot.lab import TUTORIAL_METADATA

__all__ = [
    "DEFAULT_WORKSPACE",
    "OUTSIDE_CHECKOUT_WORKSPACE",
    "TUTORIALS",
    "Workspace",
    "default_workspace",
    "prepare_workspace",
    "tutorials_dir",
]

TUTORIALS = (
    "01_explore_live_subjects.ipynb",
    "02_prototype_a_service.ipynb",
    "03_capture_to_dataframe.ipynb",
    "04_record_and_replay.ipynb",
    "05_mqtt_devices.ipynb",
)
"""The tutorials, in ``notebooks/`` of the project, in the order of the tour."""

DEFAULT_WORKSPACE = "workspace"
"""The workspace's folder at the root of a checkout of the project (``.gitignore`` lists it)."""

OUTSIDE_CHECKOUT_WORKSPACE = "fastiot-workspace"
"""The workspace's folder in the current directory when the project is installed, not checked out."""

_PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Workspace:
    """What :func:`prepare_workspace` did: the folder, and the tutorials it copied into it this time."""

    folder: Path
    copied: list[str] = field(default_factory=list)
    tutorials: Path | None = None
    """Where the tutorials came from; ``None`` if there are none to copy (an installed wheel)."""

    def describe_copied(self) -> str:
        """``" (the tutorials copied in: 01_..., 02_...)"``, or ``""`` if nothing was copied.

        Example:
            >>> Workspace(Path("w"), ["01_explore_live_subjects.ipynb"]).describe_copied()
            ' (the tutorials copied in: 01_explore_live_subjects.ipynb)'
        """
        return f" (the tutorials copied in: {', '.join(self.copied)})" if self.copied else ""


def tutorials_dir() -> Path | None:
    """The project's ``notebooks/`` folder with the tutorials, or ``None`` if this install has none."""
    folder = _PROJECT_ROOT / "notebooks"
    return folder if all((folder / name).is_file() for name in TUTORIALS) else None


def default_workspace() -> Path:
    """``workspace/`` at the root of the project's checkout, else ``fastiot-workspace/`` here."""
    if tutorials_dir() is not None and (_PROJECT_ROOT / "pyproject.toml").is_file():
        return _PROJECT_ROOT / DEFAULT_WORKSPACE
    return Path.cwd() / OUTSIDE_CHECKOUT_WORKSPACE


def prepare_workspace(folder: str | os.PathLike[str] | None = None) -> Workspace:
    """Make the workspace folder and copy into it the tutorials it lacks (never overwriting a file).

    Args:
        folder: The user's folder (``--notebook-dir``); ``None`` means :func:`default_workspace`.

    Raises:
        NotADirectoryError: ``folder`` exists and is not a folder.

    Example:
        >>> prepare_workspace(tmp_path / "mine").copied  # doctest: +SKIP
        ['01_explore_live_subjects.ipynb', '02_prototype_a_service.ipynb', ...]
    """
    target = (Path(folder).expanduser() if folder is not None else default_workspace()).resolve()
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{target} is not a folder; name a folder for your notebooks")
    target.mkdir(parents=True, exist_ok=True)
    source = tutorials_dir()
    if source is None or source.resolve() == target:
        return Workspace(target, [], source)
    copied = []
    for name in TUTORIALS:
        destination = target / name
        if destination.exists():
            continue
        text = _users_copy((source / name).read_text(encoding="utf-8"))
        with contextlib.suppress(FileExistsError):  # made meanwhile (another start): it is theirs
            with destination.open("x", encoding="utf-8") as file:
                file.write(text)
            copied.append(name)
    return Workspace(target, copied, source)


def _users_copy(text: str) -> str:
    """The tutorial as the user's own notebook: without the mark that saves a tutorial without outputs."""
    notebook: dict[str, Any] = json.loads(text)
    metadata = notebook.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop(TUTORIAL_METADATA, None)
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
