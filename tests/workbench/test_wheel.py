"""The wheel holds every module: built from the sources, installed (not editable) into a fresh venv.

The tests themselves run against an editable install, which imports straight from the work tree; a
subpackage the build leaves out would pass them and be missing for every user. So this test builds the
wheel as pip does, installs it with ``--no-deps`` into a new venv that reaches the test venv's
dependencies through a ``.pth`` path line (quicker than installing them again), and imports every
module of ``fastiot`` and ``fastiot_widgets`` there, checking that each comes from the new venv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What the build reads: the sources and the files pyproject.toml names.
BUILD_INPUTS = ("pyproject.toml", "setup.py", "README.md", "fastiot", "widgets")
PACKAGES = {"fastiot": "fastiot", "fastiot_widgets": "widgets"}  # import name -> folder

IMPORT_EVERYTHING = """
import importlib, importlib.util, json, pkgutil, sys
found = {}
for name in ("fastiot", "fastiot_widgets"):
    package = importlib.import_module(name)
    found[name] = package.__file__
    for info in pkgutil.walk_packages(package.__path__, name + "."):
        found[info.name] = importlib.import_module(info.name).__file__
print(json.dumps({
    "modules": found,
    "prefix": sys.prefix,
    "bare_widgets": importlib.util.find_spec("widgets") is not None,
}))
"""


def _run(args: list[str], *, cwd: Path, timeout: float = 300) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _source_modules() -> set[str]:
    """Every module the work tree has, by the name it is imported as."""
    names = set()
    for package, folder in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            names.add(".".join([package, *parts]))
    return names


@pytest.mark.timeout(600)
def test_the_wheel_installs_every_module_and_the_views_front_end_files(tmp_path: Path) -> None:
    source = tmp_path / "src"  # a copy: the build's own files (build/, *.egg-info) stay out of the work tree
    source.mkdir()
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, source / name)
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), str(source)],
        cwd=tmp_path,
    )
    (wheel,) = (tmp_path / "dist").glob("fastiot_workbench-*.whl")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        cwd=tmp_path,
    )
    site_packages = Path(
        _run(
            [str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            cwd=tmp_path,
        ).strip()
    )
    # The dependencies from the test venv, after the new venv's own site-packages.
    (site_packages / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    report = json.loads(_run([str(python), "-I", "-c", IMPORT_EVERYTHING], cwd=tmp_path))
    modules: dict[str, str] = report["modules"]
    missing, extra = _source_modules() - set(modules), set(modules) - _source_modules()
    assert not missing, f"modules of the work tree missing from the wheel: {sorted(missing)}"
    assert not extra, f"modules in the wheel that the work tree does not have: {sorted(extra)}"
    outside = {name: file for name, file in modules.items() if not Path(file).is_relative_to(site_packages)}
    assert not outside, f"imported from elsewhere than the new venv: {outside}"
    assert not report["bare_widgets"], "widgets/ must be installed as fastiot_widgets only"
    front_end = {p.name for p in (ROOT / "widgets").iterdir() if p.suffix in (".js", ".css")}
    assert front_end and front_end <= {p.name for p in (site_packages / "fastiot_widgets").iterdir()}
    entry_points = next(site_packages.glob("fastiot_workbench-*.dist-info")) / "entry_points.txt"
    assert "fastiot-workbench = fastiot.cli:main" in entry_points.read_text()
