"""The runtime inside a real Jupyter kernel: cells run on the kernel's own running asyncio loop."""

from __future__ import annotations

import os
import signal

import pytest
from jupyter_client.manager import KernelManager

from tests.kernel_util import execute_cells
from tests.waits import wait_until_gone

CELLS = [
    # 1: await works in a cell and gives the kernel-wide connection.
    "from fastiot import workbench\n"
    "broker = await workbench.connection()\n"
    "print('connected', broker.is_connected, broker.connected_url)\n"
    "print('same', broker is await workbench.connection())",
    # 2: a capture started in one cell...
    "from fastiot.capture import MessageCapture\n"
    "from fastiot.msg.thing import Thing\n"
    "capture = MessageCapture('v1.thing.kernel.>')\n"
    "await capture.start()",
    # 3: ...holds messages published with blocking calls in later cells.
    "for i in range(5):\n"
    "    thing = Thing(machine='kernel', name='temp', value=i)\n"
    "    broker.publish_sync(Thing.get_subject('kernel.temp'), thing, timeout=5)\n"
    "print('published')",
    # 4: request_sync from a cell, answered by a service running on the same kernel loop.
    "from fastiot.core import FastIoTService, FastIoTRequest, FastIoTResponse, reply\n"
    "from fastiot.runner import ServiceRunner\n"
    "class Echo(FastIoTResponse):\n"
    "    text: str\n"
    "class Say(FastIoTRequest):\n"
    "    _reply_cls = Echo\n"
    "    text: str\n"
    "class EchoService(FastIoTService):\n"
    "    @reply(subject=Say.get_reply_subject())\n"
    "    async def echo(self, req: Say) -> Echo:\n"
    "        return Echo(text=req.text.upper())\n"
    "runner = ServiceRunner(EchoService)\n"
    "await runner.start()\n"
    "print('reply', broker.request_sync(Say.get_reply_subject(), Say(text='hello'), timeout=5).text)\n"
    "print('threadsafe', broker.run_threadsafe(broker.flush(), timeout=5))",
    # 5: the capture saw everything.
    "await capture.wait_for(5, timeout=10)\n"
    "df = capture.to_dataframe()\n"
    "print('rows', len(capture), list(df['value']), list(df['machine'].unique()))",
    # 6: what the workbench started for this kernel.
    "server = workbench.started_server()\nprint('server_pid', server.pid if server else None)",
]


def test_notebook_runtime_in_a_real_kernel(nats_server) -> None:
    results = execute_cells(CELLS, timeout=60)
    out = [r.text for r in results]
    assert f"connected True {nats_server.url}" in out[0]
    assert "same True" in out[0]
    assert "published" in out[2]
    assert "reply HELLO" in out[3]
    assert "threadsafe None" in out[3]
    assert "rows 5 [0, 1, 2, 3, 4] ['kernel']" in out[4]
    assert "server_pid None" in out[5], "a configured broker is used as it is"


def test_kernel_without_broker_starts_one_and_leaves_none_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FASTIOT_NATS_SERVERS")
    results = execute_cells([CELLS[0], CELLS[5], "import os\nprint('port', os.environ['FASTIOT_NATS_PORT'])"])
    pid_text = results[1].text.split("server_pid")[1].strip()
    if pid_text == "None":  # a broker already listens on localhost:4222 on this machine: it was used
        assert ":4222" in results[0].text
        return
    pid = int(pid_text)
    assert f":{results[2].text.split()[1]}" in results[0].text
    # nbclient has shut the kernel down: its broker must be gone with it.
    wait_until_gone(pid, 10, f"nats-server {pid} to end with its kernel")


def test_killed_kernel_takes_its_broker_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FASTIOT_NATS_SERVERS")
    km = KernelManager(kernel_name="python3")
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        outputs: list[str] = []
        reply = kc.execute_interactive(
            "from fastiot import workbench\n"
            "broker = await workbench.connection()\n"
            "s = workbench.started_server()\n"
            "print(s.pid if s else None)",
            timeout=60,
            output_hook=lambda msg: outputs.append(
                msg["content"].get("text", "") if msg["content"].get("name") == "stdout" else ""
            ),
        )
        assert reply["content"]["status"] == "ok"
        text = "".join(outputs).strip()
        if text == "None":
            return  # a broker on localhost:4222 was used; nothing was started
        pid = int(text)
        os.kill(km.provisioner.process.pid, signal.SIGKILL)
        wait_until_gone(pid, 10, f"nats-server {pid} to end with its killed kernel")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
