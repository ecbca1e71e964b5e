"""The JupyterLab of fastiot-workbench: on the user's workspace, no news question, kernels with %%service.

One JupyterLab (started by the command, as a user starts it) serves every test of this module; the
tests talk to it through its REST and kernel websocket APIs, as the browser does.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tornado.websocket import websocket_connect

from fastiot.lab import strip_tutorial_outputs
from fastiot.nats_server import NatsServer, find_free_port
from fastiot.workspace import TUTORIALS
from tests.workbench.cli_process import WorkbenchCommand

TOKEN = "lab-test-token"
ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "notebooks" / "03_capture_to_dataframe.ipynb"
KERNEL_TIMEOUT = 60.0


@dataclass
class Lab:
    base: str
    notebook_dir: Path
    output: str

    def api(self, path: str, method: str = "GET", body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base}{path}", data=data, method=method, headers={"Authorization": f"token {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
        return json.loads(text) if text else None


@pytest.fixture(scope="module")
def lab(nats_server: NatsServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    notebook_dir = tmp_path_factory.mktemp("lab") / "my notebooks"  # made by the command
    port = find_free_port()
    args = ["--no-browser", "--no-demo", "--token", TOKEN, "--port", str(port)]
    with WorkbenchCommand([*args, "--notebook-dir", str(notebook_dir)]) as command:
        command.wait_for("notebooks in", 90)
        yield Lab(f"http://127.0.0.1:{port}", notebook_dir, command.output)
        assert command.stop(signal.SIGTERM) == 0, command.output


def test_no_news_question_and_no_update_check(lab: Lab) -> None:
    settings = lab.api("/lab/api/settings/@jupyterlab/apputils-extension:notification")
    # The page takes a setting the user has not set from the schema's default. With "none" it asks
    # "Would you like to get notified about official Jupyter news?" on first start.
    defaults = {name: spec.get("default") for name, spec in settings["schema"]["properties"].items()}
    assert defaults["fetchNews"] == "false"
    assert defaults["checkForUpdates"] is False


async def _execute(lab: Lab, kernel_id: str, code: str) -> tuple[str, list[str]]:
    """Run ``code`` in the kernel over the websocket JupyterLab's page uses; returns (output, errors)."""
    url = f"{lab.base.replace('http', 'ws', 1)}/api/kernels/{kernel_id}/channels?token={TOKEN}"
    socket = await websocket_connect(url)
    msg_id = uuid.uuid4().hex
    request = {
        "header": {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "session": uuid.uuid4().hex,
            "username": "test",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": False, "allow_stdin": False},
    }
    await socket.write_message(json.dumps(request))
    output, errors = [], []
    try:
        while True:
            raw = await asyncio.wait_for(socket.read_message(), KERNEL_TIMEOUT)
            assert raw is not None, "the kernel's websocket closed"
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["header"]["msg_type"], msg["content"]
            if kind == "stream":
                output.append(content["text"])
            elif kind == "error":
                errors.append(f"{content['ename']}: {content['evalue']}")
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(output), errors
    finally:
        socket.close()


def test_jupyterlab_opens_the_users_workspace_with_copies_of_the_tutorials(lab: Lab) -> None:
    listed = {item["name"] for item in lab.api("/api/contents")["content"]}
    assert set(TUTORIALS) <= listed
    assert f"notebooks in {lab.notebook_dir} (the tutorials copied in: {', '.join(TUTORIALS)})" in lab.output
    # The user's copy keeps what they ran; the repository's tutorial does not change.
    name = TUTORIALS[1]
    committed = (ROOT / "notebooks" / name).read_text()
    ran = _as_if_run(lab.api(f"/api/contents/{name}")["content"])
    lab.api(f"/api/contents/{name}", "PUT", {"type": "notebook", "format": "json", "content": ran})
    saved = json.loads((lab.notebook_dir / name).read_text())
    assert all(c["outputs"] for c in saved["cells"] if c["cell_type"] == "code")
    lab.api("/api/contents", "POST", {"type": "notebook"})  # File > New > Notebook
    assert (lab.notebook_dir / "Untitled.ipynb").is_file()
    assert (ROOT / "notebooks" / name).read_text() == committed
    assert not (ROOT / "notebooks" / "Untitled.ipynb").exists()


def test_a_fresh_kernel_has_the_service_magics(lab: Lab) -> None:
    kernel = lab.api("/api/kernels", "POST", {"name": "python3"})
    try:
        # The tutorials' first line: silent, although the kernel loaded the magics at its start.
        out, errors = asyncio.run(_execute(lab, kernel["id"], "%load_ext fastiot_widgets"))
        assert (out, errors) == ("", [])
        cell = "%%service\nfrom fastiot.core import FastIoTService\nclass Idle(FastIoTService):\n    pass\n"
        out, errors = asyncio.run(_execute(lab, kernel["id"], cell))
        # IPython reports an unknown magic as text ("UsageError: Cell magic `%%service` not found.").
        assert errors == [] and "UsageError" not in out, f"%%service without %load_ext failed: {out}"
        out, errors = asyncio.run(_execute(lab, kernel["id"], "%service_stop Idle\nprint('stopped')"))
        assert errors == [] and "stopped" in out
    finally:
        lab.api(f"/api/kernels/{kernel['id']}", "DELETE")


def _as_if_run(notebook: dict[str, Any]) -> dict[str, Any]:
    """The notebook as JupyterLab saves it after a run: outputs, counts, the kernel's language info."""
    ran = json.loads(json.dumps(notebook))
    for count, cell in enumerate((c for c in ran["cells"] if c["cell_type"] == "code"), start=1):
        cell["execution_count"] = count
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": f"output {count}\n"}]
    ran["metadata"]["language_info"] = {"name": "python", "version": "3.11.7"}
    ran["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return ran


def test_saving_a_run_tutorial_leaves_the_file_as_committed(lab: Lab) -> None:
    shutil.copy(TUTORIAL, lab.notebook_dir / TUTORIAL.name)
    model = lab.api(f"/api/contents/{TUTORIAL.name}")
    ran = _as_if_run(model["content"])
    lab.api(f"/api/contents/{TUTORIAL.name}", "PUT", {"type": "notebook", "format": "json", "content": ran})
    assert (lab.notebook_dir / TUTORIAL.name).read_text() == TUTORIAL.read_text()


def test_a_copy_under_another_name_keeps_its_outputs(lab: Lab) -> None:
    ran = _as_if_run(json.loads(TUTORIAL.read_text()))
    lab.api("/api/contents/my_analysis.ipynb", "PUT", {"type": "notebook", "format": "json", "content": ran})
    saved = json.loads((lab.notebook_dir / "my_analysis.ipynb").read_text())
    code = [c for c in saved["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] and c["execution_count"] for c in code)
    assert "language_info" in saved["metadata"]


def test_the_save_hook_leaves_other_files_alone() -> None:
    model = {"type": "file", "format": "text", "content": "outputs stay"}
    strip_tutorial_outputs(model=model, path=TUTORIAL.name)
    assert model == {"type": "file", "format": "text", "content": "outputs stay"}
