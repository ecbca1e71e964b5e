"""The notebook workspace: the user's own folder with copies of the tutorials, never the repository's."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from fastiot.lab import TUTORIAL_METADATA
from fastiot.workspace import (
    TUTORIALS,
    default_workspace,
    prepare_workspace,
    tutorials_dir,
)

ROOT = Path(__file__).resolve().parents[2]


def _committed(name: str) -> str:
    return (ROOT / "notebooks" / name).read_text()


def test_the_default_workspace_is_a_folder_git_ignores_not_the_tutorials() -> None:
    workspace = default_workspace()
    assert tutorials_dir() == ROOT / "notebooks"
    assert workspace == ROOT / "workspace" and workspace != tutorials_dir()
    # New notebooks, autosaved tutorials and exports in it are none of git's business.
    for path in ("Untitled.ipynb", TUTORIALS[0], "exports/plant.csv"):
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", str(workspace / path)], cwd=ROOT, timeout=30, check=False
        )
        assert ignored.returncode == 0, f"git does not ignore {workspace / path}"


def test_a_new_workspace_gets_copies_of_the_tutorials(tmp_path: Path) -> None:
    folder = tmp_path / "mine"  # --notebook-dir names a folder that does not exist yet
    workspace = prepare_workspace(folder)
    assert workspace.folder == folder.resolve() and workspace.copied == list(TUTORIALS)
    for name in TUTORIALS:
        copy, committed = json.loads((folder / name).read_text()), json.loads(_committed(name))
        assert copy["cells"] == committed["cells"]
        # The user's copy is saved with its outputs, like any notebook of theirs.
        assert TUTORIAL_METADATA not in copy["metadata"]
    assert "01_explore_live_subjects.ipynb" in workspace.describe_copied()


def test_the_users_files_are_never_overwritten_and_a_deleted_tutorial_comes_back_fresh(
    tmp_path: Path,
) -> None:
    prepare_workspace(tmp_path)
    edited = tmp_path / TUTORIALS[1]
    edited.write_text('{"my": "edits"}')
    again = prepare_workspace(tmp_path)
    assert again.copied == [] and again.describe_copied() == ""
    assert edited.read_text() == '{"my": "edits"}'
    edited.unlink()  # how to get a fresh copy
    assert prepare_workspace(tmp_path).copied == [TUTORIALS[1]]
    assert json.loads(edited.read_text())["cells"] == json.loads(_committed(TUTORIALS[1]))["cells"]


def test_a_file_of_the_users_with_a_tutorials_name_is_kept(tmp_path: Path) -> None:
    (tmp_path / TUTORIALS[0]).write_text("mine")
    assert prepare_workspace(tmp_path).copied == list(TUTORIALS[1:])
    assert (tmp_path / TUTORIALS[0]).read_text() == "mine"


def test_the_tutorials_folder_itself_gets_nothing(tmp_path: Path) -> None:
    before = {name: _committed(name) for name in TUTORIALS}
    assert prepare_workspace(ROOT / "notebooks").copied == []
    assert {name: _committed(name) for name in TUTORIALS} == before


def test_a_file_is_no_workspace(tmp_path: Path) -> None:
    path = tmp_path / "file.txt"
    path.write_text("x")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        prepare_workspace(path)
