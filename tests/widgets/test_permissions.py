"""Every widget, created as a restricted user, shows what it may do and says in red what it may not.

Against the locked-down server of ``tests/lockdown.py``. No call may wait for a timeout to find out:
each is bounded well below the JetStream and request timeouts.
"""

from __future__ import annotations

import asyncio

import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import PermissionDeniedError
from fastiot.msg.thing import Thing
from fastiot.runner import ServiceRunner, ServiceStatus
from fastiot_widgets import (
    KeyValueBrowser,
    LivePlot,
    MessageTable,
    Publisher,
    RecordingBrowser,
    ServiceControl,
    SubjectBrowser,
)
from tests.lockdown import authorization, connect_as, locked_down_server
from tests.waits import wait_until
from tests.workbench.test_service_permissions import WatchesAnotherMachine

BOUND = 4.0  # under every timeout a refusal could otherwise hide behind (JetStream's 5 s, requests' more)
RED = "#c62828"


async def test_a_subject_browser_on_everything_says_it_may_not(viewer: NatsBrokerConnection) -> None:
    browser = SubjectBrowser(">", connection=viewer)
    try:
        with pytest.raises(PermissionDeniedError):
            await asyncio.wait_for(browser.start(), BOUND)
        assert "refused by the server" in browser.error and "'>'" in browser.error
        assert RED in browser.error_view.value
        assert not browser.running
    finally:
        await browser.aclose()
    # ... and on what the viewer may read, it browses.
    allowed = SubjectBrowser("v1.thing.>", connection=viewer)
    try:
        await asyncio.wait_for(allowed.start(), BOUND)
        assert allowed.running and allowed.error == ""
    finally:
        await allowed.aclose()


async def test_a_table_and_a_plot_of_another_machine_say_they_may_not(press1: NatsBrokerConnection) -> None:
    table = MessageTable("v1.thing.>", connection=press1)
    plot = LivePlot("v1.thing.>", connection=press1)
    try:
        for view in (table, plot):
            with pytest.raises(PermissionDeniedError):
                await asyncio.wait_for(view.start(), BOUND)
            assert "refused by the server" in view.error and "v1.thing.>" in view.error
            assert RED in view.error_view.value
    finally:
        await table.aclose()
        await plot.aclose()


async def test_a_publisher_says_refused_not_sent(press1: NatsBrokerConnection) -> None:
    pub = Publisher(Thing, connection=press1)
    pub.values = {"machine": "press_1", "name": "cmd", "value": 1}
    assert await asyncio.wait_for(pub.publish(), BOUND) is None
    assert pub.sent == 0
    assert pub.error.startswith("refused by the server") and "v1.thing.press_1.cmd" in pub.error
    assert pub.history[0].outcome == "refused"


async def test_a_publisher_request_says_refused_at_once(press1: NatsBrokerConnection) -> None:
    pub = Publisher("svc.status", connection=press1)
    pub.mode = "request"
    pub.timeout = 60.0
    assert await asyncio.wait_for(pub.request(), BOUND) is None
    assert pub.error.startswith("refused by the server")


async def test_a_recording_browser_without_jetstream_says_so_at_once(nojs: NatsBrokerConnection) -> None:
    browser = RecordingBrowser(connection=nojs)
    with pytest.raises(PermissionDeniedError):
        await asyncio.wait_for(browser.refresh(), BOUND)
    await asyncio.wait_for(browser.wait_idle(), BOUND)
    assert "PermissionDeniedError" in browser.error and "$JS.API" in browser.error.upper()
    browser.close()


async def test_a_key_value_browser_without_jetstream_says_so_at_once(nojs: NatsBrokerConnection) -> None:
    browser = KeyValueBrowser(connection=nojs)
    with pytest.raises(PermissionDeniedError):
        await asyncio.wait_for(browser.refresh(), BOUND)
    await asyncio.wait_for(browser.wait_idle(), BOUND)
    assert "PermissionDeniedError" in browser.error
    browser.close()


async def test_a_service_control_shows_crashed_with_the_refusal(press1: NatsBrokerConnection) -> None:
    control = ServiceControl(ServiceRunner(WatchesAnotherMachine, connection=press1))
    control.start_button.click()
    await asyncio.wait_for(control.wait_idle(), BOUND)
    assert control.status == ServiceStatus.CRASHED
    assert "PermissionDeniedError" in control.error and "v1.thing.oven_1.temp" in control.error
    control.close()


async def test_a_browser_refused_later_turns_red_and_stops_counting_as_live() -> None:
    with locked_down_server() as server:
        viewer = await connect_as(server, "viewer")
        browser = SubjectBrowser("v1.thing.>", connection=viewer)
        try:
            await asyncio.wait_for(browser.start(), BOUND)
            assert browser.running
            changed = authorization()
            for user in changed["users"]:
                if user["user"] == "viewer":
                    user["permissions"]["subscribe"]["allow"] = ["v1.other.>", "_INBOX.>"]
            server.authorization = changed
            server.reload()
            await wait_until(lambda: "refused by the server" in browser.error, BOUND, "the refusal shown")
            assert not browser.running and RED in browser.error_view.value
            index = browser.index
            assert index.error is not None and not index.is_running
        finally:
            await browser.aclose()
            await viewer.close()
