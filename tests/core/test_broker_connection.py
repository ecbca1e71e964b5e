"""NatsBrokerConnection against a real nats-server: publish/subscribe, errors, request/reply."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import nats.errors
import pydantic
import pytest

from fastiot.core import _nats_compat
from fastiot.core.broker_connection import (
    ERROR_HEADER,
    BrokerConnectionDummy,
    NatsBrokerConnection,
    Subscription,
    SubscriptionDummy,
)
from fastiot.core.data_models import FastIoTPublish, FastIoTRequest, FastIoTResponse, ReplySubject, Subject
from fastiot.core.serialization import serialize_to_bin
from fastiot.exceptions import DeserializationError, ReplyHandlerError, RequestTimeoutError
from fastiot.msg.thing import Thing
from fastiot.nats_server import NatsServer
from tests.core.fault_helpers import ErrorCollector

WAIT = 5.0  # the longest any single expected event may take


class Counter(FastIoTPublish):
    n: int


class SquareReply(FastIoTResponse):
    result: int


class SquareRequest(FastIoTRequest):
    _reply_cls = SquareReply
    x: int


class DictRequest(FastIoTRequest):
    _reply_cls = dict
    x: int


@pytest.fixture
async def errors_and_broker(
    nats_server: NatsServer,
) -> AsyncIterator[tuple[ErrorCollector, NatsBrokerConnection]]:
    collector = ErrorCollector()
    connection = await NatsBrokerConnection.connect(subscription_error_cb=collector)
    yield collector, connection
    await connection.close()


async def next_item(queue: asyncio.Queue[Any]) -> Any:
    return await asyncio.wait_for(queue.get(), WAIT)


def thing(n: int = 0, name: str = "temp") -> Thing:
    return Thing(machine="press_1", name=name, value=n, unit="degC")


# --- connect ---------------------------------------------------------------------------------------


async def test_connect_uses_the_environment(nats_server: NatsServer) -> None:
    connection = await NatsBrokerConnection.connect()  # FASTIOT_NATS_SERVERS from the nats_env fixture
    try:
        assert connection.is_connected
        assert connection.state == "connected"
        assert connection.connected_url == nats_server.url
    finally:
        await connection.close()
    assert not connection.is_connected
    assert connection.state == "closed"
    await connection.close()  # closing twice is harmless


async def test_closed_cb_is_awaited_on_close(nats_server: NatsServer) -> None:
    closed = asyncio.Event()

    async def on_closed() -> None:
        closed.set()

    connection = await NatsBrokerConnection.connect(closed_cb=on_closed)
    await connection.close()
    await asyncio.wait_for(closed.wait(), WAIT)


async def test_connect_rejects_sync_callbacks() -> None:
    with pytest.raises(TypeError, match="closed_cb"):
        await NatsBrokerConnection.connect(closed_cb=lambda: None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="subscription_error_cb"):
        await NatsBrokerConnection.connect(subscription_error_cb=lambda e: None)  # type: ignore[arg-type]


# --- publish / subscribe ---------------------------------------------------------------------------


async def test_publish_subscribe_with_msg_callback(broker: NatsBrokerConnection) -> None:
    received: asyncio.Queue[Counter] = asyncio.Queue()

    async def on_counter(msg: Counter) -> None:
        await received.put(msg)

    await broker.subscribe(Counter.get_subject(), on_counter)
    for n in range(3):
        await broker.publish(Counter.get_subject(), Counter(n=n))
    got = [await next_item(received) for _ in range(3)]
    assert got == [Counter(n=0), Counter(n=1), Counter(n=2)]
    assert all(isinstance(m, Counter) for m in got)


async def test_publish_subscribe_with_subject_name_callback_and_wildcard(
    broker: NatsBrokerConnection,
) -> None:
    received: asyncio.Queue[tuple[str, Thing]] = asyncio.Queue()

    async def on_thing(subject_name: str, msg: Thing) -> None:
        await received.put((subject_name, msg))

    await broker.subscribe(Thing.get_subject(">"), on_thing)
    sent = thing(7)
    await broker.publish(Thing.get_subject("press_1.temp"), sent)
    await broker.publish(Thing.get_subject("press_2.pressure"), thing(8, "pressure"))
    assert await next_item(received) == ("v1.thing.press_1.temp", sent)
    subject_name, msg = await next_item(received)
    assert subject_name == "v1.thing.press_2.pressure"
    assert msg.value == 8


async def test_messages_cross_connections(broker: NatsBrokerConnection, nats_server: NatsServer) -> None:
    received: asyncio.Queue[Thing] = asyncio.Queue()

    async def on_thing(msg: Thing) -> None:
        await received.put(msg)

    await broker.subscribe(Thing.get_subject("press_1.*"), on_thing)
    await broker.flush()  # the server knows the subscription before the other connection publishes
    publisher = await NatsBrokerConnection.connect()
    try:
        await publisher.publish(Thing.get_subject("press_1.temp"), thing(1))
        assert (await next_item(received)).value == 1
    finally:
        await publisher.close()


async def test_dict_subject(broker: NatsBrokerConnection) -> None:
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def on_dict(msg: dict[str, Any]) -> None:
        await received.put(msg)

    subject = Subject(name="v1.raw_dict", msg_cls=dict)
    await broker.subscribe(subject, on_dict)
    await broker.publish(subject, {"a": [1, 2], "b": "x"})
    assert await next_item(received) == {"a": [1, 2], "b": "x"}


async def test_async_callable_object_is_a_valid_callback(broker: NatsBrokerConnection) -> None:
    class Handler:
        def __init__(self) -> None:
            self.received: asyncio.Queue[Counter] = asyncio.Queue()

        async def __call__(self, msg: Counter) -> None:
            await self.received.put(msg)

    handler = Handler()
    await broker.subscribe(Counter.get_subject("callable"), handler)
    await broker.publish(Counter.get_subject("callable"), Counter(n=3))
    assert await next_item(handler.received) == Counter(n=3)


async def test_publish_with_the_wrong_model_raises_type_error(broker: NatsBrokerConnection) -> None:
    with pytest.raises(TypeError, match="expected a Thing message"):
        await broker.publish(Thing.get_subject("press_1.temp"), Counter(n=1))
    with pytest.raises(TypeError, match="expected a Counter message"):
        await broker.publish(Counter.get_subject(), {"n": 1})


async def test_unsubscribe_stops_delivery(broker: NatsBrokerConnection) -> None:
    received: asyncio.Queue[Counter] = asyncio.Queue()
    control: asyncio.Queue[Counter] = asyncio.Queue()

    async def on_counter(msg: Counter) -> None:
        await received.put(msg)

    async def on_control(msg: Counter) -> None:
        await control.put(msg)

    subject = Counter.get_subject("unsub")
    sub = await broker.subscribe(subject, on_counter)
    await broker.subscribe(subject, on_control)
    await broker.publish(subject, Counter(n=1))
    assert (await next_item(received)).n == 1
    assert (await next_item(control)).n == 1
    await sub.unsubscribe()
    await sub.unsubscribe()  # twice is harmless
    await broker.publish(subject, Counter(n=2))
    # The control subscription got the message, so the unsubscribed one would have had it by now too.
    assert (await next_item(control)).n == 2
    await broker.flush()
    assert received.empty()


async def test_subscribe_msg_queue(broker: NatsBrokerConnection) -> None:
    queue: asyncio.Queue[Thing] = asyncio.Queue()
    sub = await broker.subscribe_msg_queue(Thing.get_subject("queue.*"), queue)
    assert isinstance(sub, Subscription)
    for n in range(5):
        await broker.publish(Thing.get_subject(f"queue.s{n}"), thing(n))
    got = [await next_item(queue) for _ in range(5)]
    assert [m.value for m in got] == [0, 1, 2, 3, 4]
    assert all(isinstance(m, Thing) for m in got)


async def test_subscribe_msg_queue_with_a_bounded_queue_loses_nothing(broker: NatsBrokerConnection) -> None:
    queue: asyncio.Queue[Counter] = asyncio.Queue(maxsize=2)
    await broker.subscribe_msg_queue(Counter.get_subject("bounded"), queue)
    for n in range(20):
        await broker.publish(Counter.get_subject("bounded"), Counter(n=n))
    assert [(await next_item(queue)).n for _ in range(20)] == list(range(20))


# --- callbacks are checked when subscribing --------------------------------------------------------


def sync_callback(msg: Any) -> None:
    pass


async def no_args() -> None:
    pass


async def three_args(a: Any, b: Any, c: Any) -> None:
    pass


async def keyword_only(*, msg: Any) -> None:
    pass


async def generator_cb(msg: Any) -> Any:
    yield msg


@pytest.mark.parametrize(
    ("cb", "match"),
    [
        (sync_callback, "must be an async function"),
        (lambda msg: None, "must be an async function"),
        (generator_cb, "must be an async function"),
        (print, "must be an async function"),
        (no_args, r"must take \(msg\) or \(subject_name, msg\)"),
        (three_args, r"must take \(msg\) or \(subject_name, msg\)"),
        (keyword_only, r"must take \(msg\) or \(subject_name, msg\)"),
    ],
)
async def test_subscribe_rejects_bad_callbacks_at_once(
    broker: NatsBrokerConnection, cb: Any, match: str
) -> None:
    subs_before = _nats_compat.client_subscription_count(broker.client)
    with pytest.raises(TypeError, match=match):
        await broker.subscribe(Counter.get_subject(), cb)
    with pytest.raises(TypeError, match=match):
        await broker.subscribe_reply_cb(SquareRequest.get_reply_subject(), cb)
    with pytest.raises(TypeError, match=match):
        await BrokerConnectionDummy().subscribe(Counter.get_subject(), cb)
    assert (
        _nats_compat.client_subscription_count(broker.client) == subs_before
    )  # nothing was subscribed at the server


async def test_callbacks_with_defaults_and_varargs_are_accepted(broker: NatsBrokerConnection) -> None:
    received: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

    async def with_default(subject_name: str, msg: Any, extra: int = 1) -> None:
        await received.put(("default", msg.n, extra))

    async def with_keyword_only(msg: Any, *, flag: bool = False) -> None:
        await received.put(("keyword", msg.n, flag))

    async def with_varargs(*args: Any) -> None:
        await received.put(("varargs", *args))

    await broker.subscribe(Counter.get_subject("sig"), with_default)
    await broker.subscribe(Counter.get_subject("sig2"), with_varargs)
    await broker.publish(Counter.get_subject("sig"), Counter(n=1))
    assert await next_item(received) == ("default", 1, 1)
    await broker.publish(Counter.get_subject("sig2"), Counter(n=2))
    assert await next_item(received) == ("varargs", "v1.counter.sig2", Counter(n=2))
    await broker.subscribe(Counter.get_subject("sig3"), with_keyword_only)
    await broker.publish(Counter.get_subject("sig3"), Counter(n=3))
    assert await next_item(received) == ("keyword", 3, False)


async def test_subscribe_reply_cb_needs_a_reply_subject(broker: NatsBrokerConnection) -> None:
    async def handler(msg: Any) -> Any:
        return msg

    with pytest.raises(TypeError, match="ReplySubject"):
        await broker.subscribe_reply_cb(Counter.get_subject(), handler)  # type: ignore[arg-type]


# --- handler errors are reported and the subscription goes on --------------------------------------


async def _assert_error_then_next_delivered(
    collector: ErrorCollector,
    broker: NatsBrokerConnection,
    subject: Subject,
    send_bad: Any,
    expected_cause: type[BaseException],
    cause_match: str,
) -> Subscription:
    delivered: asyncio.Queue[Counter] = asyncio.Queue()

    async def handler(msg: Counter) -> Any:
        if msg.n == -1:
            raise RuntimeError("boom on -1")
        if msg.n == -2:
            return "unexpected"
        await delivered.put(msg)
        return None

    sub = await broker.subscribe(subject, handler)
    await send_bad()
    err = await collector.next()
    # The handler's own exception (or the decode / validation error), with the message attached.
    assert isinstance(err, expected_cause), err
    assert err.subject == subject.name  # type: ignore[attr-defined]
    assert isinstance(err.payload, bytes)  # type: ignore[attr-defined]
    assert cause_match in str(err)
    # The subscription keeps delivering, more than once, and the error is kept for check_pending_error.
    for n in (1, 2):
        await broker.publish(subject, Counter(n=n))
        assert (await next_item(delivered)).n == n
    with pytest.raises(expected_cause) as pending:
        sub.check_pending_error()
    assert pending.value is err
    sub.check_pending_error()  # only once
    assert collector.errors.empty()
    return sub


async def test_callback_that_raises_is_reported(
    errors_and_broker: tuple[ErrorCollector, NatsBrokerConnection],
) -> None:
    collector, broker = errors_and_broker
    subject = Counter.get_subject("raises")
    await _assert_error_then_next_delivered(
        collector, broker, subject, lambda: broker.publish(subject, Counter(n=-1)), RuntimeError, "boom on -1"
    )


async def test_callback_that_returns_a_value_is_reported(
    errors_and_broker: tuple[ErrorCollector, NatsBrokerConnection],
) -> None:
    collector, broker = errors_and_broker
    subject = Counter.get_subject("returns")
    await _assert_error_then_next_delivered(
        collector,
        broker,
        subject,
        lambda: broker.publish(subject, Counter(n=-2)),
        TypeError,
        "must return None",
    )


async def test_payload_that_does_not_decode_is_reported(
    errors_and_broker: tuple[ErrorCollector, NatsBrokerConnection],
) -> None:
    collector, broker = errors_and_broker
    subject = Counter.get_subject("garbage")
    sub = await _assert_error_then_next_delivered(
        collector,
        broker,
        subject,
        lambda: broker.publish_raw(subject.name, b"\xc1\xc1 not msgpack"),
        DeserializationError,
        "not valid msgpack",
    )
    assert sub.errors == 1  # type: ignore[attr-defined]
    assert sub.received == 3  # type: ignore[attr-defined]


async def test_payload_that_does_not_validate_is_reported(
    errors_and_broker: tuple[ErrorCollector, NatsBrokerConnection],
) -> None:
    collector, broker = errors_and_broker
    subject = Counter.get_subject("invalid")
    wrong = serialize_to_bin(dict, {"n": "not an int"})
    await _assert_error_then_next_delivered(
        collector,
        broker,
        subject,
        lambda: broker.publish_raw(subject.name, wrong),
        pydantic.ValidationError,
        "n",
    )


async def test_raise_pending_error(broker: NatsBrokerConnection) -> None:
    async def handler(msg: Counter) -> None:
        raise ValueError(f"bad {msg.n}")

    sub = await broker.subscribe(Counter.get_subject("pending"), handler)
    with pytest.raises(asyncio.TimeoutError):
        await sub.raise_pending_error(timeout=0.05)
    await broker.publish(Counter.get_subject("pending"), Counter(n=4))
    with pytest.raises(ValueError, match="bad 4") as info:
        await sub.raise_pending_error(timeout=WAIT)
    assert info.value.subject == "v1.counter.pending"  # type: ignore[attr-defined]


async def test_a_failing_error_callback_does_not_stop_the_subscription(nats_server: NatsServer) -> None:
    calls: list[Exception] = []

    async def failing_error_cb(err: Exception) -> None:
        calls.append(err)
        raise RuntimeError("the error callback itself fails")

    connection = await NatsBrokerConnection.connect(subscription_error_cb=failing_error_cb)
    try:
        delivered: asyncio.Queue[int] = asyncio.Queue()

        async def handler(msg: Counter) -> None:
            if msg.n < 0:
                raise ValueError("negative")
            await delivered.put(msg.n)

        await connection.subscribe(Counter.get_subject("errcb"), handler)
        await connection.publish(Counter.get_subject("errcb"), Counter(n=-1))
        await connection.publish(Counter.get_subject("errcb"), Counter(n=5))
        assert await next_item(delivered) == 5
        assert len(calls) == 1 and isinstance(calls[0], ValueError)
    finally:
        await connection.close()


# --- request / reply -------------------------------------------------------------------------------


async def test_request_reply(broker: NatsBrokerConnection) -> None:
    async def square(request: SquareRequest) -> SquareReply:
        return SquareReply(result=request.x * request.x)

    await broker.subscribe_reply_cb(SquareRequest.get_reply_subject(), square)
    reply = await broker.request(SquareRequest.get_reply_subject(), SquareRequest(x=7), timeout=WAIT)
    assert reply == SquareReply(result=49)
    assert isinstance(reply, SquareReply)


async def test_request_reply_with_subject_name_and_hierarchy(broker: NatsBrokerConnection) -> None:
    async def square(subject_name: str, request: SquareRequest) -> SquareReply:
        assert subject_name == "v1.square_request.press_1"
        return SquareReply(result=request.x + 1)

    await broker.subscribe_reply_cb(SquareRequest.get_reply_subject("*"), square)
    reply = await broker.request(SquareRequest.get_reply_subject("press_1"), SquareRequest(x=1), timeout=WAIT)
    assert reply.result == 2


async def test_request_reply_with_dict_reply(broker: NatsBrokerConnection) -> None:
    async def handler(request: DictRequest) -> dict[str, Any]:
        return {"double": request.x * 2}

    await broker.subscribe_reply_cb(DictRequest.get_reply_subject(), handler)
    assert await broker.request(DictRequest.get_reply_subject(), DictRequest(x=4), timeout=WAIT) == {
        "double": 8
    }


async def test_request_across_connections(broker: NatsBrokerConnection) -> None:
    async def square(request: SquareRequest) -> SquareReply:
        return SquareReply(result=request.x**2)

    replier = await NatsBrokerConnection.connect()
    try:
        await replier.subscribe_reply_cb(SquareRequest.get_reply_subject("remote"), square)
        await replier.flush()
        results = await asyncio.gather(
            *(
                broker.request(SquareRequest.get_reply_subject("remote"), SquareRequest(x=i), timeout=WAIT)
                for i in range(20)
            )
        )
        assert [r.result for r in results] == [i * i for i in range(20)]
    finally:
        await replier.close()


async def test_request_uses_the_shared_response_inbox(broker: NatsBrokerConnection) -> None:
    async def square(request: SquareRequest) -> SquareReply:
        return SquareReply(result=request.x)

    await broker.subscribe_reply_cb(SquareRequest.get_reply_subject("inbox"), square)
    await broker.request(SquareRequest.get_reply_subject("inbox"), SquareRequest(x=0), timeout=WAIT)
    subs_after_first = _nats_compat.client_subscription_count(broker.client)
    for i in range(10):
        await broker.request(SquareRequest.get_reply_subject("inbox"), SquareRequest(x=i), timeout=WAIT)
    assert _nats_compat.client_subscription_count(broker.client) == subs_after_first


@pytest.mark.parametrize(
    ("handler_kind", "match"),
    [("raises", r"RuntimeError: cannot square 3"), ("wrong_type", r"returned Counter.*expects SquareReply")],
)
async def test_failing_reply_handler_fails_the_request_promptly(
    errors_and_broker: tuple[ErrorCollector, NatsBrokerConnection], handler_kind: str, match: str
) -> None:
    collector, broker = errors_and_broker

    async def handler(request: SquareRequest) -> Any:
        if request.x == 3:
            if handler_kind == "raises":
                raise RuntimeError("cannot square 3")
            return Counter(n=3)
        return SquareReply(result=request.x**2)

    subject = SquareRequest.get_reply_subject(handler_kind)
    await broker.subscribe_reply_cb(subject, handler)
    start = time.monotonic()
    with pytest.raises(ReplyHandlerError, match=match) as info:
        await broker.request(subject, SquareRequest(x=3), timeout=20.0)
    assert time.monotonic() - start < 2.0  # an answer, not the 20 s timeout
    assert info.value.subject == subject.name
    assert subject.name in str(info.value)
    err = await collector.next()  # the replier side reports it too
    assert isinstance(err, (RuntimeError, TypeError)) and err.subject == subject.name  # type: ignore[attr-defined]
    # The reply subscription keeps answering.
    assert (await broker.request(subject, SquareRequest(x=4), timeout=WAIT)).result == 16


async def test_reply_handler_error_travels_in_a_header(broker: NatsBrokerConnection) -> None:
    async def handler(request: SquareRequest) -> SquareReply:
        raise ValueError("line one\nline two")

    await broker.subscribe_reply_cb(SquareRequest.get_reply_subject("header"), handler)
    raw = await broker.client.request(
        "v1.square_request.header", serialize_to_bin(SquareRequest, SquareRequest(x=1)), timeout=WAIT
    )
    assert raw.headers is not None
    assert raw.headers[ERROR_HEADER] == "ValueError: line one line two"


@pytest.mark.parametrize(
    "text", ["température ü 😀", "nul\x00byte", "x" * 100_000, "tab\there: colon\r\nnext line"]
)
async def test_any_error_text_reaches_the_requester(broker: NatsBrokerConnection, text: str) -> None:
    async def handler(request: SquareRequest) -> SquareReply:
        raise ValueError(text)

    subject = SquareRequest.get_reply_subject("texts")
    await broker.subscribe_reply_cb(subject, handler)
    with pytest.raises(ReplyHandlerError, match="ValueError") as info:
        await broker.request(subject, SquareRequest(x=1), timeout=WAIT)
    assert info.value.remote_error.startswith(
        f"ValueError: {text[:20]}".replace("\r", " ").replace("\n", " ")
    )
    assert len(info.value.remote_error) <= 4000


async def test_reply_handler_gets_an_undecodable_request(broker: NatsBrokerConnection) -> None:
    async def handler(request: SquareRequest) -> SquareReply:
        return SquareReply(result=0)

    await broker.subscribe_reply_cb(SquareRequest.get_reply_subject("garbage"), handler)
    raw = await broker.client.request("v1.square_request.garbage", b"\xc1", timeout=WAIT)
    assert raw.headers is not None and "DeserializationError" in raw.headers[ERROR_HEADER]


async def test_request_raw_sends_any_bytes_with_headers_and_fails_as_request_does(
    broker: NatsBrokerConnection,
) -> None:
    async def shout(msg: Any) -> None:
        await broker.client.publish(msg.reply, msg.data.upper(), headers={"seen": msg.headers["trace"]})

    async def silent(msg: Any) -> None:
        pass

    await broker.subscribe_raw("v1.raw_request.shout", shout)
    await broker.subscribe_raw("v1.raw_request.silent", silent)
    await broker.flush()
    reply = await broker.request_raw("v1.raw_request.shout", b"hello", headers={"trace": "t1"}, timeout=WAIT)
    assert reply.data == b"HELLO" and reply.headers == {"seen": "t1"}

    with pytest.raises(RequestTimeoutError) as timed_out:
        await broker.request_raw("v1.raw_request.silent", b"hello", timeout=0.2)
    assert timed_out.value.subject == "v1.raw_request.silent" and timed_out.value.timeout == 0.2

    async def failing(request: SquareRequest) -> SquareReply:
        raise ValueError("no square today")

    await broker.subscribe_reply_cb(SquareRequest.get_reply_subject("raw"), failing)
    with pytest.raises(ReplyHandlerError, match="no square today"):
        await broker.request_raw(
            "v1.square_request.raw", serialize_to_bin(SquareRequest, SquareRequest(x=1)), timeout=WAIT
        )


async def test_request_with_nobody_listening_fails_within_its_timeout(broker: NatsBrokerConnection) -> None:
    start = time.monotonic()
    with pytest.raises((nats.errors.NoRespondersError, nats.errors.TimeoutError)):
        await broker.request(SquareRequest.get_reply_subject("nobody"), SquareRequest(x=1), timeout=1.0)
    assert time.monotonic() - start < 1.5


async def test_request_times_out_when_the_handler_is_too_slow(broker: NatsBrokerConnection) -> None:
    release = asyncio.Event()

    async def slow(request: SquareRequest) -> SquareReply:
        await release.wait()
        return SquareReply(result=0)

    await broker.subscribe_reply_cb(SquareRequest.get_reply_subject("slow"), slow)
    start = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):  # nats.errors.TimeoutError is one
        await broker.request(SquareRequest.get_reply_subject("slow"), SquareRequest(x=1), timeout=0.3)
    assert 0.25 < time.monotonic() - start < 2.0
    release.set()


async def test_request_default_timeout_comes_from_the_environment(
    broker: NatsBrokerConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = asyncio.Event()

    async def slow(request: SquareRequest) -> SquareReply:
        await release.wait()
        return SquareReply(result=0)

    await broker.subscribe_reply_cb(SquareRequest.get_reply_subject("envtimeout"), slow)
    monkeypatch.setenv("FASTIOT_NATS_DEFAULT_TIMEOUT", "0.3")
    start = time.monotonic()
    with pytest.raises(nats.errors.TimeoutError):
        await broker.request(SquareRequest.get_reply_subject("envtimeout"), SquareRequest(x=1))
    assert time.monotonic() - start < 2.0
    release.set()


async def test_request_with_the_wrong_model_raises_type_error(broker: NatsBrokerConnection) -> None:
    with pytest.raises(TypeError, match="expected a SquareRequest message"):
        await broker.request(SquareRequest.get_reply_subject(), Counter(n=1), timeout=1.0)


async def test_reply_subject_built_by_hand(broker: NatsBrokerConnection) -> None:
    subject = ReplySubject(name="v1.by_hand", msg_cls=dict, reply_cls=dict)

    async def echo(msg: dict[str, Any]) -> dict[str, Any]:
        return {"echo": msg}

    await broker.subscribe_reply_cb(subject, echo)
    assert await broker.request(subject, {"a": 1}, timeout=WAIT) == {"echo": {"a": 1}}


# --- the dummy -------------------------------------------------------------------------------------


async def test_broker_connection_dummy() -> None:
    dummy = BrokerConnectionDummy(max_published=2)
    assert dummy.is_connected

    async def on_counter(msg: Counter) -> None:
        pass

    sub = await dummy.subscribe(Counter.get_subject(), on_counter)
    assert isinstance(sub, SubscriptionDummy)
    sub.check_pending_error()
    await sub.raise_pending_error(timeout=0.01)
    await sub.unsubscribe()
    for n in range(3):
        await dummy.publish(Counter.get_subject(), Counter(n=n))
    assert list(dummy.published) == [("v1.counter", Counter(n=1)), ("v1.counter", Counter(n=2))]
    with pytest.raises(TypeError):
        await dummy.publish(Counter.get_subject(), Thing(machine="m", name="n", value=1))
    with pytest.raises(nats.errors.NoRespondersError):
        await dummy.request(SquareRequest.get_reply_subject(), SquareRequest(x=1), timeout=1.0)
    with pytest.raises(TypeError):
        await dummy.request(SquareRequest.get_reply_subject(), Counter(n=1), timeout=1.0)
    await dummy.close()


async def test_flush_means_the_server_has_every_publish_sent_before_it(broker, nats_server) -> None:
    # nats-py's own flush() can overtake publishes still in its write buffer; ours must not.
    from fastiot.core.broker_connection import NatsBrokerConnection
    from fastiot.msg.thing import Thing

    counted = 0

    async def count(msg) -> None:
        nonlocal counted
        counted += 1

    listener = await NatsBrokerConnection.connect(servers=nats_server.url)
    try:
        sub = await listener.subscribe_raw("v1.thing.flush_order.>", count)
        await listener.flush()
        for round_ in range(5):
            for i in range(2_000):
                thing = Thing(machine="m", name="v", value=i)
                await broker.publish(Thing.get_subject("flush_order.v"), thing)
            await broker.flush()
            # The listener's PONG comes after every message the server routed to it before its PING.
            await listener.flush()
            for _ in range(1000):  # let the callback task work through what already arrived
                if sub.pending_msgs == 0:
                    break
                await asyncio.sleep(0.001)
            assert counted == 2_000 * (round_ + 1)
    finally:
        await listener.close()


async def test_subscribing_and_unsubscribing_leaves_no_bookkeeping_behind(broker) -> None:
    import gc

    from fastiot.msg.thing import Thing

    async def on_thing(thing: Thing) -> None:
        pass

    before = len(broker._subscriptions_by_sid)  # the slow-consumer lookup by subscription id
    for _ in range(200):
        subscription = await broker.subscribe(Thing.get_subject("churn.>"), on_thing)
        await subscription.unsubscribe()
    del subscription
    for _ in range(10):  # nats-py's per-subscription tasks end on the next turns of the loop
        await asyncio.sleep(0)
    gc.collect()
    assert len(broker._subscriptions_by_sid) == before
