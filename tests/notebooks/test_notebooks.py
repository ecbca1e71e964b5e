"""The tutorials run top to bottom in a real kernel against a test broker.

They are named (:data:`fastiot.workspace.TUTORIALS`), never globbed: whatever else lies in notebooks/
(a notebook a user made there) is not a tutorial and not tested.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import nbclient
import nbformat
import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.history.rolling import HISTORY_STREAM, HistorySettings
from fastiot.history.rolling_cli import prepare_for_cli
from fastiot.nats_server import NatsServer
from fastiot.workspace import TUTORIALS

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = [ROOT / "notebooks" / name for name in TUTORIALS]


def _ignored_notebook_folders() -> set[str]:
    """The folders under notebooks/ that .gitignore lists (``notebooks/<name>/`` lines)."""
    lines = (ROOT / ".gitignore").read_text().splitlines()
    return {line[len("notebooks/") :].strip("/") for line in lines if line.startswith("notebooks/")}


def test_the_five_tutorials_are_in_the_repository() -> None:
    assert list(TUTORIALS) == [
        "01_explore_live_subjects.ipynb",
        "02_prototype_a_service.ipynb",
        "03_capture_to_dataframe.ipynb",
        "04_record_and_replay.ipynb",
        "05_mqtt_devices.ipynb",
    ]
    assert all(path.is_file() for path in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = json.loads(path.read_text())
    assert all(
        not cell.get("outputs") and not cell.get("execution_count")
        for cell in nb["cells"]
        if cell["cell_type"] == "code"
    )


@contextlib.contextmanager
def _rolling_history(url: str) -> Iterator[None]:
    """The session's broker keeps a rolling history, as the one the workbench starts does, for one test."""
    keeper = prepare_for_cli(url, HistorySettings())
    assert keeper is not None
    process = subprocess.Popen(keeper)
    try:
        yield
    finally:
        process.terminate()
        process.wait(30)

        async def delete() -> None:  # the other tests' recordings of v1 are streams of their own again
            connection = await NatsBrokerConnection.connect(servers=url)
            await connection.client.jsm().delete_stream(HISTORY_STREAM)
            await connection.close()

        asyncio.run(delete())


@contextlib.contextmanager
def _mqtt_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A broker of its own with an MQTT listener, which the notebook's kernel finds in its environment."""
    with NatsServer(jetstream=True, mqtt_port=0) as server:
        monkeypatch.setenv("FASTIOT_NATS_SERVERS", server.url)
        monkeypatch.setenv("FASTIOT_MQTT_PORT", str(server.mqtt_port))
        yield


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(
    path: Path, tmp_path: Path, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A copy in a scratch folder: exports land there, not in the repository.
    work = tmp_path / path.name
    shutil.copy(path, work)
    nb = nbformat.read(work, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
        startup_timeout=60,
    )
    # Notebook 01 ends with the last five minutes from the rolling history of the workbench's broker.
    # Notebook 05 needs a broker with an MQTT listener (fastiot-workbench --mqtt gives the kernels its port).
    if path.stem.startswith("01_"):
        context: contextlib.AbstractContextManager[None] = _rolling_history(nats_server.url)
    elif path.stem.startswith("05_"):
        context = _mqtt_broker(monkeypatch)
    else:
        context = contextlib.nullcontext()
    with context:
        client.execute()  # raises CellExecutionError naming the cell that failed
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    # Whatever a tutorial writes beside itself goes to a folder git ignores, so running the tour in
    # the repository leaves the work tree clean.
    written = {p.name for p in tmp_path.iterdir()} - {path.name}
    assert all((tmp_path / name).is_dir() for name in written), written
    assert written <= _ignored_notebook_folders(), f"{written} is not ignored by .gitignore"
