"""End to end: ``fastiot-workbench`` serves JupyterLab, headless Chromium runs a notebook in it.

The workbench starts its own nats-server (on a free port) and the demo plant. The notebook shows a
SubjectBrowser over the plant, starts a service with ``%%service``, shows a LivePlot of one sensor and
a second browser over 10,000 subjects. The test clicks Run All Cells and then, as a person would:
picks a subject in the tree and waits for the diff of its last two messages to name the changed
field, waits for the plot's line to move, scrolls the big tree to its last row, sees the service
control say "running", and clicks the plot's "Copy as code", which inserts the plot's code as a new
cell below. The screenshot goes to tests/browser/artifacts/jupyterlab.png; with
FASTIOT_UPDATE_SCREENSHOT=1 it also replaces docs/screenshot.png (the README shows it), so an
ordinary test run leaves the work tree clean.

Chromium is Debian's (``/usr/bin/chromium``), driven by the playwright Python package; no browser is
downloaded.
"""

from __future__ import annotations

import json
import os
import queue
import re
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
from playwright.sync_api import Locator, Page, sync_playwright

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
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
SUBJECT = "v1.thing.press_1.temperature"
DEMO_RATE = 10  # values per second per sensor
MANY_SUBJECTS = 10_000
# The %%service cell runs last, after the clicks: with nest_asyncio (v1) a cell that runs the loop
# re-entrantly can break the kernel's handling of later messages ("cannot enter context").

NOTEBOOK_CELLS = [
    (
        "markdown",
        "## Live subjects of the demo plant\n"
        "Pick a subject for its headers, fields and the diff of its last two messages.",
    ),
    (
        "code",
        "%load_ext fastiot_widgets\n"
        "from datetime import timedelta\n"
        "from fastiot.core import FastIoTService, subscribe\n"
        "from fastiot.msg.thing import Thing\n"
        "from fastiot_widgets import LivePlot, SubjectBrowser\n"
        "\n"
        'browser = SubjectBrowser("v1.thing.>", height=260)\n'
        "browser",
    ),
    (
        "code",
        f'plot = LivePlot("{SUBJECT}", "value", window=timedelta(minutes=1), height="240px")\nplot',
    ),
    (
        "code",
        "from fastiot import workbench\n"
        "from fastiot.core.serialization import pack\n"
        "\n"
        'many = SubjectBrowser("many.>", height=200)\n'
        "await many.start()\n"
        "broker = await workbench.connection()\n"
        f"for i in range({MANY_SUBJECTS}):\n"
        '    await broker.publish_raw(f"many.n{i:05d}", pack({"value": i}))\n'
        "await broker.flush()\n"
        f"await many.index.wait_for({MANY_SUBJECTS}, timeout=60)\n"
        "many",
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
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
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
        if process.stdout is not None:
            process.stdout.close()
        # Nothing left behind: the broker, the demo plant, JupyterLab and its kernels are gone too.
        _gone, alive = psutil.wait_procs(started, timeout=STOP_TIMEOUT)
        for proc in alive:
            proc.kill()
        assert not alive, f"left running after SIGTERM: {[_describe(p) for p in alive]}"
    assert process.returncode == 0, "".join(lines[-50:])


def _run_menu(page: Page, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text=item).first.click()


def _wait_for_idle_kernel(page: Page) -> None:
    """Wait until the notebook is attached to its kernel and the kernel is idle.

    The status bar says "Python 3 (ipykernel) | Idle", or "Python 3 | Idle": as the installed
    kernelspec names itself.
    """
    page.get_by_text(re.compile(r"^Python 3.* \| Idle$")).first.wait_for()


def _service_cell(page: Page) -> Locator:
    return page.locator(".jp-NotebookPanel .jp-Cell", has_text="%%service").first


def _tree_row(page: Page, tree: int, path: str) -> Locator:
    """The row of ``path`` in the ``tree``-th SubjectBrowser tree of the page (rows exist only in view)."""
    return page.locator(".fastiot-subject-tree").nth(tree).locator(f'.fst-row[data-path="{path}"]')


def _line_path(page: Page) -> str:
    """The SVG path the LivePlot's line is drawn with ('' before it has points)."""
    return page.locator(".fastiot-live-plot path.line").first.get_attribute("d") or ""


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


def test_subject_browser_plot_diff_and_service_cell_in_jupyterlab(workbench: Workbench) -> None:
    started = time.monotonic()
    ARTIFACTS.mkdir(exist_ok=True)
    _start_kernel(workbench.url, NOTEBOOK)
    url = workbench.url.replace("/lab?", f"/lab/tree/{NOTEBOOK}?")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = chromium.new_page(viewport=VIEWPORT)
        page.set_default_timeout(UI_TIMEOUT_MS)
        console: list[str] = []
        page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
        try:
            page.goto(url)
            page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for()
            # The file browser is not part of the picture: fold the left sidebar.
            page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").first.click()
            _wait_for_idle_kernel(page)
            # Every cell but the %%service one first (see MANY_SUBJECTS), then the clicks.
            _service_cell(page).locator(".jp-InputPrompt").click()
            _run_menu(page, "Run All Above Selected Cell")

            # The tree shows the demo plant's subjects, live, with counts, rates and last values.
            row = _tree_row(page, 0, SUBJECT)
            row.wait_for(state="attached")
            # The last cell (the big tree) has run: the kernel is idle again, clicks are handled at once.
            _tree_row(page, 1, "many.n00000").wait_for(state="attached")
            # Rows move down as new subjects appear; the slowest ones (machine states) come last.
            for machine in ("oven_1", "press_1"):
                _tree_row(page, 0, f"v1.thing.{machine}.state").wait_for(state="attached")
            assert "oven_1" in page.locator(".fastiot-subject-tree").first.inner_text()

            # Picking a subject (a real click, sent to the kernel) shows the diff of its last two
            # messages, naming the field that changed.
            row.click()
            diff = page.locator(".fastiot-subject-detail table.fsd-diff")
            diff.locator("td", has_text="value").first.wait_for(state="attached")
            page.locator(".fastiot-subject-detail h4", has_text=SUBJECT).wait_for(state="attached")

            # The LivePlot draws points that move: its line is redrawn as values arrive.
            page.locator(".fastiot-live-plot path.line").first.wait_for(state="attached")
            page.wait_for_function(
                """() => {
                    const d = document.querySelector('.fastiot-live-plot path.line')?.getAttribute('d');
                    return d && d.split(/[ML]/).length > 5;
                }"""
            )
            page.wait_for_function(
                "old => document.querySelector('.fastiot-live-plot path.line').getAttribute('d') != old",
                arg=_line_path(page),
            )

            # The tree of 10,000 subjects scrolls to its last row.
            last = f"many.n{MANY_SUBJECTS - 1:05d}"
            scroller = page.locator(".fastiot-subject-tree").nth(1).locator(".fst-scroller")
            _tree_row(page, 1, "many.n00000").wait_for(state="attached")
            scroller.evaluate("element => { element.scrollTop = element.scrollHeight; }")
            _tree_row(page, 1, last).wait_for(state="attached")
            assert _tree_row(page, 1, last).locator(".fst-token").inner_text() == last.split(".")[-1]

            # Copy as code inserts the plot's code as a new cell right below the plot's cell.
            cells = page.locator(".jp-NotebookPanel .jp-Cell")
            count = cells.count()
            copy = page.locator(".fastiot-live-plot-view button", has_text="Copy as code").first
            copy.scroll_into_view_if_needed()
            copy.click()
            page.wait_for_function(
                "n => document.querySelectorAll('.jp-NotebookPanel .jp-Cell').length > n", arg=count
            )
            inserted = page.locator(".jp-NotebookPanel .jp-Cell", has_text='fields="value"').first
            inserted.wait_for(state="attached")
            texts = [cells.nth(i).locator(".jp-InputArea").inner_text() for i in range(cells.count())]
            plot_cell = next(i for i, text in enumerate(texts) if 'height="240px"' in text)
            # `plot` is the notebook's: the inserted cell takes a free name instead of rebinding it.
            assert 'plot_2 = LivePlot("v1.thing.press_1.temperature", fields="value"' in texts[plot_cell + 1]

            # The %%service cell's control reaches "running". (Cells out of view are not rendered
            # by JupyterLab, hence "attached" rather than "visible".)
            _service_cell(page).locator(".jp-InputPrompt").click()
            _run_menu(page, "Run Selected Cell")
            light = page.locator(".widget-html-content", has_text="PressWatch")  # the status light
            light.get_by_text("running", exact=True).wait_for(state="attached")

            # The picture: the browser with the diff, the plot below it.
            outputs = page.locator(".jp-Cell").nth(1).locator(".jp-Cell-outputWrapper")
            outputs.evaluate("element => element.scrollIntoView({block: 'start'})")
            diff.first.wait_for()
            screenshot = ARTIFACTS / "jupyterlab.png"
            page.screenshot(path=str(screenshot))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "failure.png"))  # what the page showed when it failed
            (ARTIFACTS / "failure.html").write_text(page.content())
            (ARTIFACTS / "failure-workbench.log").write_text("".join(workbench.lines))
            (ARTIFACTS / "failure-console.log").write_text("\n".join(console))
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
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.cells = [nbformat.v4.new_code_cell(GRID_CELL)]
    nbformat.write(nb, workbench.notebook_dir / GRID_NOTEBOOK)
    _start_kernel(workbench.url, GRID_NOTEBOOK)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = chromium.new_page(viewport=VIEWPORT)
        page.set_default_timeout(UI_TIMEOUT_MS)
        try:
            page.goto(workbench.url.replace("/lab?", f"/lab/tree/{GRID_NOTEBOOK}?"))
            _wait_for_idle_kernel(page)
            _run_menu(page, "Run All Cells")
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
