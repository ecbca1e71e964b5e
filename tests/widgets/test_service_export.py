"""%service_export and the control's Export button: a %%service cell's service as a module and its test."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastiot_widgets import ServiceControl
from fastiot_widgets.errors import ServiceCellError
from tests.kernel_util import CellResult, Kernel
from tests.services import FirstMessage
from tests.services_export.generated import run_generated_test

MODELS = """
from fastiot import workbench
from fastiot.core import FastIoTRequest, FastIoTResponse, FastIoTService, reply
import json

class ExportAnswer(FastIoTResponse):
    text: str

class ExportAsk(FastIoTRequest):
    _reply_cls = ExportAnswer
    text: str
"""

SERVICE = """%%service
import asyncio

class ExportEcho(FastIoTService):
    @reply(subject=ExportAsk.get_reply_subject())
    async def echo(self, request: ExportAsk) -> ExportAnswer:
        return ExportAnswer(text="echo:" + request.text)
"""


def all_text(out: CellResult) -> str:
    return out.shown + "\n".join(out.errors)


def test_service_export_writes_a_module_and_a_test_that_passes(kernel: Kernel, tmp_path: Path) -> None:
    kernel.run_ok("%load_ext fastiot_widgets")
    kernel.run_ok(MODELS)
    kernel.run_ok("broker = await workbench.connection()")
    kernel.run_ok(SERVICE)
    out = kernel.run_ok("%service_export out/export_echo.py")  # the newest %%service cell's service
    module, test = tmp_path / "out" / "export_echo.py", tmp_path / "out" / "test_export_echo.py"
    assert "wrote out/export_echo.py and its test out/test_export_echo.py" in out.text
    source = module.read_text()
    assert "class ExportAsk(FastIoTRequest):" in source and "import asyncio" in source
    assert "import json" not in source and "broker" not in source
    assert 'if __name__ == "__main__":' in source
    # Exporting again is refused, unless forced.
    assert "exists; pass overwrite=True (or --force)" in all_text(
        kernel.run("%service_export ExportEcho out/export_echo.py")
    )
    kernel.run_ok("%service_export ExportEcho out/export_echo.py --force")

    # The Export button of the cell's control writes into the exports folder, and keeps a test there.
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "test_export_echo.py").write_text("# extended by the user\n")
    out = kernel.run_ok(
        "import ipywidgets\n"
        "from fastiot_widgets import ServiceControl\n"
        "[control] = [w for w in ipywidgets.Widget.widgets.values() if isinstance(w, ServiceControl)"
        " and w.runner.name == 'ExportEcho' and w.runner.is_running]\n"
        "control.export_button.click()\n"
        "await control.wait_idle()\n"
        "print(control.export_view.value)"
    )
    exports = tmp_path / "exports"
    assert (
        f"wrote {exports / 'export_echo.py'} and kept its test {exports / 'test_export_echo.py'}" in out.text
    )
    assert "class ExportEcho(" in (tmp_path / "exports" / "export_echo.py").read_text()
    assert (tmp_path / "exports" / "test_export_echo.py").read_text() == "# extended by the user\n"

    result = run_generated_test(test, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_service_export_names_what_it_knows(kernel: Kernel) -> None:
    kernel.run_ok("%load_ext fastiot_widgets")
    out = kernel.run("%service_export x.py")
    assert "run one first" in all_text(out)
    kernel.run_ok(MODELS)
    kernel.run_ok(SERVICE)
    out = kernel.run("%service_export Nope x.py")
    assert "no %%service cell defined Nope (services of %%service cells: ExportEcho)" in all_text(out)


async def test_the_export_button_shows_only_with_an_exporter_and_shows_its_result() -> None:
    control = ServiceControl(FirstMessage)
    assert control.export_button.layout.display == "none"
    with pytest.raises(ServiceCellError, match="no cell to export"):
        await control.export()

    async def exporter() -> str:
        return "wrote first_message.py and its test test_first_message.py"

    control.set_exporter(exporter)
    assert control.export_button.layout.display is None
    control.export_button.click()
    await control.wait_idle()
    assert "wrote first_message.py" in control.export_view.value

    async def failing() -> str:
        raise ValueError("disk full")

    control.set_exporter(failing)
    control.export_button.click()
    await control.wait_idle()
    assert "export failed: disk full" in control.export_view.value


def test_a_service_cell_of_the_history_counts_as_its_body() -> None:
    from types import SimpleNamespace

    from fastiot_widgets.magics import _history

    transformed = "get_ipython().run_cell_magic('service', 'Other', 'def helper():\\n    return 1\\n')\n"
    shell = SimpleNamespace(
        user_ns={"In": ["", "x = 1\n", transformed, "get_ipython().run_line_magic('services', '')"]}
    )
    assert _history(shell) == [
        "x = 1\n",
        "def helper():\n    return 1\n",
        "get_ipython().run_line_magic('services', '')",
    ]
