"""%%service, %service_stop and %services in a real ipykernel, driven cell by cell through nbclient."""

from __future__ import annotations

import nbformat

from tests.kernel_util import Kernel

MODELS = """
from fastiot import workbench
from fastiot.core import FastIoTRequest, FastIoTResponse, FastIoTService, reply

class Answer(FastIoTResponse):
    text: str

class Ask(FastIoTRequest):
    _reply_cls = Answer
    text: str
"""

SERVICE = """%%service
class EchoService(FastIoTService):
    @reply(subject=Ask.get_reply_subject())
    async def echo(self, request: Ask) -> Answer:
        self._logger.info("asked %s", request.text)
        return Answer(text="{version}:" + request.text)
"""

ASK = """
broker = await workbench.connection()
answer = await broker.request(Ask.get_reply_subject(), Ask(text="x"), timeout=5)
print("reply", answer.text)
print("running", sorted((s.name, str(s.status)) for s in workbench.registered()))
"""


def test_service_cell_starts_hot_reloads_lists_and_stops(kernel: Kernel) -> None:
    kernel.run_ok("%load_ext fastiot_widgets")
    kernel.run_ok(MODELS)

    service_cell = nbformat.v4.new_code_cell()
    kernel.client.nb.cells.append(service_cell)
    out = kernel.run_ok(SERVICE.format(version="v1"), service_cell)
    assert "ServiceControl(EchoService, running)" in out.text
    assert "reply v1:x" in kernel.run_ok(ASK).text, "the service answers from the kernel loop between cells"

    # Hot reload: the same cell, edited and run again.
    out = kernel.run_ok(SERVICE.format(version="v2"), service_cell)
    assert "ServiceControl(EchoService, running)" in out.text
    asked = kernel.run_ok(ASK).text
    assert "reply v2:x" in asked, "the new definition answers"
    assert "running [('EchoService', 'running')]" in asked, "the previous instance was stopped"

    table = kernel.run_ok("%services").text
    assert table.count("EchoService") == 1 and "running" in table
    assert "asked x" in table, "the table shows the last log line"

    out = kernel.run_ok("%service_stop EchoService")
    assert "stopped EchoService" in out.text
    assert "EchoService" not in kernel.run_ok("%services").text
    out = kernel.run_ok("%service_stop EchoService")
    assert "no service named EchoService is running" in out.stderr


def test_service_cell_mistakes_are_reported(kernel: Kernel) -> None:
    kernel.run_ok("%load_ext fastiot_widgets")
    kernel.run_ok(MODELS)

    out = kernel.run("%%service\nx = 1")
    assert out.errors and "defines no FastIoTService subclass" in out.errors[0]

    out = kernel.run(
        "%%service\n"
        "class Broken(FastIoTService):\n"
        "    async def _start(self):\n"
        "        raise ValueError('bad config')"
    )
    assert not out.errors, "a crash is shown in the control, the cell itself succeeds"
    assert "ServiceControl(Broken, crashed)" in out.text
    assert "Broken did not start" in out.stderr and "bad config" in out.stderr

    # Of several classes in one cell only the most derived start (or the ones named on the magic line).
    out = kernel.run_ok(
        "%%service\n"
        "class Base(FastIoTService):\n    pass\n"
        "class Child(Base):\n    pass\n"
        "class Other(FastIoTService):\n    pass\n"
    )
    assert "ServiceControl(Child, running)" in out.text and "ServiceControl(Other, running)" in out.text
    assert "ServiceControl(Base" not in out.text
    out = kernel.run("%%service Nope\nclass Another(FastIoTService):\n    pass")
    assert out.errors and "no service named Nope" in out.errors[0]
    listed = kernel.run_ok("%services").text
    assert "Child" in listed and "Other" in listed and "Another" not in listed


def test_a_click_from_the_front_end_runs_on_the_kernel_loop(kernel: Kernel) -> None:
    """A button click arrives as a comm message; the start runs as a task and the kernel stays free."""
    model_id = kernel.run_ok(
        "import threading\n"
        "from fastiot.core import FastIoTService\n"
        "from fastiot_widgets import ServiceControl\n"
        "class Clicked(FastIoTService):\n"
        "    async def _start(self):\n"
        "        self._logger.info('started on %s', threading.current_thread().name)\n"
        "ctl = ServiceControl(Clicked)\n"
        "print(ctl.start_button.model_id)"
    ).text.strip()
    kernel.click(model_id)
    out = kernel.run_ok(
        "await ctl.wait_for_status('running', timeout=10)\n"
        "await ctl.wait_idle()\n"
        "print(ctl.status, ctl.error == '', [line.split(' ', 2)[2] for line in ctl.runner.log_lines])"
    ).text
    assert "running True ['started on MainThread', 'started Clicked']" in out


CONTROLS = """
import warnings
import ipywidgets
from fastiot_widgets import ServiceControl

def controls():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Widget.widgets: the kernel's widgets
        return [w for w in ipywidgets.Widget.widgets.values() if isinstance(w, ServiceControl)]
"""


def test_import_registers_the_magics(kernel: Kernel) -> None:
    kernel.run_ok("import fastiot_widgets")  # no %load_ext
    kernel.run_ok(MODELS)
    out = kernel.run_ok(SERVICE.format(version="v1"))
    assert "ServiceControl(EchoService, running)" in out.text
    kernel.run_ok("%load_ext fastiot_widgets")  # still works, and keeps what the magics remember
    kernel.run_ok(SERVICE.format(version="v2"))
    assert "reply v2:x" in kernel.run_ok(ASK).text
    assert kernel.run_ok("%services").text.count("EchoService") == 1


def test_a_newer_cell_retires_the_older_controls(kernel: Kernel) -> None:
    """Notebook 02's hot reload: the first cell's control cannot start the outdated class again."""
    kernel.run_ok("%load_ext fastiot_widgets")
    kernel.run_ok(MODELS)
    kernel.run_ok(CONTROLS)
    kernel.run_ok(SERVICE.format(version="v1"))
    out = kernel.run_ok("%service_stop EchoService\n%services")
    assert out.stderr == "", "stopping a service writes nothing red into the cell"
    out = kernel.run_ok(SERVICE.format(version="v2"))  # another cell, same service: hot reload
    assert out.stderr == ""
    out = kernel.run_ok(
        "first, second = controls()\n"
        "first.start_button.click()  # the user presses Start on the first cell's control\n"
        "await first.wait_idle()\n"
        "print(first.status, second.status, first.start_button.disabled, first.restart_button.disabled)\n"
        "print(first.status.description)"
    )
    assert "replaced running True True" in out.text
    assert "replaced by a newer cell" in out.text
    assert "reply v2:x" in kernel.run_ok(ASK).text, "the new definition answers, alone"
    table = kernel.run_ok("%services").text
    assert table.count("EchoService") == 1, table
    out = kernel.run("await first.runner.start()")
    assert out.errors and "ServiceReplacedError" in out.errors[0] and "newer cell" in out.errors[0]


def test_empty_services_says_so(kernel: Kernel) -> None:
    kernel.run_ok("%load_ext fastiot_widgets")
    out = kernel.run_ok("%services")
    assert out.text.strip() == "no services running"


def test_magic_arguments_are_parsed_by_ipython(kernel: Kernel) -> None:
    kernel.run_ok("%load_ext fastiot_widgets")
    kernel.run_ok(MODELS)
    # IPython shows a UsageError as a message, not as a failed cell.
    assert "UsageError: unrecognized arguments: now" in kernel.run("%services now").stderr
    assert "needs a service class name; running: none" in kernel.run("%service_stop").stderr
    out = kernel.run("%%service --bogus\nclass Another(FastIoTService):\n    pass")
    assert "UsageError: unrecognized arguments: --bogus" in out.stderr
    assert "Another" not in kernel.run_ok("%services").text, "a cell with bad arguments starts nothing"


def test_cells_after_a_service_cell_run_and_sync_calls_work(kernel: Kernel) -> None:
    """The re-entrant kernel loop (nest-asyncio2): after %%service, later cells are not stuck, and
    publish_sync / request_sync work in a cell, in a widget's click handler and in a service handler."""
    kernel.run_ok("import fastiot_widgets")
    kernel.run_ok(MODELS)
    kernel.run_ok(SERVICE.format(version="v1"))
    out = kernel.run_ok(
        "from fastiot.msg.thing import Thing\n"
        "broker = await workbench.connection()\n"
        "thing = Thing(machine='m', name='n', value=1)\n"
        "broker.publish_sync(Thing.get_subject('magics.sync'), thing, timeout=5)\n"
        "print('sync', broker.request_sync(Ask.get_reply_subject(), Ask(text='cell'), timeout=5).text)"
    )
    assert "sync v1:cell" in out.text
    kernel.run_ok(SERVICE.format(version="v2"))  # hot reload, then sync again
    model_id = kernel.run_ok(
        "import ipywidgets\n"
        "answers = []\n"
        "button = ipywidgets.Button()\n"
        "button.on_click(lambda _: answers.append(\n"
        "    broker.request_sync(Ask.get_reply_subject(), Ask(text='click'), timeout=5).text))\n"
        "print(button.model_id)"
    ).text.strip()
    kernel.click(model_id)
    kernel.run_ok(
        "%%service\n"
        "class Relay(FastIoTService):\n"
        "    @reply(subject=Ask.get_reply_subject('relay'))\n"
        "    async def relay(self, request: Ask) -> Answer:\n"
        "        inner = self.broker_connection.request_sync(\n"
        "            Ask.get_reply_subject(), Ask(text='in'), timeout=5)\n"
        "        return Answer(text='relay ' + inner.text)"
    )
    out = kernel.run_ok(
        "print('clicked', answers)\n"
        "print((await broker.request(Ask.get_reply_subject('relay'), Ask(text='r'), timeout=8)).text)"
    )
    assert "clicked ['v2:click']" in out.text, "the click was handled before this cell (shell order)"
    assert "relay v2:in" in out.text
    assert kernel.run_ok("print('last cell runs')").text.strip() == "last cell runs"


def _service_cell(kernel: Kernel) -> nbformat.NotebookNode:
    """A new cell of the notebook, after the models (its execution_count is the In[N] it runs as)."""
    kernel.run_ok("%load_ext fastiot_widgets")
    kernel.run_ok(MODELS)
    kernel.run_ok(CONTROLS)
    cell = nbformat.v4.new_code_cell()
    kernel.client.nb.cells.append(cell)
    return cell


def test_a_service_cells_traceback_shows_the_users_lines_under_its_number(kernel: Kernel) -> None:
    cell = _service_cell(kernel)
    out = kernel.run(
        "%%service\n"
        "from fastiot.core import subscribe\n"
        "class Typo(FastIoTService):\n"
        "    @subscribe(subject=Thingg.get_subject('>'))\n"
        "    async def on_thing(self, thing) -> None:\n"
        "        pass\n",
        cell,
    )
    assert out.errors == ["NameError: name 'Thingg' is not defined"]
    # Named as the notebook numbers the cell, line 1 being the %%service line.
    assert f"Cell In[{cell.execution_count}], line 4" in out.traceback, out.traceback
    assert "@subscribe(subject=Thingg.get_subject('>'))" in out.traceback
    assert f"Cell In[{cell.execution_count + 1}]" not in out.traceback
    for ours in ("run_cell_magic", "magics.py", "interactiveshell.py", "skipping hidden"):
        assert ours not in out.traceback, out.traceback

    out = kernel.run("%%service\nclass Broken(FastIoTService):\n    x = = 1\n", cell)
    assert out.errors and out.errors[0].startswith("SyntaxError: invalid syntax"), out.errors
    assert f"Cell In[{cell.execution_count}], line 3" in out.traceback and "x = = 1" in out.traceback
    assert "magics.py" not in out.traceback and "run_cell_magic" not in out.traceback, out.traceback

    out = kernel.run("%%service\nx = 1\n", cell)  # the magic's own complaint: just its message
    assert out.errors and "defines no FastIoTService subclass" in out.errors[0]
    assert "magics.py" not in out.traceback and "run_cell_magic" not in out.traceback, out.traceback


def test_a_crashed_service_shows_its_own_lines_under_the_cells_number(kernel: Kernel) -> None:
    cell = _service_cell(kernel)
    out = kernel.run(
        "%%service\n"
        "class Broken(FastIoTService):\n"
        "    async def _start(self):\n"
        "        limit = 3\n"
        "        raise ValueError(f'bad config: {limit}')\n",
        cell,
    )
    assert "Broken did not start" in out.stderr
    shown = kernel.run_ok("print(controls()[-1].error)").text
    assert f"Cell In[{cell.execution_count}], line 5, in _start" in shown, shown
    assert "raise ValueError(f'bad config: {limit}')" in shown
    assert "runner.py" not in shown and "service.py" not in shown, "the runner's frames are left out"


def test_loading_the_extension_again_is_silent(kernel: Kernel) -> None:
    """The workbench's kernels load it at start (as --ext=fastiot_widgets.magics); the tutorials'
    %load_ext fastiot_widgets then says nothing, and a second one neither."""
    kernel.run_ok("%load_ext fastiot_widgets.magics")
    for _ in range(2):
        out = kernel.run_ok("%load_ext fastiot_widgets")
        assert out.shown == "", out.shown
    kernel.run_ok(MODELS)
    assert "ServiceControl(EchoService, running)" in kernel.run_ok(SERVICE.format(version="v1")).text
