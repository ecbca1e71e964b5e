"""The views read well from 1280 px wide, with JupyterLab's file browser open: nothing cut, nothing wrapped.

A notebook shows a SubjectBrowser (a subject selected), a MessageTable, a LivePlot of two lines, a
Publisher and a RecordingBrowser over the demo plant. Headless Chromium shows it at 1280 and 1920 px
wide with the left sidebar (the file browser) open; at each width the test screenshots every view
(into the test's tmp dir) and checks, in the page, that no button label is truncated (a button whose
text needs more room than it has: ``scrollWidth > clientWidth``), that the SubjectBrowser's toolbar
stays one line, that the tree's last-value column has room for a value and that the detail pane
does not need a sideways scroll. Last, the mouse wheel
over the LivePlot scrolls the notebook (it zooms the chart only with the Zoom toggle on).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.browser.test_jupyterlab import (
    CHROMIUM,
    CHROMIUM_ARGS,
    KERNELSPEC,
    UI_TIMEOUT_MS,
    Workbench,
    _run_menu,
    _start_kernel,
    _wait_for_idle_kernel,
    require_chromium,
    workbench,
)

__all__ = ["require_chromium", "workbench"]  # the fixtures, imported to be used here

NOTEBOOK = "layout.ipynb"
WIDTHS = (1280, 1920)
HEIGHT = 900
RECORDING = "layout_demo"
# The narrowest the tree's last-value column may get: room for about 12 characters ('{"machine": ').
MIN_VALUE_COLUMN_PX = 90

CELLS = [
    "%load_ext fastiot_widgets\n"
    "from datetime import timedelta\n"
    "from fastiot.history import Recording\n"
    "from fastiot_widgets import LivePlot, MessageTable, Publisher, RecordingBrowser, SubjectBrowser\n"
    "\n"
    'browser = SubjectBrowser("v1.thing.>", height=220)\n'
    "await browser.start()\n"
    "browser",
    'table = MessageTable("v1.thing.*.temperature", max_rows=1_000)\ntable',
    "plot = LivePlot(\n"
    '    ["v1.thing.press_1.temperature", "v1.thing.oven_1.temperature"], "value",\n'
    '    window=timedelta(minutes=1), height="240px",\n'
    ")\n"
    "plot",
    'Publisher("v1.thing.press_1.temperature")',
    f'recording = await Recording.start("{RECORDING}", "v1.thing.>")\n'
    f'recordings = RecordingBrowser("{RECORDING}")\n'
    "recordings",
]
VIEWS = {
    "subject_browser": ".fastiot-subject-tree",
    "message_table": ".fastiot-grid",
    "live_plot": ".fastiot-live-plot-view",
    "publisher": "button:has-text('Publish')",
    "recording_browser": "button:has-text('Load into table')",
}

# Buttons in the notebook's outputs whose label does not fit: the text and how much is cut.
_TRUNCATED_BUTTONS = """() => Array.from(document.querySelectorAll('.jp-OutputArea button'))
    .filter(b => b.offsetParent !== null && b.scrollWidth > b.clientWidth + 1)
    .map(b => `${b.textContent.trim() || b.title} (${b.scrollWidth} > ${b.clientWidth} px)`)"""

# The SubjectBrowser's toolbar (pattern ... Fold all): the tops of its children, one per line used.
_TOOLBAR_LINES = """() => {
    const fold = Array.from(document.querySelectorAll('.jp-OutputArea button'))
        .find(b => b.textContent.trim() === 'Fold all');
    const tops = new Set(Array.from(fold.parentElement.children)
        .filter(e => e.offsetParent !== null).map(e => Math.round(e.getBoundingClientRect().top)));
    return tops.size;
}"""

_VALUE_COLUMN = """() => {
    const cells = Array.from(document.querySelectorAll('.fastiot-subject-tree .fst-row .fst-value'));
    return Math.min(...cells.map(c => c.getBoundingClientRect().width));
}"""


# The notebook's scroll position: the first scrollable ancestor of the chart.
_NOTEBOOK_SCROLL = """() => {
    let e = document.querySelector('.fastiot-live-plot');
    while (e && !(e.scrollHeight > e.clientHeight && /auto|scroll/.test(getComputedStyle(e).overflowY))) {
        e = e.parentElement;
    }
    return e ? e.scrollTop : -1;
}"""


def _wheel_over_the_chart_scrolls_the_notebook(page: Page) -> bool:
    """Turn the mouse wheel over the middle of the LivePlot: does the notebook scroll?"""
    chart = page.locator(".fastiot-live-plot").first
    chart.evaluate("e => e.scrollIntoView({block: 'center'})")
    box = chart.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    before = page.evaluate(_NOTEBOOK_SCROLL)
    page.mouse.wheel(0, 300)
    try:
        page.wait_for_function(f"before => ({_NOTEBOOK_SCROLL})() !== before", arg=before, timeout=5_000)
    except PlaywrightTimeoutError:
        return False
    return True


def _write_notebook(folder: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    nbformat.write(nb, folder / NOTEBOOK)


def _check_width(page: Page, width: int, shots: Path) -> dict[str, Any]:
    """Screenshot every view at ``width`` and measure what must fit."""
    page.set_viewport_size({"width": width, "height": HEIGHT})
    # JupyterLab lays the panels out again after a resize; no event says when it is done.
    page.wait_for_timeout(500)
    for name, selector in VIEWS.items():
        view = page.locator(f".jp-OutputArea {selector}").first
        view.scroll_into_view_if_needed()
        view.evaluate("e => e.closest('.jp-OutputArea').scrollIntoView({block: 'start'})")
        page.screenshot(path=str(shots / f"{name}-{width}.png"))
    return {
        "truncated": page.evaluate(_TRUNCATED_BUTTONS),
        "toolbar_lines": page.evaluate(_TOOLBAR_LINES),
        "value_column": page.evaluate(_VALUE_COLUMN),
        "detail_overflow": page.locator(".fastiot-subject-detail").first.evaluate(
            "e => e.scrollWidth - e.clientWidth"
        ),
    }


def test_the_views_read_well_from_1280_px_with_the_file_browser_open(
    workbench: Workbench, tmp_path: Path
) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    _write_notebook(workbench.notebook_dir)
    _start_kernel(workbench.url, NOTEBOOK)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = chromium.new_page(viewport={"width": WIDTHS[0], "height": HEIGHT})
        page.set_default_timeout(UI_TIMEOUT_MS)
        try:
            page.goto(workbench.url.replace("/lab?", f"/lab/tree/{NOTEBOOK}?"))
            page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for()
            # As a person has it: the file browser open beside the notebook.
            if not page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").count():
                page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab").first.click()
            page.locator(".jp-FileBrowser").first.wait_for()
            _wait_for_idle_kernel(page)
            _run_menu(page, "Run All Cells")
            page.locator(".jp-OutputArea button:has-text('Load into table')").first.wait_for(state="attached")
            # Values in the tree and a selected subject's detail pane, as after a first click.
            page.locator(".fastiot-subject-tree .fst-row .fst-value").first.wait_for(state="attached")
            page.locator(".fastiot-subject-tree .fst-row", has_text="state").first.click()
            page.locator(".fastiot-subject-detail").first.wait_for(state="attached")
            page.locator(".fastiot-live-plot path.line").nth(1).wait_for(state="attached")
            results = {width: _check_width(page, width, shots) for width in WIDTHS}
            wheel_scrolls = _wheel_over_the_chart_scrolls_the_notebook(page)
        except Exception:
            page.screenshot(path=str(shots / "failure.png"))
            (shots / "failure-workbench.log").write_text("".join(workbench.lines))
            raise
        finally:
            chromium.close()
    print(f"\nscreenshots in {shots}: {results}")
    for width, found in results.items():
        assert found["truncated"] == [], f"button labels cut at {width} px: {found['truncated']}"
        assert found["toolbar_lines"] == 1, f"the SubjectBrowser's toolbar wraps at {width} px"
        assert found["value_column"] >= MIN_VALUE_COLUMN_PX, f"the last-value column at {width} px: {found}"
        assert found["detail_overflow"] <= 1, f"the detail pane scrolls sideways at {width} px: {found}"
    assert wheel_scrolls, "the mouse wheel over a LivePlot must scroll the notebook (zoom only with Zoom on)"
