"""End to end: the Timeline widget in JupyterLab in headless Chromium; the SubjectBrowser follows its cursor.

A notebook records 40 messages on four subjects, shows a Timeline of them and a SubjectBrowser made from
it. The test clicks at the right end of the time axis, as a person would, and waits for the cursor line to
move there and for the browser's rows to show the last values (36 to 39) instead of those at the start.
"""

from __future__ import annotations

import re

import nbformat
from playwright.sync_api import sync_playwright

from tests.browser.test_jupyterlab import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    KERNELSPEC,
    UI_TIMEOUT_MS,
    VIEWPORT,
    Workbench,
    _run_menu,
    _start_kernel,
    _wait_for_idle_kernel,
    require_chromium,
    workbench,
)

__all__ = ["require_chromium", "workbench"]  # the fixtures, imported to be used here

NOTEBOOK = "timeline.ipynb"
CELLS = [
    "import asyncio\n"
    "from fastiot import workbench\n"
    "from fastiot.core.serialization import pack\n"
    "from fastiot.history import Recording, Timeline as RecordingTimeline\n"
    "from fastiot_widgets import Timeline\n"
    "\n"
    "broker = await workbench.connection()\n"
    'rec = await Recording.start("timeline_browser", "tl.>", connection=broker)\n'
    "for i in range(40):\n"
    '    await broker.publish_raw(f"tl.s{i % 4}", pack({"value": i}))\n'
    "    await broker.flush()\n"
    "    await asyncio.sleep(0.02)  # a recording that takes a second\n"
    "for _ in range(200):  # a recording copied from the rolling history gets them a moment later\n"
    "    if (await rec.info()).messages >= 40:\n"
    "        break\n"
    "    await asyncio.sleep(0.1)\n"
    "view = Timeline(await RecordingTimeline.open(rec))\n"
    "await view.start()\n"
    "view",
    "browser = view.subject_browser(height=200)\nawait view.settled()\nbrowser",
]


def _value(page: object, subject: str) -> str:
    row = page.locator(f'.fastiot-subject-tree .fst-row[data-path="{subject}"] .fst-value')  # type: ignore[attr-defined]
    return row.first.inner_text().strip()


def test_the_subject_browser_follows_the_timeline_cursor_in_jupyterlab(workbench: Workbench) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    nbformat.write(nb, workbench.notebook_dir / NOTEBOOK)
    _start_kernel(workbench.url, NOTEBOOK)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = chromium.new_page(viewport=VIEWPORT)
        page.set_default_timeout(UI_TIMEOUT_MS)
        try:
            page.goto(workbench.url.replace("/lab?", f"/lab/tree/{NOTEBOOK}?"))
            _wait_for_idle_kernel(page)
            _run_menu(page, "Run All Cells")
            axis = page.locator(".fastiot-timeline-axis > div").first
            axis.wait_for()
            # At the start only the first message is there: tl.s0 = 0.
            page.locator('.fastiot-subject-tree .fst-row[data-path="tl.s0"]').first.wait_for()
            assert re.search(r"\b0\b", _value(page, "tl.s0")), _value(page, "tl.s0")
            start_label = page.locator(".fastiot-timeline-cursor-label").first.inner_text()

            page.locator(".fastiot-subject-tree").first.scroll_into_view_if_needed()
            axis.scroll_into_view_if_needed()
            box = axis.bounding_box()
            assert box is not None
            axis.click(position={"x": box["width"] - 2, "y": 10})  # the right end: the last message
            page.wait_for_function(
                """() => {
                    const value = (s) => {
                        const row = document.querySelector(
                            `.fastiot-subject-tree .fst-row[data-path="${s}"] .fst-value`);
                        return row ? row.textContent.trim() : null;
                    };
                    return /\\b36\\b/.test(value("tl.s0") || "") && /\\b39\\b/.test(value("tl.s3") || "");
                }"""
            )
            assert page.locator(".fastiot-timeline-cursor-label").first.inner_text() != start_label
            cursor_left = page.locator(".fastiot-timeline-cursor").first.evaluate("e => e.style.left")
            assert "100%" in cursor_left or "99" in cursor_left, cursor_left
            page.screenshot(path=str(ARTIFACTS / "timeline.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "timeline-failure.png"))
            (ARTIFACTS / "timeline-failure.html").write_text(page.content())
            (ARTIFACTS / "timeline-failure-workbench.log").write_text("".join(workbench.lines))
            raise
        finally:
            chromium.close()
