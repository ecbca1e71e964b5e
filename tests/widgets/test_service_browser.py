"""ServiceBrowser: the live table of the services, their endpoints, and a request made from a schema."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import nats.micro
from nats.micro.request import Request

from fastiot.core import FastIoTService, reply, subscribe
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.data_models import FastIoTRequest, FastIoTResponse, Subject
from fastiot.runner import ServiceRunner
from fastiot_widgets import ServiceBrowser, SubjectBrowser
from tests.waits import wait_for_trait, wait_until

WAIT = 5.0


class Greeting(FastIoTResponse):
    text: str


class GreetRequest(FastIoTRequest):
    _reply_cls = Greeting
    who: str
    times: int = 1


class Greeter(FastIoTService):
    """Greets whoever asks."""

    @reply(subject=GreetRequest.get_reply_subject("browser"))
    async def greet(self, request: GreetRequest) -> Greeting:
        return Greeting(text=f"hello {request.who}" * request.times)


async def test_the_table_lists_a_running_service_with_its_counters(broker: NatsBrokerConnection) -> None:
    runner = ServiceRunner(Greeter, connection=broker)
    await runner.start()
    browser = ServiceBrowser(broker, interval=0.2, timeout=0.1)
    try:
        await broker.request(GreetRequest.get_reply_subject("browser"), GreetRequest(who="you"))
        await wait_until(
            lambda: any(s.name == "Greeter" and s.requests == 1 for s in browser.services), WAIT, "a request"
        )
        assert runner.registration is not None
        assert "Greeter" in browser.table_view.value and runner.registration.id in browser.table_view.value
        greeter = browser.select("Greeter")
        assert browser.selected == ("Greeter", greeter.id)
        assert "greet" in browser.detail_view.value and "request schema" in browser.detail_view.value
        assert list(browser.endpoint_field.options) == ["greet"]
        await runner.stop()
        await wait_until(
            lambda: "Greeter" not in browser.table_view.value, WAIT, "Greeter to leave the table"
        )
    finally:
        await runner.stop()
        await browser.aclose()
    assert not browser.directory.is_running


async def test_request_opens_a_publisher_with_an_example_that_the_service_answers(
    broker: NatsBrokerConnection,
) -> None:
    runner = ServiceRunner(Greeter, connection=broker)
    await runner.start()
    browser = ServiceBrowser(broker, interval=60, timeout=0.1)
    try:
        await browser.wait_idle()
        await browser.refresh()
        browser.select("Greeter")
        browser.endpoint_field.value = "greet"
        browser.request_button.click()
        publisher = browser.publisher
        assert publisher is not None and publisher in browser.publisher_box.children
        assert (publisher.subject, publisher.mode) == ("v1.greet_request.browser", "request")
        assert json.loads(publisher.payload) == {"who": "example", "times": 1}
        answer = await publisher.request()
        # The Publisher knows the reply model of a FastIoT request subject: the reply decodes to it.
        assert answer == Greeting(text="hello example"), publisher.error
    finally:
        await runner.stop()
        await browser.aclose()


async def test_the_subject_browser_names_the_services_that_use_the_selected_subject(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    class Watcher(FastIoTService):
        @subscribe(subject=Subject(name=f"{prefix}.*.state", msg_cls=dict))
        async def on_state(self, state: dict[str, Any]) -> None:
            pass

    runner = ServiceRunner(Watcher, connection=broker)
    await runner.start()
    browser = SubjectBrowser(f"{prefix}.>", connection=broker, refresh_interval=0.05)
    try:
        await browser.start()
        for subject in (f"{prefix}.press_1.state", f"{prefix}.press_1.power"):
            await broker.publish_raw(subject, msgpack.packb({"on": True}))
        await browser.index.wait_for(2, timeout=WAIT)
        browser.select(f"{prefix}.press_1.state")
        detail = await wait_for_trait(
            browser.detail_view, "detail", lambda d: d.get("path", "").endswith("state")
        )
        assert detail["services"] == ["Watcher (subscribes)"]
        browser.select(f"{prefix}.press_1.power")
        detail = await wait_for_trait(
            browser.detail_view, "detail", lambda d: d.get("path", "").endswith("power")
        )
        assert detail["services"] == []
    finally:
        await browser.aclose()
        await runner.stop()


async def test_a_plain_nats_micro_endpoint_gets_a_json_request(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    async def echo(request: Request) -> None:
        await request.respond(request.data)

    plain = await nats.micro.add_service(broker.client, name="plain-echo-browser", version="1.0.0")
    await plain.add_endpoint(name="echo", subject=f"{prefix}.echo", handler=echo)
    browser = ServiceBrowser(broker, interval=60, timeout=0.1)
    try:
        await browser.wait_idle()
        await browser.refresh()
        browser.select("plain-echo-browser")
        publisher = browser.open_request("echo")
        # No schema and no msgpack content type: an empty JSON object, sent as JSON.
        assert (publisher.encoding, json.loads(publisher.payload)) == ("json", {})
        assert await publisher.request() == {}, publisher.error
    finally:
        await plain.stop()
        await browser.aclose()
