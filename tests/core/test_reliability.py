"""Issue 10, the connection's part: what a client, a handler or a timeout does must not leave it deaf,
leak credentials, or say the wrong thing. Each test failed before its fix."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import textwrap
import threading
from typing import Any

import nats.errors
import pydantic
import pytest

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.data_models import FastIoTPublish, FastIoTRequest, FastIoTResponse
from fastiot.exceptions import (
    BadMessageError,
    BrokerAuthenticationError,
    BrokerUnavailableError,
    DeserializationError,
    RequestTimeoutError,
)
from fastiot.nats_server import NatsServer, find_free_port
from tests.core.fault_helpers import ErrorCollector, HangingHandler
from tests.waits import wait_until

WAIT = 10.0
CLEAN_UP_STEPS = 100


class Reading(FastIoTPublish):
    value: int


class Answer(FastIoTResponse):
    value: int


class Question(FastIoTRequest):
    _reply_cls = Answer
    value: int


async def _raw_client(server: NatsServer, commands: bytes) -> None:
    """Send protocol lines as any client may, bypassing every client library's checks."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        info = await asyncio.wait_for(reader.readline(), WAIT)
        assert info.startswith(b"INFO")
        connect = json.dumps({"verbose": False, "pedantic": False, "headers": True}).encode()
        writer.write(b"CONNECT " + connect + b"\r\n" + commands + b"PING\r\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.readline(), WAIT) == b"PONG\r\n"  # the server took them all
    finally:
        writer.close()


def _hpub(subject: bytes, headers: bytes, payload: bytes) -> bytes:
    return b"HPUB %s %d %d\r\n%s%s\r\n" % (
        subject,
        len(headers),
        len(headers) + len(payload),
        headers,
        payload,
    )


# --- defect 4: a malformed message from any client must not silence the connection ------------------


async def test_a_message_that_is_not_utf8_is_reported_and_delivery_goes_on(nats_server: NatsServer) -> None:
    errors = ErrorCollector()
    connection = await NatsBrokerConnection.connect(subscription_error_cb=errors)
    try:
        delivered: asyncio.Queue[str] = asyncio.Queue()

        async def browser(msg: Any) -> None:  # what a subject browser on '>' does
            await delivered.put(msg.subject)

        subscription = await connection.subscribe_raw("reliability.>", browser)
        everything = await connection.subscribe_raw(">", browser)
        await connection.flush()
        await _raw_client(
            nats_server,
            b"PUB \xff\xfe 5\r\nhello\r\n"  # a subject that is not UTF-8
            + _hpub(b"reliability.bad", b"NATS/1.0 503 \xff\xfe\r\n\r\n", b"hello")  # a header line either
            + b"PUB reliability.good 2\r\nok\r\n",
        )
        # The good message after the bad ones arrives: the read loop lives.
        seen = [await asyncio.wait_for(delivered.get(), WAIT) for _ in range(2)]
        assert seen == ["reliability.good", "reliability.good"]
        bad = [await errors.next() for _ in range(3)]  # the subject once (on '>'), the header twice
        assert all(isinstance(e, BadMessageError) for e in bad), bad
        assert sorted(e.subject for e in bad) == [b"reliability.bad", b"reliability.bad", b"\xff\xfe"]
        by_subject = {e.subject: e for e in bad}
        assert by_subject[b"\xff\xfe"].payload == b"hello" and "\\xff\\xfe" in str(by_subject[b"\xff\xfe"])
        assert by_subject[b"reliability.bad"].headers == b"NATS/1.0 503 \xff\xfe\r\n\r\n"
        assert connection.bad_messages == 3
        assert subscription.errors == 1 and everything.errors == 2
        # ... and stays truthful: still connected, and its own messages still arrive.
        assert connection.state == "connected"
        await connection.publish_raw("reliability.own", b"")
        assert await asyncio.wait_for(delivered.get(), WAIT) == "reliability.own"
    finally:
        await connection.close()


async def test_close_cancels_an_error_report_still_running_and_waits_for_its_clean_up(
    nats_server: NatsServer,
) -> None:
    entered = asyncio.Event()
    cleaned_up = asyncio.Event()

    async def error_cb(err: Exception) -> None:  # hangs on the report of a malformed message
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            for _ in range(CLEAN_UP_STEPS):  # a clean-up that awaits (closing a file, a socket, ...)
                await asyncio.sleep(0)
            cleaned_up.set()
            raise

    async def handler(msg: Any) -> None:
        pass

    connection = await NatsBrokerConnection.connect(subscription_error_cb=error_cb)
    try:
        await connection.subscribe_raw("reliability.hang", handler)
        await connection.flush()
        await _raw_client(nats_server, _hpub(b"reliability.hang", b"NATS/1.0 503 \xff\xfe\r\n\r\n", b"x"))
        await asyncio.wait_for(entered.wait(), WAIT)
    finally:
        await connection.close()
    assert cleaned_up.is_set()  # the report task is not left running on the loop after close()


# --- defect 5: credentials in a URL never appear in errors or logs ----------------------------------


async def test_credentials_in_a_url_do_not_leak_into_errors_or_logs(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    fastiot_logger = logging.getLogger("fastiot")
    monkeypatch.setattr(fastiot_logger, "propagate", True)  # let caplog see fastiot's own log lines
    dead = f"nats://alice:s3cret-pw@127.0.0.1:{find_free_port()}"
    monkeypatch.setenv("FASTIOT_NATS_SERVERS", dead)
    with pytest.raises(BrokerUnavailableError) as unavailable:
        await NatsBrokerConnection.connect(connect_timeout=1.0)
    assert "s3cret-pw" not in str(unavailable.value) and "alice" not in str(unavailable.value)
    assert "nats://***:***@127.0.0.1" in str(unavailable.value)

    with NatsServer(user="alice", password="right-pw") as server:
        wrong = f"nats://alice:wrong-pw@{server.host}:{server.port}"
        with pytest.raises(BrokerAuthenticationError) as rejected:
            await NatsBrokerConnection.connect(servers=wrong, connect_timeout=2.0)
        assert "wrong-pw" not in str(rejected.value) and "***" in str(rejected.value)

        good = f"nats://alice:right-pw@{server.host}:{server.port}"
        connection = await NatsBrokerConnection.connect(servers=good, reconnect_time_wait=0.1)
        try:
            assert connection.connected_url == f"nats://{server.host}:{server.port}"
            lost = asyncio.Event()
            connection.on_state_change(lambda state: lost.set() if state == "reconnecting" else None)
            server.kill()
            await asyncio.wait_for(lost.wait(), WAIT)
            # each failed attempt is logged (at DEBUG)
            await wait_until(lambda: connection.failed_reconnect_attempts >= 2, WAIT, "failed reconnects")
        finally:
            await connection.close()
    for secret in ("s3cret-pw", "wrong-pw", "right-pw"):
        assert secret not in caplog.text, secret


# --- defect 6: subscription_error_cb gets the handler's own exception --------------------------------


async def test_the_error_callback_gets_the_handlers_own_exception_with_subject_and_payload(
    nats_server: NatsServer,
) -> None:
    errors = ErrorCollector()
    connection = await NatsBrokerConnection.connect(subscription_error_cb=errors)
    try:

        async def handler(msg: Reading) -> None:
            if msg.value < 0:
                raise ValueError(f"negative reading {msg.value}")

        subject = Reading.get_subject("reliability.errors")
        subscription = await connection.subscribe(subject, handler)
        await connection.publish(subject, Reading(value=-3))
        err = await errors.next()
        assert isinstance(err, ValueError) and str(err) == "negative reading -3"  # as FastIoT passes it
        assert err.subject == subject.name  # type: ignore[attr-defined]
        assert err.payload  # type: ignore[attr-defined]
        if sys.version_info >= (3, 11):
            assert any(subject.name in note for note in err.__notes__)
        with pytest.raises(ValueError, match="negative reading -3") as pending:
            subscription.check_pending_error()
        assert pending.value is err  # the same error the callback got

        # Decode and validation failures keep their own types, with the same attributes.
        await connection.publish_raw(subject.name, b"\xc1")
        undecodable = await errors.next()
        assert isinstance(undecodable, DeserializationError) and undecodable.payload == b"\xc1"  # type: ignore[attr-defined]
        await connection.publish_raw(subject.name, b"\x81\xa5value\xa3abc")  # {"value": "abc"}
        invalid = await errors.next()
        assert isinstance(invalid, pydantic.ValidationError)
        assert invalid.subject == subject.name  # type: ignore[attr-defined]
    finally:
        await connection.close()


# --- defect 7: a request timeout names the subject and the timeout ----------------------------------


async def test_a_request_timeout_names_the_subject_and_the_timeout(broker: NatsBrokerConnection) -> None:
    async def wildcard(msg: Any) -> None:  # a subject browser: NATS then cannot say "no responders"
        pass

    browser = await broker.subscribe_raw(">", wildcard)
    await broker.flush()
    subject = Question.get_reply_subject("reliability.nobody")
    try:
        with pytest.raises(RequestTimeoutError) as info:
            await broker.request(subject, Question(value=1), timeout=0.3)
        err = info.value
        assert isinstance(err, TimeoutError) and isinstance(err, nats.errors.TimeoutError)
        assert (err.subject, err.timeout) == (subject.name, 0.3)
        assert "0.3 s" in str(err) and subject.name in str(err) and "no responders" in str(err)

        # The same from a thread with request_sync.
        outcome: list[BaseException] = []

        def worker() -> None:
            try:
                broker.request_sync(subject, Question(value=2), timeout=0.3)
            except BaseException as e:
                outcome.append(e)

        thread = threading.Thread(target=worker)
        thread.start()
        await asyncio.get_running_loop().run_in_executor(None, thread.join, WAIT)
        assert len(outcome) == 1 and isinstance(outcome[0], RequestTimeoutError), outcome
        assert "0.3 s" in str(outcome[0])
    finally:
        await browser.unsubscribe()


REQUEST_SYNC_ON_THE_LOOP = textwrap.dedent(
    """
    import asyncio

    import nest_asyncio2

    from fastiot.core.broker_connection import NatsBrokerConnection
    from fastiot.core.data_models import FastIoTRequest, FastIoTResponse
    from fastiot.exceptions import RequestTimeoutError


    class Answer(FastIoTResponse):
        value: int


    class Question(FastIoTRequest):
        _reply_cls = Answer
        value: int


    async def main():
        nest_asyncio2.apply(asyncio.get_running_loop())
        broker = await NatsBrokerConnection.connect()
        broker.allow_sync_calls_on_loop_thread = True

        async def wildcard(msg):
            pass

        await broker.subscribe_raw(">", wildcard)
        try:
            broker.request_sync(Question.get_reply_subject("nobody"), Question(value=1), timeout=0.3)
        except RequestTimeoutError as e:
            print("RequestTimeoutError", e.timeout, e.subject)
        except Exception as e:
            print(type(e).__name__, e)
        await broker.close()


    asyncio.run(main())
    """
)


def test_request_sync_on_the_loop_thread_reports_the_requests_timeout(
    tmp_path: Any, nats_server: NatsServer
) -> None:
    script = tmp_path / "request_sync_on_loop.py"
    script.write_text(REQUEST_SYNC_ON_THE_LOOP)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip() == "RequestTimeoutError 0.3 v1.question.nobody", done.stdout + done.stderr


# --- issue 10 defect 1, the subscription's part: a drain that times out still ends the subscription ----


async def test_a_drain_that_times_out_cancels_the_hung_handler_and_unsubscribes(
    broker: NatsBrokerConnection, caplog: pytest.LogCaptureFixture
) -> None:
    hangs = HangingHandler()
    subject = Reading.get_subject("reliability.hang")
    subscription = await broker.subscribe(subject, hangs)
    await broker.publish(subject, Reading(value=1))
    await asyncio.wait_for(hangs.entered.wait(), WAIT)
    await subscription.drain(timeout=0.2)  # returns, never raises BadSubscriptionError
    await asyncio.wait_for(hangs.cancelled.wait(), WAIT)
    await broker.publish(subject, Reading(value=2))
    await broker.flush()
    assert [msg.value for msg in hangs.handled] == [1]  # type: ignore[attr-defined]  # nothing after the drain
    assert "v1.reading.reliability.hang" in caplog.text and "did not drain" in caplog.text
