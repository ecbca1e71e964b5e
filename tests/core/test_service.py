"""FastIoTService: @subscribe / @reply / @loop, tasks, shutdown and the life cycle."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import nats.errors
import pytest

from fastiot.core import FastIoTService, loop, reply, subscribe
from fastiot.core.broker_connection import BrokerConnectionDummy, NatsBrokerConnection
from fastiot.core.data_models import FastIoTPublish, FastIoTRequest, FastIoTResponse
from fastiot.exceptions import MessageHandlingError, ReplyHandlerError, ShutdownRequestedInterruption
from fastiot.msg.thing import Thing
from tests.waits import wait_until

WAIT = 5.0


class Tick(FastIoTPublish):
    n: int


class AddReply(FastIoTResponse):
    total: int


class AddRequest(FastIoTRequest):
    _reply_cls = AddReply
    a: int
    b: int


class Worker(FastIoTService):
    """Uses every decorator; records what happened."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.events: list[str] = []
        self.things: asyncio.Queue[tuple[str, Thing]] = asyncio.Queue()
        self.ticks: asyncio.Queue[Tick] = asyncio.Queue()
        self.loop_runs = 0
        self.loop_ran = asyncio.Event()

    async def _start(self) -> None:
        self.events.append("start")

    async def _stop(self) -> None:
        self.events.append("stop")

    @subscribe(subject=Thing.get_subject("worker.>"))
    async def on_thing(self, subject_name: str, thing: Thing) -> None:
        await self.things.put((subject_name, thing))

    @subscribe(subject=Tick.get_subject("worker"))
    async def on_tick(self, tick: Tick) -> None:
        if tick.n < 0:
            raise ValueError("negative tick")
        await self.ticks.put(tick)

    @reply(subject=AddRequest.get_reply_subject("worker"))
    async def add(self, request: AddRequest) -> AddReply:
        if request.a < 0:
            raise ValueError("only non-negative numbers")
        return AddReply(total=request.a + request.b)

    @loop
    async def heartbeat(self) -> Any:
        self.loop_runs += 1
        self.loop_ran.set()
        assert self.broker_connection is not None
        await self.broker_connection.publish(Tick.get_subject("heartbeat"), Tick(n=self.loop_runs))
        return asyncio.sleep(0.01)


# --- decorators are checked when decorating --------------------------------------------------------


def test_subscribe_rejects_bad_methods_when_decorating() -> None:
    with pytest.raises(TypeError, match="must be an async function"):

        class _Sync(FastIoTService):
            @subscribe(subject=Tick.get_subject())
            def on_tick(self, tick: Tick) -> None:
                pass

    with pytest.raises(TypeError, match=r"must take \(msg\) or \(subject_name, msg\)"):

        class _NoArgs(FastIoTService):
            @subscribe(subject=Tick.get_subject())
            async def on_tick(self) -> None:
                pass

    with pytest.raises(TypeError, match=r"must take \(msg\) or \(subject_name, msg\)"):

        class _ThreeArgs(FastIoTService):
            @subscribe(subject=Tick.get_subject())
            async def on_tick(self, a: Any, b: Any, c: Any) -> None:
                pass

    with pytest.raises(TypeError, match="needs a Subject"):
        subscribe(subject="v1.tick")  # type: ignore[arg-type]


def test_reply_rejects_bad_methods_when_decorating() -> None:
    with pytest.raises(TypeError, match="must be an async function"):

        class _Sync(FastIoTService):
            @reply(subject=AddRequest.get_reply_subject())
            def add(self, request: AddRequest) -> AddReply:
                return AddReply(total=0)

    with pytest.raises(TypeError, match=r"must take \(msg\) or \(subject_name, msg\)"):

        class _NoArgs(FastIoTService):
            @reply(subject=AddRequest.get_reply_subject())
            async def add(self) -> AddReply:
                return AddReply(total=0)

    with pytest.raises(TypeError, match="needs a ReplySubject"):
        reply(subject=Tick.get_subject())  # type: ignore[arg-type]


def test_loop_rejects_bad_methods_when_decorating() -> None:
    with pytest.raises(TypeError, match="must be an async function"):

        class _Sync(FastIoTService):
            @loop
            def beat(self) -> Any:
                return asyncio.sleep(1)

    with pytest.raises(TypeError, match="must take only self"):

        class _Args(FastIoTService):
            @loop
            async def beat(self, interval: float) -> Any:
                return asyncio.sleep(interval)


# --- a service on the real broker ------------------------------------------------------------------


async def test_service_subscribes_replies_and_loops(broker: NatsBrokerConnection) -> None:
    heartbeats: asyncio.Queue[Tick] = asyncio.Queue()

    async def on_heartbeat(tick: Tick) -> None:
        await heartbeats.put(tick)

    await broker.subscribe(Tick.get_subject("heartbeat"), on_heartbeat)
    service_connection = await NatsBrokerConnection.connect()
    worker = Worker(broker_connection=service_connection)
    try:
        async with worker as entered:
            assert entered is worker
            assert worker.events == ["start"]
            await service_connection.flush()  # subscriptions are known to the server
            await broker.publish(
                Thing.get_subject("worker.press_1.temp"), Thing(machine="p", name="t", value=3)
            )
            subject_name, thing = await asyncio.wait_for(worker.things.get(), WAIT)
            assert subject_name == "v1.thing.worker.press_1.temp" and thing.value == 3
            await broker.publish(Tick.get_subject("worker"), Tick(n=1))
            assert (await asyncio.wait_for(worker.ticks.get(), WAIT)).n == 1
            reply_msg = await broker.request(
                AddRequest.get_reply_subject("worker"), AddRequest(a=2, b=3), timeout=WAIT
            )
            assert reply_msg == AddReply(total=5)
            await asyncio.wait_for(worker.loop_ran.wait(), WAIT)
            assert (await asyncio.wait_for(heartbeats.get(), WAIT)).n >= 1
            assert set(worker.subscriptions) == {"on_thing", "on_tick", "add"}
        assert worker.events == ["start", "stop"]
        assert worker.shutdown_exception is None
        # Stopped means stopped: no loop runs and no subscriptions any more.
        runs = worker.loop_runs
        with pytest.raises((nats.errors.NoRespondersError, nats.errors.TimeoutError)):
            await broker.request(AddRequest.get_reply_subject("worker"), AddRequest(a=1, b=1), timeout=0.3)
        assert worker.loop_runs == runs
        assert service_connection.is_connected  # a connection the caller passed in stays open
    finally:
        await service_connection.close()


async def test_handler_errors_do_not_stop_the_service(broker: NatsBrokerConnection) -> None:
    async with Worker(broker_connection=broker) as worker:
        await broker.publish(Tick.get_subject("worker"), Tick(n=-1))
        with pytest.raises(MessageHandlingError, match="negative tick"):
            await worker.subscriptions["on_tick"].raise_pending_error(timeout=WAIT)
        with pytest.raises(ReplyHandlerError, match="only non-negative numbers"):
            await broker.request(AddRequest.get_reply_subject("worker"), AddRequest(a=-1, b=0), timeout=WAIT)
        await broker.publish(Tick.get_subject("worker"), Tick(n=2))
        assert (await asyncio.wait_for(worker.ticks.get(), WAIT)).n == 2
        assert (
            await broker.request(AddRequest.get_reply_subject("worker"), AddRequest(a=1, b=1), timeout=WAIT)
        ).total == 2
        assert not await worker.wait_for_shutdown(0.01)
        assert worker.shutdown_exception is None


async def test_service_connects_by_itself_and_closes_what_it_opened() -> None:
    worker = Worker()  # no connection given: FASTIOT_NATS_SERVERS from the fixture
    async with worker:
        connection = worker.broker_connection
        assert isinstance(connection, NatsBrokerConnection) and connection.is_connected
        await asyncio.wait_for(worker.loop_ran.wait(), WAIT)
    assert worker.broker_connection is None
    assert not connection.is_connected


async def test_run_until_shutdown_requested(broker: NatsBrokerConnection) -> None:
    worker = Worker(broker_connection=broker)
    run = asyncio.create_task(worker.run())
    await asyncio.wait_for(worker.loop_ran.wait(), WAIT)
    assert not run.done()
    await worker.request_shutdown("test is done")
    await asyncio.wait_for(run, WAIT)
    assert worker.shutdown_reason == "test is done"
    assert worker.shutdown_exception is None
    assert worker.events == ["start", "stop"]


# --- failures request a shutdown ------------------------------------------------------------------


class FailingLoop(FastIoTService):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runs = 0

    @loop
    async def fail_on_third(self) -> Any:
        self.runs += 1
        if self.runs == 3:
            raise RuntimeError("loop broke")
        return asyncio.sleep(0)


async def test_raising_loop_requests_shutdown_with_the_exception() -> None:
    service = FailingLoop(broker_connection=BrokerConnectionDummy())
    async with service:
        assert await service.wait_for_shutdown(WAIT)
        assert isinstance(service.shutdown_exception, RuntimeError)
        assert str(service.shutdown_exception) == "loop broke"
        assert "loop broke" in service.shutdown_reason
    assert service.runs == 3  # the loop did not run after it failed


async def test_loop_that_returns_no_awaitable_requests_shutdown() -> None:
    class NoAwaitable(FastIoTService):
        @loop
        async def beat(self) -> Any:
            return 1.0

    service = NoAwaitable(broker_connection=BrokerConnectionDummy())
    async with service:
        assert await service.wait_for_shutdown(WAIT)
    assert isinstance(service.shutdown_exception, TypeError)
    assert "must return an awaitable" in str(service.shutdown_exception)


async def test_failing_run_task_requests_shutdown_with_the_exception() -> None:
    async def fails() -> None:
        await asyncio.sleep(0)
        raise ConnectionResetError("database went away")

    async with FastIoTService(broker_connection=BrokerConnectionDummy()) as service:
        task = service.run_task(fails())
        assert isinstance(task, asyncio.Task)
        assert await service.wait_for_shutdown(WAIT)
        assert isinstance(service.shutdown_exception, ConnectionResetError)
        assert "database went away" in service.shutdown_reason


async def test_run_task_that_returns_is_dropped_and_the_service_goes_on() -> None:
    done = asyncio.Event()

    async def finishes() -> str:
        done.set()
        return "result"

    async with FastIoTService(broker_connection=BrokerConnectionDummy()) as service:
        service.run_task(finishes())
        await asyncio.wait_for(done.wait(), WAIT)
        assert not await service.wait_for_shutdown(0.05)
        assert service.shutdown_exception is None


async def test_first_exception_is_kept() -> None:
    async with FastIoTService(broker_connection=BrokerConnectionDummy()) as service:
        await service.request_shutdown("first", exception=KeyError("first"))
        await service.request_shutdown("second", exception=KeyError("second"))
        assert service.shutdown_reason == "first"
        assert service.shutdown_exception is not None and "first" in str(service.shutdown_exception)


# --- wait_for_shutdown and run_coro ----------------------------------------------------------------


async def test_wait_for_shutdown_with_timeout() -> None:
    async with FastIoTService(broker_connection=BrokerConnectionDummy()) as service:
        start = time.monotonic()
        assert await service.wait_for_shutdown(0.1) is False
        assert 0.08 < time.monotonic() - start < 2.0
        with pytest.raises(ValueError, match="timeout"):
            await service.wait_for_shutdown(-1)
        waiter = asyncio.create_task(service.wait_for_shutdown())  # 0: indefinitely
        await asyncio.sleep(0)
        assert not waiter.done()
        asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(service.request_shutdown()))
        assert await asyncio.wait_for(waiter, WAIT) is True
        assert await service.wait_for_shutdown(0.01) is True


async def test_run_coro_returns_the_result_or_raises_on_shutdown() -> None:
    async with FastIoTService(broker_connection=BrokerConnectionDummy()) as service:

        async def value() -> int:
            return 11

        assert await service.run_coro(value()) == 11

        async def fails() -> None:
            raise LookupError("inner")

        with pytest.raises(LookupError, match="inner"):
            await service.run_coro(fails())

        cancelled = asyncio.Event()

        async def forever() -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise

        pending = asyncio.create_task(service.run_coro(forever()))
        await asyncio.sleep(0.01)
        assert not pending.done()
        await service.request_shutdown("stop waiting")
        with pytest.raises(ShutdownRequestedInterruption):
            await asyncio.wait_for(pending, WAIT)
        assert cancelled.is_set()  # the interrupted coroutine was cancelled, not left running

        # Once shut down, run_coro raises at once (and closes the coroutine it was given).
        with pytest.raises(ShutdownRequestedInterruption):
            await service.run_coro(value())


async def test_loop_function_is_not_interrupted_by_a_shutdown() -> None:
    class Careful(FastIoTService):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.inside = asyncio.Event()
            self.release = asyncio.Event()
            self.finished = 0

        @loop
        async def work(self) -> Any:
            self.inside.set()
            await self.release.wait()
            self.finished += 1
            return asyncio.sleep(60)  # interrupted by the shutdown; the method itself is not

    service = Careful(broker_connection=BrokerConnectionDummy())
    async with service:
        await asyncio.wait_for(service.inside.wait(), WAIT)
        await service.request_shutdown("stop")
        asyncio.get_running_loop().call_later(0.05, service.release.set)
    assert service.finished == 1


# --- life cycle with BrokerConnectionDummy --------------------------------------------------------


async def test_life_cycle_with_broker_connection_dummy() -> None:
    order: list[str] = []

    class Publisher(FastIoTService):
        @subscribe(subject=Tick.get_subject())
        async def on_tick(self, tick: Tick) -> None:
            pass

        @reply(subject=AddRequest.get_reply_subject())
        async def add(self, request: AddRequest) -> AddReply:
            return AddReply(total=0)

        async def _start(self) -> None:
            order.append("_start")

        async def _stop(self) -> None:
            order.append("_stop")
            assert self._shutdown_event.is_set()

        @loop
        async def publish(self) -> Any:
            assert self.broker_connection is not None
            await self.broker_connection.publish(Tick.get_subject(), Tick(n=len(order)))
            if "published" not in order:
                order.append("published")
            return asyncio.sleep(0.01)

    dummy = BrokerConnectionDummy()
    service = Publisher(broker_connection=dummy)
    run = asyncio.create_task(service.run())
    await wait_until(lambda: len(dummy.published) >= 3)
    await service.request_shutdown("done")
    await asyncio.wait_for(run, WAIT)
    assert order == ["_start", "published", "_stop"]
    assert all(subject == "v1.tick" for subject, _ in dummy.published)
    assert service.shutdown_exception is None
    assert set(service.subscriptions) == {"on_tick", "add"}

    # A service can be started again after it stopped.
    order.clear()
    async with service:
        await wait_until(lambda: "published" in order)
    assert order == ["_start", "published", "_stop"]


async def test_failing_start_stops_and_propagates() -> None:
    class BadStart(FastIoTService):
        stopped = False

        async def _start(self) -> None:
            raise OSError("port in use")

        async def _stop(self) -> None:
            BadStart.stopped = True

    with pytest.raises(OSError, match="port in use"):
        async with BadStart(broker_connection=BrokerConnectionDummy()):
            pytest.fail("the body must not run")
    assert BadStart.stopped


async def test_tasks_are_awaited_after_stop() -> None:
    order: list[str] = []

    class Graceful(FastIoTService):
        async def _stop(self) -> None:
            order.append("_stop")

    service = Graceful(broker_connection=BrokerConnectionDummy())

    async def cleanup_after_shutdown() -> None:
        await service.wait_for_shutdown()
        await asyncio.sleep(0.01)
        order.append("task finished")

    async with service:
        service.run_task(cleanup_after_shutdown())
    assert order == ["_stop", "task finished"]
    assert service.shutdown_exception is None


async def test_service_id_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTIOT_SERVICE_ID", "press_line_2")
    assert FastIoTService(broker_connection=BrokerConnectionDummy()).service_id == "press_line_2"
    monkeypatch.delenv("FASTIOT_SERVICE_ID")
    assert FastIoTService(broker_connection=BrokerConnectionDummy()).service_id == ""
