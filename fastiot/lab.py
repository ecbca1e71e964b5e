"""The JupyterLab that ``fastiot-workbench`` runs: its settings, its kernels and how it saves tutorials.

:func:`prepare_lab` writes a few files into a folder of the caller's own; JupyterLab finds them through
``JUPYTER_CONFIG_PATH`` and ``JUPYTER_PATH`` (:meth:`LabSetup.environment`). The user's own Jupyter
configuration is not touched, and where it says otherwise, it wins:

- ``config/labconfig/default_setting_overrides.json``: JupyterLab does not ask about "official Jupyter
  news" on first start and does not check for updates;
- ``config/jupyter_server_config.json``: a tutorial notebook is saved without outputs
  (:func:`strip_tutorial_outputs`), so running the tour on the repository's ``notebooks/`` (Binder,
  ``--notebook-dir notebooks``) leaves it clean; by default the workbench opens the user's own
  workspace instead (:mod:`fastiot.workspace`), whose copies of the tutorials keep their outputs;
- ``data/kernels/python3/kernel.json``: the ``python3`` kernel loads the ``fastiot_widgets`` IPython
  extension, so ``%%service`` works in a fresh kernel without ``%load_ext``.

``fastiot-workbench`` does this in a temporary folder for the JupyterLab it runs; ``binder/start`` runs
``python -m fastiot.lab FOLDER`` and exports the two variables itself.

Example:
    >>> setup = prepare_lab(Path(tempfile.mkdtemp()))  # doctest: +SKIP
    >>> lab = [sys.executable, "-m", "jupyterlab"]  # doctest: +SKIP
    >>> subprocess.Popen(lab, env=setup.environment(os.environ))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

__all__ = [
    "KERNEL_EXTENSION",
    "LAB_SETTING_OVERRIDES",
    "TUTORIAL_METADATA",
    "LabSetup",
    "main",
    "prepare_lab",
    "strip_tutorial_outputs",
]

# The IPython extension every workbench kernel loads (by name: fastiot never imports the widget layer).
# The magics module, not the package: a notebook's own `%load_ext fastiot_widgets` then loads the
# package's extension without IPython's "already loaded" answer.
KERNEL_EXTENSION = "fastiot_widgets.magics"

LAB_SETTING_OVERRIDES: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}

# A tutorial carries {"fastiot": {"tutorial": "<its file name>"}} in its notebook metadata. Only the
# file of that name is saved without outputs: a copy saved under another name keeps them.
TUTORIAL_METADATA = "fastiot"

# What JupyterLab adds to a notebook's metadata when it runs and saves it, and a tutorial never keeps.
_RUN_METADATA = ("language_info", "widgets")


@dataclass(frozen=True)
class LabSetup:
    """What :func:`prepare_lab` prepared: the folders to put in front of Jupyter's search paths."""

    config_dir: Path
    data_dir: Path

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` with the prepared folders in front of ``JUPYTER_CONFIG_PATH`` and ``JUPYTER_PATH``."""
        env = dict(base)
        for name, folder in (("JUPYTER_CONFIG_PATH", self.config_dir), ("JUPYTER_PATH", self.data_dir)):
            env[name] = os.pathsep.join(p for p in (str(folder), base.get(name, "")) if p)
        return env


def prepare_lab(folder: Path) -> LabSetup:
    """Write the workbench's JupyterLab settings and kernel spec into ``folder`` (see the module docs).

    ``folder`` must live as long as JupyterLab runs (the CLI uses a temporary folder it removes at exit).
    """
    config_dir, data_dir = folder / "config", folder / "data"
    labconfig = config_dir / "labconfig"
    labconfig.mkdir(parents=True, exist_ok=True)
    (labconfig / "default_setting_overrides.json").write_text(json.dumps(LAB_SETTING_OVERRIDES, indent=2))
    hook = f"{__name__}.{strip_tutorial_outputs.__name__}"
    server_config = {"ContentsManager": {"pre_save_hook": hook}}
    (config_dir / "jupyter_server_config.json").write_text(json.dumps(server_config, indent=2))
    kernel_dir = data_dir / "kernels" / "python3"
    kernel_dir.mkdir(parents=True, exist_ok=True)
    kernel = {
        "argv": [
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
            f"--ext={KERNEL_EXTENSION}",
        ],
        "display_name": "Python 3",  # as the tutorials' metadata says, so saving them changes nothing
        "language": "python",
        "metadata": {"debugger": True},
    }
    (kernel_dir / "kernel.json").write_text(json.dumps(kernel, indent=2))
    return LabSetup(config_dir=config_dir, data_dir=data_dir)


def strip_tutorial_outputs(model: dict[str, Any], path: str, **_: Any) -> None:
    """JupyterLab's pre-save hook: save a tutorial notebook as it is committed, without outputs.

    Any other file is saved as it is. A tutorial is a notebook whose metadata names its own file (see
    :data:`TUTORIAL_METADATA`); its outputs, execution counts and the run's notebook metadata are
    dropped, its cells and their sources kept.
    """
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    notebook = model["content"]
    metadata = notebook.get("metadata") or {}
    tutorial = (metadata.get(TUTORIAL_METADATA) or {}).get("tutorial")
    if tutorial != PurePath(path).name:
        return
    for name in _RUN_METADATA:
        metadata.pop(name, None)
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None


def main(argv: list[str] | None = None) -> None:
    """``python -m fastiot.lab FOLDER``: prepare FOLDER; export its config/ and data/ for Jupyter."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m fastiot.lab",
        description="Write the workbench's JupyterLab settings and kernel spec into FOLDER. Then put "
        "FOLDER/config in front of JUPYTER_CONFIG_PATH and FOLDER/data in front of JUPYTER_PATH.",
    )
    parser.add_argument("folder", type=Path)
    prepare_lab(parser.parse_args(argv).folder)


if __name__ == "__main__":
    main()
