"""Every FastIoTService answers NATS' services API ($SRV.PING / INFO / STATS), as `nats micro` expects."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import nats.errors
import pytest
from nats.micro.service import ServiceInfo, ServicePing, ServiceStats

from fastiot.core import FastIoTService, loop, reply, subscribe
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.data_models import FastIoTRequest, FastIoTResponse
from fastiot.exceptions import PermissionDeniedError, ReplyHandlerError
from fastiot.msg.thing import Thing
from fastiot.nats_server import NatsServer
from fastiot.runner import ServiceRunner
from fastiot.testlib import BackgroundProcess
from tests.lockdown import connect_as
from tests.waits import wait_until

WAIT = 5.0


class Doubled(FastIoTResponse):
    value: int


class DoubleRequest(FastIoTRequest):
    _reply_cls = Doubled
    value: int
    note: str | None = None


class Doubler(FastIoTService):
    """Doubles numbers on request.

    Refuses 13.
    """

    version = "1.2.3"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answered = 0

    @reply(subject=DoubleRequest.get_reply_subject("discovery"))
    async def double(self, request: DoubleRequest) -> Doubled:
        self.answered += 1
        if request.value == 13:
            raise ValueError("13 is unlucky")
        return Doubled(value=2 * request.value)

    @subscribe(subject=Thing.get_subject("discovery.>"))
    async def on_thing(self, thing: Thing) -> None:
        pass

    @loop
    async def heartbeat(self) -> Any:
        return asyncio.sleep(60)


async def srv(broker: NatsBrokerConnection, subject: str) -> dict[str, Any]:
    reply = await broker.request_raw(subject, b"", timeout=WAIT)
    answer: dict[str, Any] = json.loads(reply.data)
    return answer


async def test_info_names_the_service_its_reply_endpoints_and_its_metadata(
    broker: NatsBrokerConnection,
) -> None:
    async with Doubler(broker_connection=broker) as service:
        assert service.registration is not None and service.registration.error is None
        sid = service.registration.id
        raw = await srv(broker, f"$SRV.INFO.Doubler.{sid}")
    info = ServiceInfo.from_dict(raw)  # nats-py's own reading of the answer
    assert raw["type"] == "io.nats.micro.v1.info_response"
    assert (info.name, info.id, info.version) == ("Doubler", sid, "1.2.3")
    assert info.description == "Doubles numbers on request."
    [endpoint] = info.endpoints
    assert (endpoint.name, endpoint.subject) == ("double", "v1.double_request.discovery")
    request_schema = json.loads(endpoint.metadata["request_schema"])
    assert request_schema["properties"]["value"]["type"] == "integer"
    assert "note" in request_schema["properties"] and request_schema["required"] == ["value"]
    assert json.loads(endpoint.metadata["response_schema"])["title"] == "Doubled"
    assert json.loads(info.metadata["subscribes"]) == ["v1.thing.discovery.>"]
    assert json.loads(info.metadata["loops"]) == ["heartbeat"]
    assert info.metadata["host"]


async def test_ping_answers_for_all_per_name_and_per_id(broker: NatsBrokerConnection) -> None:
    async with Doubler(broker_connection=broker) as service:
        assert service.registration is not None
        sid = service.registration.id
        for subject in ("$SRV.PING", "$SRV.PING.Doubler", f"$SRV.PING.Doubler.{sid}"):
            inbox = broker.client.new_inbox()
            pings: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

            async def collect(msg: Any, pings: asyncio.Queue[dict[str, Any]] = pings) -> None:
                await pings.put(json.loads(msg.data))

            sub = await broker.subscribe_raw(inbox, collect)
            await broker.publish_raw(subject, b"", reply=inbox)
            # Other tests' services may answer $SRV.PING as well: look for ours.
            while True:
                ping = ServicePing.from_dict(await asyncio.wait_for(pings.get(), WAIT))
                if ping.id == sid:
                    break
            assert (ping.name, ping.version) == ("Doubler", "1.2.3")
            await sub.unsubscribe()


async def test_stats_are_the_services_own_counters(broker: NatsBrokerConnection) -> None:
    subject = DoubleRequest.get_reply_subject("discovery")
    async with Doubler(broker_connection=broker) as service:
        assert service.registration is not None
        for value in (1, 2):
            assert (
                await broker.request(subject, DoubleRequest(value=value), timeout=WAIT)
            ).value == 2 * value
        with pytest.raises(ReplyHandlerError):
            await broker.request(subject, DoubleRequest(value=13), timeout=WAIT)
        raw = await srv(broker, f"$SRV.STATS.Doubler.{service.registration.id}")
    stats = ServiceStats.from_dict(raw)
    [endpoint] = stats.endpoints
    assert (endpoint.name, endpoint.num_requests, endpoint.num_errors) == ("double", 3, 1)
    assert "13 is unlucky" in (endpoint.last_error or "")
    assert endpoint.processing_time > 0
    assert endpoint.average_processing_time == endpoint.processing_time // 3
    assert raw["handlers"]["on_thing"] == {"received": 0, "errors": 0, "last_error": "", "processing_time": 0}


async def test_a_reply_registered_as_an_endpoint_answers_exactly_once(broker: NatsBrokerConnection) -> None:
    answers: asyncio.Queue[bytes] = asyncio.Queue()

    async def collect(msg: Any) -> None:
        await answers.put(msg.data)

    inbox = broker.client.new_inbox()
    await broker.subscribe_raw(inbox, collect)
    subject = DoubleRequest.get_reply_subject("discovery")
    async with Doubler(broker_connection=broker) as service:
        from fastiot.core.serialization import serialize_to_bin

        await broker.publish_raw(
            subject.name, serialize_to_bin(DoubleRequest, DoubleRequest(value=4)), reply=inbox
        )
        await asyncio.wait_for(answers.get(), WAIT)
        # A second answer would come before the answer to a later request on the same connection.
        await srv(broker, "$SRV.PING.Doubler")
        await broker.flush()
        assert answers.empty()
        assert service.answered == 1


async def test_a_service_that_stops_stops_answering(broker: NatsBrokerConnection) -> None:
    async with Doubler(broker_connection=broker) as service:
        assert service.registration is not None
        sid = service.registration.id
        await srv(broker, f"$SRV.PING.Doubler.{sid}")
    assert not service.registration.is_registered
    with pytest.raises(nats.errors.NoRespondersError):
        await broker.request_raw(f"$SRV.PING.Doubler.{sid}", b"", timeout=WAIT)


async def test_a_runner_service_is_discoverable_and_says_when_it_is_not(broker: NatsBrokerConnection) -> None:
    runner = ServiceRunner(Doubler, connection=broker)
    await runner.start()
    try:
        assert runner.registration is not None and runner.registration.error is None
        info = await srv(broker, f"$SRV.INFO.Doubler.{runner.registration.id}")
        assert [e["name"] for e in info["endpoints"]] == ["double"]
    finally:
        await runner.stop()


async def test_a_service_that_may_not_register_runs_and_says_so(
    locked_down: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    # "viewer" may subscribe to v1.thing.> only: the service's own subscription works, $SRV does not.
    class Watcher(FastIoTService):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.things: asyncio.Queue[Thing] = asyncio.Queue()

        @subscribe(subject=Thing.get_subject("watched"))
        async def on_thing(self, thing: Thing) -> None:
            await self.things.put(thing)

    viewer = await connect_as(locked_down, "viewer")
    admin = await connect_as(locked_down, "admin")
    try:
        runner = ServiceRunner(Watcher, connection=viewer)
        with caplog.at_level(logging.WARNING):
            await runner.start()
        try:
            assert runner.status == "running"
            assert isinstance(
                runner.registration.error if runner.registration else None, PermissionDeniedError
            )
            assert "Watcher runs, but is not discoverable" in caplog.text
            assert any("not discoverable" in line for line in runner.log_lines)
            thing = Thing(machine="m", name="watched", value=1)
            await admin.publish(Thing.get_subject("watched"), thing)
            assert (await asyncio.wait_for(runner.service.things.get(), WAIT)).value == 1  # type: ignore[union-attr]
        finally:
            await runner.stop()
    finally:
        await viewer.close()
        await admin.close()


class ProcessDoubler(Doubler):
    """Doubles numbers in a process of its own."""


async def test_a_main_service_in_a_process_answers_with_live_stats(broker: NatsBrokerConnection) -> None:
    subject = DoubleRequest.get_reply_subject("discovery")
    async with BackgroundProcess(ProcessDoubler, startup_time=0) as background:
        info = ServiceInfo.from_dict(await srv(broker, "$SRV.INFO.ProcessDoubler"))
        assert info.description == "Doubles numbers in a process of its own."
        assert info.metadata["pid"] == str(background.process.pid)  # type: ignore[union-attr]
        assert [e.subject for e in info.endpoints] == [subject.name]
        await broker.request(subject, DoubleRequest(value=5), timeout=WAIT)
        stats = ServiceStats.from_dict(await srv(broker, f"$SRV.STATS.ProcessDoubler.{info.id}"))
        assert stats.endpoints[0].num_requests == 1
    await wait_until(lambda: background.exitcode is not None, WAIT, "the process to end")
    with pytest.raises(nats.errors.NoRespondersError):
        await broker.request_raw("$SRV.PING.ProcessDoubler", b"", timeout=WAIT)
