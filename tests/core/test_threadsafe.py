"""run_threadsafe, publish_sync and request_sync: from other threads, and on the loop's own thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest

from fastiot.core.broker_connection import BrokerConnectionDummy, NatsBrokerConnection
from fastiot.core.data_models import FastIoTPublish, FastIoTRequest, FastIoTResponse
from fastiot.nats_server import NatsServer

WAIT = 5.0


class Ping(FastIoTPublish):
    n: int


class EchoReply(FastIoTResponse):
    n: int
    thread: str


class EchoRequest(FastIoTRequest):
    _reply_cls = EchoReply
    n: int


async def _echo_service(broker: NatsBrokerConnection, name: str) -> None:
    async def echo(request: EchoRequest) -> EchoReply:
        return EchoReply(n=request.n, thread=threading.current_thread().name)

    await broker.subscribe_reply_cb(EchoRequest.get_reply_subject(name), echo)


# --- from another thread ---------------------------------------------------------------------------


async def test_publish_sync_and_request_sync_from_another_thread(broker: NatsBrokerConnection) -> None:
    received: asyncio.Queue[Ping] = asyncio.Queue()

    async def on_ping(msg: Ping) -> None:
        await received.put(msg)

    await broker.subscribe(Ping.get_subject("thread"), on_ping)
    await _echo_service(broker, "thread")
    loop_thread = threading.current_thread().name

    def worker() -> tuple[Any, Any, str]:
        assert broker.publish_sync(Ping.get_subject("thread"), Ping(n=1), timeout=WAIT) is None
        reply = broker.request_sync(EchoRequest.get_reply_subject("thread"), EchoRequest(n=2), timeout=WAIT)
        future = broker.publish_sync_nowait(Ping.get_subject("thread"), Ping(n=3))
        assert isinstance(future, concurrent.futures.Future)
        future.result(WAIT)
        return reply, threading.current_thread().name, loop_thread

    reply, worker_thread, _ = await asyncio.to_thread(worker)
    assert worker_thread != loop_thread
    assert reply == EchoReply(n=2, thread=loop_thread)  # the handler ran on the loop's thread
    assert (await asyncio.wait_for(received.get(), WAIT)).n == 1
    assert (await asyncio.wait_for(received.get(), WAIT)).n == 3


async def test_run_threadsafe_returns_results_and_reraises(broker: NatsBrokerConnection) -> None:
    async def add(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    async def fail() -> None:
        raise KeyError("from the loop")

    def worker() -> int:
        with pytest.raises(KeyError, match="from the loop"):
            broker.run_threadsafe(fail())
        return broker.run_threadsafe(add(2, 3), timeout=WAIT)

    assert await asyncio.to_thread(worker) == 5


async def test_run_threadsafe_timeout(broker: NatsBrokerConnection) -> None:
    release = asyncio.Event()

    def worker() -> float:
        start = time.monotonic()
        with pytest.raises(concurrent.futures.TimeoutError):
            broker.run_threadsafe(release.wait(), timeout=0.2)
        return time.monotonic() - start

    elapsed = await asyncio.to_thread(worker)
    assert 0.15 < elapsed < 2.0
    release.set()


async def test_request_sync_from_many_threads(broker: NatsBrokerConnection) -> None:
    await _echo_service(broker, "many")

    def worker(n: int) -> int:
        return broker.request_sync(EchoRequest.get_reply_subject("many"), EchoRequest(n=n), timeout=WAIT).n

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        futures = [asyncio.wrap_future(pool.submit(worker, n)) for n in range(32)]
        results = await asyncio.wait_for(asyncio.gather(*futures), 2 * WAIT)
    assert results == list(range(32))


def test_run_threadsafe_without_an_event_loop_says_so() -> None:
    dummy = BrokerConnectionDummy()  # created outside of any running loop

    async def noop() -> None:
        pass

    with pytest.raises(RuntimeError, match="no event loop"):
        dummy.run_threadsafe(noop())


# --- on the loop's own thread -----------------------------------------------------------------------
#
# Every case runs in a fresh interpreter: nest_asyncio2.apply() patches the event loop *class*, so once
# anything in this test session (the workbench tests, say) has applied it, every loop here is nested.
# Blocking calls on the loop's thread are an opt-in per connection (allow_sync_calls_on_loop_thread,
# which the workbench sets); a re-entrant loop alone does not allow them, and the opt-in makes the loop
# re-entrant at the first such call.

LOOP_THREAD_SCRIPT = textwrap.dedent(
    """
    import asyncio
    import gc
    import sys
    import time
    import warnings

    from fastiot.core.broker_connection import NatsBrokerConnection
    from fastiot.core.data_models import FastIoTPublish, FastIoTRequest, FastIoTResponse
    from fastiot.exceptions import SyncCallOnLoopThreadError

    NESTED = sys.argv[1] in ("nested", "nested-not-allowed")
    ALLOWED = sys.argv[1] in ("nested", "allowed")


    class Ping(FastIoTPublish):
        n: int


    class EchoReply(FastIoTResponse):
        n: int


    class EchoRequest(FastIoTRequest):
        _reply_cls = EchoReply
        n: int


    async def answer():
        return 42


    def sync_calls(broker):
        # What a Jupyter cell does: blocking calls on the thread of the running loop.
        results = []
        for name, call in [
            ("publish_sync", lambda: broker.publish_sync(Ping.get_subject("loop"), Ping(n=1))),
            ("request_sync", lambda: broker.request_sync(
                EchoRequest.get_reply_subject("loop"), EchoRequest(n=4), timeout=5.0).n),
            ("run_threadsafe", lambda: broker.run_threadsafe(answer(), timeout=5.0)),
        ]:
            start = time.monotonic()
            try:
                outcome = call()
            except SyncCallOnLoopThreadError as e:
                assert "await" in str(e) and "fastiot.workbench.connection()" in str(e), e
                outcome = "SyncCallOnLoopThreadError"
            assert time.monotonic() - start < 2.0, f"{name} took too long"
            results.append(f"{name}={outcome}")
        return results


    async def main():
        loop = asyncio.get_running_loop()
        if NESTED:
            import nest_asyncio2

            nest_asyncio2.apply(loop)
        broker = await NatsBrokerConnection.connect()
        broker.allow_sync_calls_on_loop_thread = ALLOWED
        received = asyncio.Queue()

        async def on_ping(msg):
            await received.put(msg)

        async def echo(request):
            return EchoReply(n=request.n * 10)

        await broker.subscribe(Ping.get_subject("loop"), on_ping)
        await broker.subscribe_reply_cb(EchoRequest.get_reply_subject("loop"), echo)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results = sync_calls(broker)  # straight from a coroutine
            from_callback = loop.create_future()
            # ... and from a plain function the loop calls (no coroutine frame, the loop's thread)
            loop.call_soon(lambda: from_callback.set_result(sync_calls(broker)))
            results += await asyncio.wait_for(from_callback, 10.0)
            gc.collect()
        never_awaited = [str(w.message) for w in caught if "never awaited" in str(w.message)]
        assert not never_awaited, never_awaited

        if ALLOWED:
            pings = [(await asyncio.wait_for(received.get(), 5.0)).n for _ in range(2)]
            results.append(f"pings={pings}")
        else:
            # the async API works, as the error says
            await broker.publish(Ping.get_subject("loop"), Ping(n=9))
            results.append(f"ping={(await asyncio.wait_for(received.get(), 5.0)).n}")
            assert received.empty()
        await broker.close()
        print(" ".join(results), flush=True)


    asyncio.run(main())
    """
)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (
            "plain",
            "publish_sync=SyncCallOnLoopThreadError request_sync=SyncCallOnLoopThreadError "
            "run_threadsafe=SyncCallOnLoopThreadError " * 2 + "ping=9",
        ),
        (
            "nested-not-allowed",
            "publish_sync=SyncCallOnLoopThreadError request_sync=SyncCallOnLoopThreadError "
            "run_threadsafe=SyncCallOnLoopThreadError " * 2 + "ping=9",
        ),
        ("nested", "publish_sync=None request_sync=40 run_threadsafe=42 " * 2 + "pings=[1, 1]"),
        # The opt-in alone: the first blocking call makes the loop re-entrant.
        ("allowed", "publish_sync=None request_sync=40 run_threadsafe=42 " * 2 + "pings=[1, 1]"),
    ],
    ids=[
        "without-nest-asyncio-raises",
        "re-entrant-loop-without-opt-in-raises",
        "opted-in-completes",
        "opted-in-patches-the-loop-when-needed",
    ],
)
def test_sync_calls_on_the_loop_thread(
    tmp_path: Any, nats_server: NatsServer, mode: str, expected: str
) -> None:
    script = tmp_path / "loop_thread.py"
    script.write_text(LOOP_THREAD_SCRIPT)
    env = {**os.environ, "FASTIOT_NATS_SERVERS": nats_server.url}
    result = subprocess.run(
        [sys.executable, str(script), mode], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected
