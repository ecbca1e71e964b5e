"""fastiot.services: discover(), stats(), which_services() and the ServiceDirectory, on a real broker."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import nats.micro
import pytest
from nats.micro.request import Request

from fastiot.core import FastIoTService, reply, subscribe
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.data_models import FastIoTRequest, FastIoTResponse
from fastiot.exceptions import InvalidSubjectError
from fastiot.msg.thing import Thing
from fastiot.runner import ServiceRunner
from fastiot.services import ServiceDirectory, discover, stats, which_services
from fastiot.services.directory import example_request
from fastiot.services.discovery import service_from_answers
from tests.waits import wait_until

WAIT = 5.0


class Total(FastIoTResponse):
    total: int


class SumRequest(FastIoTRequest):
    _reply_cls = Total
    numbers: list[int]
    label: str | None = None


class Summer(FastIoTService):
    """Adds numbers up."""

    @reply(subject=SumRequest.get_reply_subject("discovery_api"))
    async def add_up(self, request: SumRequest) -> Total:
        return Total(total=sum(request.numbers))

    @subscribe(subject=Thing.get_subject("discovery_api.*.temperature"))
    async def on_temperature(self, thing: Thing) -> None:
        pass


async def test_discover_finds_a_plain_nats_micro_service_and_ours(broker: NatsBrokerConnection) -> None:
    async def echo(request: Request) -> None:
        await request.respond(request.data)

    plain = await nats.micro.add_service(
        broker.client, name="plain-echo", version="2.0.0", description="Echoes"
    )
    await plain.add_endpoint(name="echo", subject="discovery_api.echo", handler=echo)
    try:
        async with Summer(broker_connection=broker):
            await broker.request(SumRequest.get_reply_subject("discovery_api"), SumRequest(numbers=[1, 2]))
            services = {s.name: s for s in await discover(timeout=0.5, connection=broker)}
    finally:
        await plain.stop()
    echo_service = services["plain-echo"]
    assert (echo_service.id, echo_service.version, echo_service.description) == (plain.id, "2.0.0", "Echoes")
    assert [(e.name, e.subject) for e in echo_service.endpoints] == [("echo", "discovery_api.echo")]
    summer = services["Summer"]
    assert summer.description == "Adds numbers up."
    assert (summer.requests, summer.errors) == (1, 0)
    assert summer.average_time > 0 and summer.uptime is not None and summer.host
    assert summer.subscribes == ["v1.thing.discovery_api.*.temperature"]
    [endpoint] = summer.endpoints
    assert endpoint.request_schema is not None and "numbers" in endpoint.request_schema["properties"]
    # An example request made from the schema is a valid request.
    assert SumRequest.model_validate(example_request(summer, "add_up")).numbers == [0]


async def test_stats_of_a_name_are_live_and_end_with_the_service(broker: NatsBrokerConnection) -> None:
    subject = SumRequest.get_reply_subject("discovery_api")
    runner = ServiceRunner(Summer, connection=broker)
    await runner.start()
    try:
        for n in range(3):
            await broker.request(subject, SumRequest(numbers=[n]))
        [instance] = await stats("Summer", timeout=0.3, connection=broker)
        assert runner.registration is not None and instance.id == runner.registration.id
        assert instance.requests == 3
    finally:
        await runner.stop()
    assert await stats("Summer", timeout=0.3, connection=broker) == []


async def test_stats_refuses_what_cannot_be_a_service_name() -> None:
    with pytest.raises(InvalidSubjectError, match="no service name"):
        await stats("v1.Summer", timeout=0.1)


async def test_which_services_matches_wildcards_of_subscriptions_and_endpoints(
    broker: NatsBrokerConnection,
) -> None:
    async with Summer(broker_connection=broker):
        services = await discover(timeout=0.3, connection=broker)
    assert [s.name for s in which_services("v1.thing.discovery_api.press_1.temperature", services)] == [
        "Summer"
    ]
    assert [s.name for s in which_services("v1.sum_request.discovery_api", services)] == ["Summer"]
    assert which_services("v1.thing.discovery_api.press_1.pressure", services) == []
    with pytest.raises(InvalidSubjectError):
        which_services("v1..x", services)


async def test_which_services_knows_the_services_this_kernel_runs(broker: NatsBrokerConnection) -> None:
    runner = ServiceRunner(Summer, connection=broker)
    await runner.start()
    try:
        assert [s.name for s in which_services("v1.thing.discovery_api.m.temperature")] == ["Summer"]
    finally:
        await runner.stop()
    assert which_services("v1.thing.discovery_api.m.temperature") == []


async def test_the_directory_refreshes_until_stopped(broker: NatsBrokerConnection) -> None:
    directory = ServiceDirectory(connection=broker, interval=0.2, timeout=0.1)
    seen: list[list[Any]] = []
    directory.on_change(seen.append)
    await directory.start()
    try:
        async with Summer(broker_connection=broker):
            await wait_until(
                lambda: any(s.name == "Summer" for s in directory.services), WAIT, "Summer listed"
            )
            assert [s.name for s in which_services("v1.sum_request.discovery_api")] == ["Summer"]
        await wait_until(lambda: all(s.name != "Summer" for s in directory.services), WAIT, "Summer gone")
    finally:
        await directory.stop()
    assert not directory.is_running and seen


async def test_discover_uses_the_workbench_connection_by_default() -> None:
    runner = ServiceRunner(Summer)  # on the workbench's shared connection as well
    await runner.start()
    try:
        assert [s.name for s in await discover(timeout=0.3) if s.name == "Summer"] == ["Summer"]
    finally:
        await runner.stop()


def test_bad_timeouts_are_refused() -> None:
    with pytest.raises(ValueError, match="timeout"):
        ServiceDirectory(timeout=0)
    with pytest.raises(ValueError, match="interval"):
        ServiceDirectory(interval=-1)


def test_answers_of_a_go_service_are_read() -> None:
    # Go's micro sends nanoseconds and may leave fields out; the reading does not fail on either.
    info = {
        "name": "orders",
        "id": "abc",
        "version": "1.0.0",
        "endpoints": [{"name": "list", "subject": "orders.list", "metadata": None}],
        "metadata": None,
    }
    stats = {
        "name": "orders",
        "id": "abc",
        "started": "2024-05-01T10:00:00.123456789Z",
        "endpoints": [{"name": "list", "num_requests": 4, "num_errors": 1, "processing_time": 2_000_000}],
    }
    service = service_from_answers(info, stats)
    assert service.started == datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=timezone.utc)
    assert (service.requests, service.errors, service.average_time) == (4, 1, 0.0005)
    assert service.subscribes == [] and service.endpoints[0].request_schema is None
