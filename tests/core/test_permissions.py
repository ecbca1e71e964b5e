"""A refusal by the server is an error on the operation that asked, at once, never only a log line.

Against a real nats-server with per-user permissions (``tests/lockdown.py``). Every call that the server
refuses is given a long timeout and the test a short bound: a refusal found by waiting would fail it.
"""

from __future__ import annotations

import asyncio
import json

import nats.errors
import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.data_models import ReplySubject, Subject
from fastiot.core.permissions import RefusalWatch, jetstream_call, parse_refusal
from fastiot.exceptions import FastIoTError, PermissionDeniedError
from fastiot.msg.thing import Thing
from fastiot.nats_server import NatsServer
from tests.lockdown import authorization, connect_as, locked_down_server
from tests.waits import wait_until

# Longer than any test may take: a call that waits for it instead of hearing the refusal fails the test.
LONG = 60.0
BOUND = 10.0


def test_the_error_is_ours_and_a_permission_error() -> None:
    err = PermissionDeniedError(">", "subscribe")
    assert isinstance(err, FastIoTError)
    assert isinstance(err, PermissionError)
    assert (err.subject, err.operation) == (">", "subscribe")
    assert "narrower pattern" in str(err) and "administrator" in str(err)


@pytest.mark.parametrize(
    ("text", "operation", "subject", "queue"),
    [
        ('nats: permissions violation for subscription to ">"', "subscribe", ">", None),
        ('nats: permissions violation for subscription to "x.y" using queue "q"', "subscribe", "x.y", "q"),
        (
            'nats: permissions violation for subscription to "v1.thing.>" (sid "1")',
            "subscribe",
            "v1.thing.>",
            None,
        ),
        (
            'nats: permissions violation for publish to "$js.api.stream.create.s"',
            "publish",
            "$js.api.stream.create.s",
            None,
        ),
    ],
)
def test_parse_refusal_reads_what_nats_py_hands_over(
    text: str, operation: str, subject: str, queue: str | None
) -> None:
    refusal = parse_refusal(nats.errors.Error(text))
    assert refusal is not None
    assert (refusal.operation, refusal.subject, refusal.queue) == (operation, subject, queue)


def test_other_errors_are_no_refusals() -> None:
    assert parse_refusal(nats.errors.Error("nats: stale connection")) is None


@pytest.mark.parametrize(
    ("rest", "call"),
    [
        ("stream.create.plant", "STREAM.CREATE"),
        ("stream.msg.get.plant", "STREAM.MSG.GET"),
        ("consumer.create.plant.c1.v1.>", "CONSUMER.CREATE"),
        ("info", "INFO"),
        ("stream.info.info", "STREAM.INFO"),
    ],
)
def test_jetstream_call_names_the_api_call(rest: str, call: str) -> None:
    assert jetstream_call(rest) == call


def test_a_refusal_watch_keeps_a_bounded_number() -> None:
    watch = RefusalWatch(kept=3)
    for n in range(10):
        refusal = parse_refusal(Exception(f'permissions violation for publish to "s.{n}"'))
        assert refusal is not None
        watch.record(refusal)
    assert watch.count == 10
    assert [r.subject for r in watch.recent] == ["s.7", "s.8", "s.9"]
    err = watch.take_publish_refusals()
    assert err is not None and err.more == 9
    assert watch.take_publish_refusals() is None


async def test_a_refused_subscription_raises_at_once_and_the_connection_keeps_working(
    viewer: NatsBrokerConnection, admin: NatsBrokerConnection
) -> None:
    received: list[str] = []

    async def on_raw(msg: nats.aio.msg.Msg) -> None:
        received.append(msg.subject)

    with pytest.raises(PermissionDeniedError) as caught:
        await asyncio.wait_for(viewer.subscribe_raw(">", on_raw), BOUND)
    assert (caught.value.subject, caught.value.operation) == (">", "subscribe")

    # What the user may read still arrives on the same connection.
    allowed = await viewer.subscribe_raw("v1.thing.press_1.>", on_raw)
    await admin.publish(Thing.get_subject("press_1.temp"), Thing(name="temp", machine="press_1", value=1))
    await admin.flush()
    await wait_until(lambda: bool(received), BOUND, "the permitted message")
    assert received == ["v1.thing.press_1.temp"]
    assert viewer.is_connected
    await allowed.unsubscribe()


async def test_a_refused_typed_subscription_names_its_subject(viewer: NatsBrokerConnection) -> None:
    async def on_thing(thing: Thing) -> None:
        pass

    subject = Subject(name="v1.other.thing", msg_cls=Thing)
    with pytest.raises(PermissionDeniedError) as caught:
        await asyncio.wait_for(viewer.subscribe(subject, on_thing), BOUND)
    assert caught.value.subject == "v1.other.thing"


async def test_a_refused_reply_handler_raises(viewer: NatsBrokerConnection) -> None:
    async def answer(thing: Thing) -> Thing:
        return thing

    subject = ReplySubject(name="v1.ask.thing", msg_cls=Thing, reply_cls=Thing)
    with pytest.raises(PermissionDeniedError):
        await asyncio.wait_for(viewer.subscribe_reply_cb(subject, answer), BOUND)


async def test_a_refused_publish_is_reported_by_the_next_flush(locked_down: NatsServer) -> None:
    press1 = await connect_as(locked_down, "press1")
    try:
        await press1.publish_raw("cmd.press_1.stop", b"now")
        await press1.publish_raw("cmd.press_1.start", b"now")
        with pytest.raises(PermissionDeniedError) as caught:
            await asyncio.wait_for(press1.flush(), BOUND)
        assert (caught.value.subject, caught.value.operation) == ("cmd.press_1.stop", "publish")
        assert caught.value.more == 1
        assert "1 more refusal" in str(caught.value)
        await press1.flush()  # reported once; nothing new was refused since
        assert press1.is_connected
    finally:
        await press1.close()


async def test_a_request_to_a_refused_subject_raises_without_waiting(locked_down: NatsServer) -> None:
    press1 = await connect_as(locked_down, "press1")
    try:
        with pytest.raises(PermissionDeniedError) as caught:
            await asyncio.wait_for(press1.request_raw("svc.status", b"", timeout=LONG), BOUND)
        assert (caught.value.subject, caught.value.operation) == ("svc.status", "publish")
    finally:
        await press1.close()


async def test_a_request_without_the_reply_inbox_raises_every_time(locked_down: NatsServer) -> None:
    noinbox = await connect_as(locked_down, "noinbox")
    try:
        for _ in range(2):  # the second request sends no new SUB: it must not wait either
            with pytest.raises(PermissionDeniedError) as caught:
                await asyncio.wait_for(noinbox.request_raw("v1.ask", b"", timeout=LONG), BOUND)
            assert caught.value.operation == "subscribe"
            assert caught.value.subject.lower().startswith("_inbox.")
            assert "FASTIOT_NATS_INBOX_PREFIX" in str(caught.value)
    finally:
        await noinbox.close()


async def test_a_typed_request_to_a_refused_subject_raises(locked_down: NatsServer) -> None:
    press1 = await connect_as(locked_down, "press1")
    try:
        subject = ReplySubject(name="v1.ask.thing", msg_cls=Thing, reply_cls=Thing)
        with pytest.raises(PermissionDeniedError):
            await asyncio.wait_for(
                press1.request(subject, Thing(name="t", machine="m", value=1), timeout=LONG), BOUND
            )
    finally:
        await press1.close()


async def test_a_permitted_request_still_gets_its_reply(
    locked_down: NatsServer, admin: NatsBrokerConnection
) -> None:
    async def answer(msg: nats.aio.msg.Msg) -> None:
        await admin.publish_raw(msg.reply, b"pong")

    sub = await admin.subscribe_raw("v1.thing.ping", answer)
    viewer = await connect_as(locked_down, "nojs")
    try:
        reply = await viewer.request_raw("v1.thing.ping", b"", timeout=BOUND)
        assert reply.data == b"pong"
    finally:
        await viewer.close()
        await sub.unsubscribe()


async def test_a_subscription_refused_later_tells_its_owner() -> None:
    with locked_down_server() as server:
        viewer = await connect_as(server, "viewer")
        try:
            refusals: list[PermissionDeniedError] = []

            async def on_raw(msg: nats.aio.msg.Msg) -> None:
                pass

            sub = await viewer.subscribe_raw("v1.thing.>", on_raw)
            sub.on_refused = refusals.append
            assert sub.refusal is None

            # The administrator takes the permission away and reloads the server.
            changed = authorization()
            for user in changed["users"]:
                if user["user"] == "viewer":
                    user["permissions"]["subscribe"]["allow"] = ["v1.other.>", "_INBOX.>"]
            server.authorization = changed
            server.reload()

            await wait_until(lambda: bool(refusals), BOUND, "the late refusal")
            assert refusals[0].subject == "v1.thing.>"
            assert sub.refusal is refusals[0]
            assert viewer.is_connected
        finally:
            await viewer.close()


async def test_the_server_config_of_the_lockdown_is_what_nats_server_reads(locked_down: NatsServer) -> None:
    # A config nats-server silently misreads would make every refusal test above pass for the wrong reason.
    assert json.loads(locked_down._config())["authorization"] == authorization()
    admin = await connect_as(locked_down, "admin")
    try:

        async def on_raw(msg: nats.aio.msg.Msg) -> None:
            pass

        sub = await admin.subscribe_raw(">", on_raw)  # the admin may; nothing is refused
        assert admin.refusals.count == 0
        await sub.unsubscribe()
    finally:
        await admin.close()


async def test_a_request_cancelled_from_outside_stays_cancelled_not_refused(
    locked_down: NatsServer, admin: NatsBrokerConnection
) -> None:
    # The guard cancels a request's own task when the server refuses it; a cancel from anywhere else
    # (an outer timeout) must come through as what it is, and the connection keeps working after both.
    nojs = await connect_as(locked_down, "nojs")

    async def never_answer(msg: nats.aio.msg.Msg) -> None:
        pass

    silent = await admin.subscribe_raw("v1.thing.never_answers", never_answer)
    try:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(nojs.request_raw("v1.thing.never_answers", b"", timeout=LONG), 0.2)
        with pytest.raises(PermissionDeniedError):
            await asyncio.wait_for(nojs.request_raw("$JS.API.INFO", b"", timeout=LONG), BOUND)

        async def answer(msg: nats.aio.msg.Msg) -> None:
            await admin.publish_raw(msg.reply, b"pong")

        sub = await admin.subscribe_raw("v1.thing.ping_after", answer)
        reply = await asyncio.wait_for(nojs.request_raw("v1.thing.ping_after", b"", timeout=BOUND), BOUND)
        assert reply.data == b"pong"
        await sub.unsubscribe()
    finally:
        await silent.unsubscribe()
        await nojs.close()
