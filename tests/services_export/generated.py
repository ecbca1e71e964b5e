"""Running the pytest file an export generated, as its user would: a separate pytest, fastiot installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_generated_test(test: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``pytest test`` in a subprocess; the repository is not on its path (only the installed fastiot)."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
        env={**os.environ, "PYTHONPATH": ""},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
