"""Messages from the browser handled on a kernel subshell's thread still act on the kernel's loop.

JupyterLab 4.6 may send widget messages on a kernel subshell, and ipykernel 7 handles those on a thread
with an event loop of its own. Here such a thread is made as ipykernel makes it (a thread running its own
loop) and hands widgets the messages a browser sends: a click, a changed field.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import anywidget
import ipywidgets as widgets
import msgpack
import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot_widgets import LivePlot, MessageTable, Publisher, SubjectBrowser
from fastiot_widgets._loop_bound import LoopBound
from tests.waits import wait_until


def on_subshell_thread(widget: widgets.Widget, content: dict[str, Any]) -> None:
    """Hand ``widget`` one message from the browser on another thread running its own loop, as a kernel
    subshell does, and wait for that thread."""

    async def handle() -> None:
        widget._handle_msg({"content": {"data": content}, "buffers": []})

    thread = threading.Thread(target=asyncio.run, args=(handle(),), name="subshell")
    thread.start()
    thread.join(10)
    assert not thread.is_alive()


def click(button: widgets.Button) -> None:
    on_subshell_thread(button, {"method": "custom", "content": {"event": "click"}})


def descendants(root: widgets.Widget) -> Iterator[widgets.Widget]:
    yield root
    for child in getattr(root, "children", ()):
        yield from descendants(child)


async def test_a_click_on_a_subshell_thread_publishes_on_the_kernels_loop(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_msg(msg: Any) -> None:
        await received.put(msg.data)

    await broker.client.subscribe(f"{prefix}.>", cb=on_msg)
    await broker.flush()
    pub = Publisher(connection=broker)
    pub.subject, pub.payload = f"{prefix}.lamp", '{"on": true}'
    clicked_on: list[str] = []
    pub.publish_button.on_click(lambda _b: clicked_on.append(threading.current_thread().name))

    click(pub.publish_button)

    # Handled on the subshell's loop, the publish task would have died with that loop.
    assert msgpack.unpackb(await asyncio.wait_for(received.get(), 5)) == {"on": True}
    await pub.wait_idle()
    assert pub.sent == 1 and pub.error == ""
    assert clicked_on == [threading.current_thread().name], "the click was handled on the kernel's loop"


async def test_a_field_changed_on_a_subshell_thread_is_applied_on_the_kernels_loop(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    seen: list[str] = []
    pub = Publisher(connection=broker)
    pub.observe(lambda change: seen.append(threading.current_thread().name), names="payload")

    on_subshell_thread(
        pub.payload_field, {"method": "update", "state": {"value": '{"a": 1}'}, "buffer_paths": []}
    )

    await wait_until(lambda: pub.payload == '{"a": 1}', timeout=5, what="the payload to change")
    assert seen == [threading.current_thread().name], "the observers ran on the kernel's loop thread"


async def test_every_control_of_the_views_is_loop_bound(broker: NatsBrokerConnection, prefix: str) -> None:
    views = [
        MessageTable(f"{prefix}.>", broker),
        SubjectBrowser(f"{prefix}.>", connection=broker),
        Publisher(connection=broker),
        LivePlot(f"{prefix}.>", connection=broker),
    ]
    try:
        controls = [
            w
            for view in views
            for w in descendants(view)
            if isinstance(w, (widgets.ValueWidget, widgets.Button, widgets.Accordion, anywidget.AnyWidget))
            and not isinstance(w, (widgets.HTML, widgets.Label, widgets.FloatProgress))  # they only show
        ]
        assert len(controls) > 20
        assert [type(w).__name__ for w in controls if not isinstance(w, LoopBound)] == []
    finally:
        for view in views:
            view.close()


@pytest.mark.parametrize("view", [MessageTable, SubjectBrowser])
async def test_a_live_views_buttons_act_when_clicked_on_a_subshell_thread(
    view: Any, broker: NatsBrokerConnection, prefix: str
) -> None:
    widget = view(f"{prefix}.>", connection=broker) if view is SubjectBrowser else view(f"{prefix}.>", broker)
    try:
        click(widget.pause_button)
        await wait_until(lambda: widget.paused, timeout=5, what="the view to pause")
        click(widget.resume_button)
        await wait_until(lambda: not widget.paused, timeout=5, what="the view to resume")
    finally:
        widget.close()
