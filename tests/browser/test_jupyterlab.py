"""End to end: ``fastiot-workbench`` serves JupyterLab, headless Chromium runs a notebook in it.

The workbench starts its own nats-server (on a free port) and the demo plant; the notebook shows a
SubjectBrowser over the plant and starts a service with ``%%service``. The test clicks Run All Cells,
picks a subject in the browser's tree, and waits until the tree shows the plant's subjects, the
selected subject's sparkline is drawn and the service control says "running". The screenshot goes to
tests/browser/artifacts/jupyterlab.png; with FASTIOT_UPDATE_SCREENSHOT=1 it also replaces
docs/screenshot.png (the README shows it), so an ordinary test run leaves the work tree clean.

Chromium is Debian's (``/usr/bin/chromium``), driven by the playwright Python package; no browser is
downloaded.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import psutil
import pytest
from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE / "artifacts"
DOCS_SCREENSHOT = HERE.parents[1] / "docs" / "screenshot.png"
VIEWPORT = {"width": 1400, "height": 900}
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
UI_TIMEOUT_MS = 45_000
NOTEBOOK = "workbench.ipynb"
SUBJECT = "v1.thing.press_1.temperature"
DEMO_RATE = 10  # values per second per sensor
SPARKLINE_VALUES = 40  # the picture waits for a sparkline this long (the index keeps 50)

NOTEBOOK_CELLS = [
    (
        "markdown",
        "## Live subjects of the demo plant\n"
        "Pick a subject for its last messages and sparkline; the service below runs in this kernel.",
    ),
    (
        "code",
        "%load_ext fastiot_widgets\n"
        "from fastiot.core import FastIoTService, subscribe\n"
        "from fastiot.msg.thing import Thing\n"
        "from fastiot_widgets import SubjectBrowser\n"
        "\n"
        'browser = SubjectBrowser("v1.thing.>")\n'
        "browser",
    ),
    (
        "code",
        "%%service\n"
        "class PressWatch(FastIoTService):\n"
        '    """Keeps the hottest press_1 temperature seen."""\n'
        '    hottest = float("-inf")\n'
        "\n"
        '    @subscribe(subject=Thing.get_subject("press_1.temperature"))\n'
        "    async def on_temperature(self, thing: Thing) -> None:\n"
        "        self.hottest = max(self.hottest, thing.value)",
    ),
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Workbench:
    """A running ``fastiot-workbench``, the JupyterLab URL it printed, and everything it printed."""

    process: subprocess.Popen[str]
    url: str
    notebook_dir: Path
    lines: list[str] = field(default_factory=list)


def _describe(process: psutil.Process) -> str:
    try:
        return f"{process.pid} {' '.join(process.cmdline())}"
    except psutil.Error:
        return str(process.pid)


def _write_notebook(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_markdown_cell(source) if kind == "markdown" else nbformat.v4.new_code_cell(source)
        for kind, source in NOTEBOOK_CELLS
    ]
    path = folder / NOTEBOOK
    nbformat.write(nb, path)
    return path


def _lab_settings(folder: Path) -> Path:
    """JupyterLab user settings of this test alone: no news or update pop-ups over the screenshot."""
    settings = folder / "settings"
    path = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    return settings


def _start_kernel(lab_url: str, notebook: str) -> None:
    """Start the notebook's kernel session through the server's REST API.

    JupyterLab then attaches to it when it opens the notebook, instead of choosing a kernel itself
    (which sometimes asks with a dialog, or starts one kernel and swaps it for another).
    """
    parts = urllib.parse.urlsplit(lab_url)
    token = urllib.parse.parse_qs(parts.query)["token"][0]
    request = urllib.request.Request(
        f"{parts.scheme}://{parts.netloc}/api/sessions",
        data=json.dumps(
            {"path": notebook, "type": "notebook", "name": "", "kernel": {"name": "python3"}}
        ).encode(),
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=STARTUP_TIMEOUT) as response:
        assert response.status == 201, response.read()


@pytest.fixture
def workbench(tmp_path: Path) -> Iterator[Workbench]:
    notebook_dir = tmp_path / "notebooks"
    notebook_dir.mkdir()
    _write_notebook(notebook_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTIOT_NATS_")}
    env.update(
        JUPYTERLAB_SETTINGS_DIR=str(_lab_settings(tmp_path)),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        PYTHONUNBUFFERED="1",
    )
    command = shutil.which("fastiot-workbench", path=str(Path(sys.executable).parent)) or "fastiot-workbench"
    token = "fastiot-browser-test"
    process = subprocess.Popen(
        [
            command,
            "--no-browser",
            "--port",
            str(_free_port()),
            "--broker-port",  # a broker of its own even if something answers on localhost:4222
            str(_free_port()),
            "--notebook-dir",
            str(notebook_dir),
            "--token",
            token,
            "--demo-rate",
            str(DEMO_RATE),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    ready: queue.Queue[str] = queue.Queue()

    def drain() -> None:  # keeps the pipe from filling up, and spots the URL line
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "JupyterLab at http" in line:
                ready.put(line.split("JupyterLab at ", 1)[1].strip())
        ready.put("")

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    started: list[psutil.Process] = []
    try:
        try:
            url = ready.get(timeout=STARTUP_TIMEOUT)
        except queue.Empty:
            url = ""
        assert url, f"fastiot-workbench did not start JupyterLab:\n{''.join(lines)}"
        lab = Workbench(process, url, notebook_dir, lines)
        yield lab
    finally:
        if process.poll() is None:
            started = psutil.Process(process.pid).children(recursive=True)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)
                pytest.fail(f"fastiot-workbench ignored SIGTERM:\n{''.join(lines[-50:])}")
        reader.join(STOP_TIMEOUT)
        # Nothing left behind: the broker, the demo plant, JupyterLab and its kernels are gone too.
        _gone, alive = psutil.wait_procs(started, timeout=STOP_TIMEOUT)
        for proc in alive:
            proc.kill()
        assert not alive, f"left running after SIGTERM: {[_describe(p) for p in alive]}"
    assert process.returncode == 0, "".join(lines[-50:])


def _run_all_cells(page: Page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def _select_subject(page: Page, subject: str) -> None:
    """Click the subject's row in the SubjectBrowser tree (its rows are indented tokens)."""
    tree = page.locator(".fastiot-subject-tree select")
    index = tree.evaluate(
        """(select, tokens) => {
            const rows = Array.from(select.options).map(o => o.textContent.replace(/\\u00a0/g, ' ').trim());
            let at = -1;
            for (const token of tokens) {
                at = rows.findIndex((row, i) => i > at && row.split(/\\s+/)[1] === token);
                if (at < 0) return -1;
            }
            return at;
        }""",
        subject.split("."),
    )
    assert index >= 0, f"{subject} is not in the tree: {tree.inner_text()}"
    tree.select_option(index=index)


@pytest.fixture(autouse=True)
def require_chromium() -> None:
    # A platform limit, not a feature: the README's test command on a machine without Debian's
    # chromium skips this one test with this reason. CI (which installs chromium) never skips it.
    if os.path.exists(CHROMIUM):
        return
    reason = f"Debian's chromium is not installed at {CHROMIUM}: apt-get install -y chromium (.ci/run does)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def test_subject_browser_and_service_cell_in_jupyterlab(workbench: Workbench) -> None:
    started = time.monotonic()
    ARTIFACTS.mkdir(exist_ok=True)
    _start_kernel(workbench.url, NOTEBOOK)
    url = workbench.url.replace("/lab?", f"/lab/tree/{NOTEBOOK}?")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = chromium.new_page(viewport=VIEWPORT)
        page.set_default_timeout(UI_TIMEOUT_MS)
        try:
            page.goto(url)
            page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for()
            # The file browser is not part of the picture: fold the left sidebar.
            page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").first.click()
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for()  # attached to the kernel
            _run_all_cells(page)

            # The tree shows the demo plant's subjects, live.
            tree = page.locator(".fastiot-subject-tree select")
            tree.locator("option", has_text="press_1").first.wait_for(state="attached")
            tree.locator("option", has_text="temperature").first.wait_for(state="attached")
            assert "oven_1" in tree.inner_text()

            # Picking a subject (a real click in the tree, sent to the kernel) draws its sparkline.
            _select_subject(page, SUBJECT)
            page.locator("svg.fastiot-sparkline polyline").first.wait_for(state="attached")
            page.get_by_text(SUBJECT, exact=True).first.wait_for(state="attached")

            # The %%service cell's control reaches "running". (Cells out of view are not rendered
            # by JupyterLab, hence "attached" rather than "visible".)
            light = page.locator(".widget-html-content", has_text="PressWatch")  # the status light
            light.get_by_text("running", exact=True).wait_for(state="attached")
            page.locator("td > code", has_text="on_temperature").wait_for(state="attached")  # its counter

            # The picture: the browser's output at the top, the running service control below it.
            outputs = page.locator(".jp-Cell").nth(1).locator(".jp-Cell-outputWrapper")
            outputs.evaluate("element => element.scrollIntoView({block: 'start'})")
            light.get_by_text("running", exact=True).wait_for()
            page.locator("svg.fastiot-sparkline polyline").first.wait_for()
            # A sparkline with some history to it (the view re-renders as values arrive).
            page.wait_for_function(
                """least => {
                    const found = document.body.innerText.match(/\\((\\d+) values\\)/);
                    return found !== null && Number(found[1]) >= least;
                }""",
                arg=SPARKLINE_VALUES,
            )
            screenshot = ARTIFACTS / "jupyterlab.png"
            page.screenshot(path=str(screenshot))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "failure.png"))  # what the page showed when it failed
            (ARTIFACTS / "failure.html").write_text(page.content())
            (ARTIFACTS / "failure-workbench.log").write_text("".join(workbench.lines))
            raise
        finally:
            chromium.close()
    if os.environ.get("FASTIOT_UPDATE_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(screenshot, DOCS_SCREENSHOT)
    print(f"\nJupyterLab end to end in {time.monotonic() - started:.1f} s; screenshot {screenshot}")


GRID_NOTEBOOK = "grid.ipynb"
GRID_CELL = (
    "from fastiot_widgets import MessageTable\n"
    "\n"
    'table = MessageTable("v1.thing.*.temperature", max_rows=50_000)\n'
    'table.columns = ["received_at", "machine", "name", "value"]\n'
    "table"
)


def _grid_column(page: Page, name: str) -> list[str]:
    """The texts of column ``name`` in the rows the grid draws, top to bottom."""
    return page.locator(".fastiot-grid").first.evaluate(
        """(grid, name) => {
            const names = Array.from(grid.querySelectorAll(".fg-label .fg-name")).map(e => e.textContent);
            const at = names.indexOf(name);
            return Array.from(grid.querySelectorAll(".fg-body .fg-data"))
                .filter(row => !row.classList.contains("fg-loading"))
                .map(row => row.children[at].textContent);
        }""",
        name,
    )


def test_message_table_grid_sorts_and_filters_in_jupyterlab(workbench: Workbench) -> None:
    """A MessageTable over the demo plant: clicking a header sorts by it, a filter box filters."""
    ARTIFACTS.mkdir(exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(GRID_CELL)]
    nbformat.write(nb, workbench.notebook_dir / GRID_NOTEBOOK)
    _start_kernel(workbench.url, GRID_NOTEBOOK)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = chromium.new_page(viewport=VIEWPORT)
        page.set_default_timeout(UI_TIMEOUT_MS)
        try:
            page.goto(workbench.url.replace("/lab?", f"/lab/tree/{GRID_NOTEBOOK}?"))
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for()
            _run_all_cells(page)
            grid = page.locator(".fastiot-grid").first
            grid.locator(".fg-data:not(.fg-loading)").nth(5).wait_for()  # the demo's rows arrive

            # Click "value" twice: ascending, then descending; the kernel sorts, the view shows the top.
            header = grid.locator(".fg-label .fg-name", has_text="value")
            header.click()
            grid.locator(".fg-foot", has_text="sorted by value").wait_for()
            header.click()
            grid.locator(".fg-foot", has_text="sorted by value (descending)").wait_for()
            page.wait_for_function(
                """() => document.querySelectorAll(
                    ".fastiot-grid .fg-body .fg-data:not(.fg-loading)").length >= 5"""
            )
            values = [float(v) for v in _grid_column(page, "value") if v]
            assert len(values) >= 5 and values == sorted(values, reverse=True), values
            assert grid.locator(".fg-label.fg-sorted .fg-sort").inner_text().strip() == "\u25bc"

            # A filter box under a header: only press_1's rows stay.
            grid.locator(".fg-filters input[data-column='machine']").fill("press_1")
            page.wait_for_function(
                """() => {
                    const foot = document.querySelector(".fastiot-grid .fg-foot").textContent;
                    return / of [\\d,]+ rows/.test(foot);
                }"""
            )
            page.wait_for_function(
                """() => {
                    const grid = document.querySelector(".fastiot-grid");
                    const labels = Array.from(grid.querySelectorAll(".fg-label .fg-name"));
                    const at = labels.map(e => e.textContent).indexOf("machine");
                    const rows = Array.from(grid.querySelectorAll(".fg-body .fg-data:not(.fg-loading)"));
                    return rows.length > 0 && rows.every(row => row.children[at].textContent === "press_1");
                }"""
            )
            values = [float(v) for v in _grid_column(page, "value") if v]
            assert values == sorted(values, reverse=True), "still sorted while filtered"
            grid.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "grid.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "grid-failure.png"))
            (ARTIFACTS / "grid-failure.html").write_text(page.content())
            (ARTIFACTS / "grid-failure-workbench.log").write_text("".join(workbench.lines))
            raise
        finally:
            chromium.close()
