"""Pins the nats-py behaviour behind each function of fastiot.core._nats_compat.

Every private attribute fastiot touches is reached through one function there. When nats-py changes
one of them, the test of that function here fails and names what moved; nothing else in fastiot needs
to be read. The first test checks that the installed nats-py is in the range these tests verified.
"""

from __future__ import annotations

import asyncio
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.protocol.parser import Parser

from fastiot.core import _nats_compat
from fastiot.exceptions import BadMessageError
from fastiot.nats_server import NatsServer
from tests.core.fault_helpers import HangingHandler

WAIT = 10.0


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def test_the_installed_nats_py_is_in_the_verified_range() -> None:
    installed = _version_tuple(version("nats-py"))
    lower, upper = (_version_tuple(bound) for bound in _nats_compat.SUPPORTED_NATS_PY)
    assert lower <= installed < upper, (
        f"nats-py {version('nats-py')} is outside {_nats_compat.SUPPORTED_NATS_PY}: run this file, adapt "
        f"fastiot/core/_nats_compat.py, then widen the range there and in pyproject.toml"
    )
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    # With the nkeys extra: FASTIOT_NATS_CREDS and FASTIOT_NATS_NKEY sign the login with it.
    assert f'"nats-py[nkeys]{",".join(_nats_compat.SUPPORTED_NATS_PY)}"' in pyproject


@pytest.fixture
async def client(nats_server: NatsServer) -> Any:
    nc = _nats_compat.TolerantClient()
    await nc.connect(servers=[nats_server.url], allow_reconnect=False)
    yield nc
    if not nc.is_closed:
        await nc.close()


async def test_server_info_is_the_servers_info(client: NatsClient) -> None:
    info = _nats_compat.server_info(client)
    assert info["max_payload"] == client.max_payload
    assert "server_id" in info and info.get("tls_required", False) is False


def test_server_info_of_a_client_that_never_connected_is_empty() -> None:
    assert _nats_compat.server_info(NatsClient()) == {}


async def test_current_server_uri_is_the_server_connected_to(
    client: NatsClient, nats_server: NatsServer
) -> None:
    uri = _nats_compat.current_server_uri(client)
    assert uri is not None and (uri.hostname, uri.port) == (nats_server.host, nats_server.port)
    assert _nats_compat.current_server_uri(NatsClient()) is None


async def test_uses_tls_is_false_for_a_plain_socket(client: NatsClient) -> None:
    assert client._transport._io_writer.get_extra_info("peername") is not None  # the writer it inspects
    assert _nats_compat.uses_tls(client) is False
    assert _nats_compat.uses_tls(NatsClient()) is False


async def test_abort_sockets_aborts_the_clients_socket(client: NatsClient) -> None:
    writer = client._transport._io_writer
    _nats_compat.abort_sockets(client)
    assert writer.transport.is_closing()
    _nats_compat.abort_sockets(NatsClient())  # nothing to abort: no error


async def test_write_pending_writes_the_buffer(client: NatsClient) -> None:
    await client.publish("compat.write", b"x" * 100)
    assert client.pending_data_size >= 100  # nats-py buffers publishes until its flusher runs
    await asyncio.wait_for(_nats_compat.write_pending(client), WAIT)
    assert client.pending_data_size == 0


async def test_subscription_id_and_limits(client: NatsClient) -> None:
    before = _nats_compat.client_subscription_count(client)
    first = await client.subscribe("compat.a", pending_msgs_limit=123)
    second = await client.subscribe("compat.b")
    assert _nats_compat.client_subscription_count(client) == before + 2
    assert isinstance(_nats_compat.subscription_id(first), int)
    assert _nats_compat.subscription_id(first) != _nats_compat.subscription_id(second)
    assert _nats_compat.pending_msgs_limit(first) == 123
    await first.unsubscribe()
    assert _nats_compat.client_subscription_count(client) == before + 1


async def test_stop_subscription_ends_a_drain_that_timed_out(client: NatsClient) -> None:
    hangs = HangingHandler()
    sub = await client.subscribe("compat.hang", cb=hangs.__call__)  # nats-py wants a coroutine function
    before = _nats_compat.client_subscription_count(client)
    await client.publish("compat.hang", b"1")
    await asyncio.wait_for(hangs.entered.wait(), WAIT)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(sub.drain(), 0.2)
    with pytest.raises(nats.errors.BadSubscriptionError):  # why stop_subscription exists
        await sub.unsubscribe()
    _nats_compat.stop_subscription(sub)
    await asyncio.wait_for(hangs.cancelled.wait(), WAIT)
    assert _nats_compat.client_subscription_count(client) == before - 1


async def test_nats_py_answers_its_pings_oldest_first() -> None:
    # flush_at_cut hands _send_ping its own future and TolerantClient._process_pong looks up the cut of
    # `_pongs[0]` before nats-py pops it: both rely on _send_ping appending the future it is given and on
    # each PONG resolving (and removing) the oldest one.
    nc = NatsClient()
    first, second = asyncio.Future[Any](), asyncio.Future[Any]()
    nc._pongs = [first, second]
    await nc._process_pong()
    assert first.done() and not second.done()
    assert nc._pongs == [second]


async def test_send_ping_queues_the_future_its_pong_resolves(client: NatsClient) -> None:
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    answered: list[str] = []
    first.add_done_callback(lambda _: answered.append("first"))
    second.add_done_callback(lambda _: answered.append("second"))
    await client._send_ping(first)
    await client._send_ping(second)
    assert client._pongs[-2:] == [first, second]
    await asyncio.wait_for(asyncio.gather(first, second), WAIT)
    assert answered == ["first", "second"]
    assert first not in client._pongs and second not in client._pongs


async def test_flush_at_cut_runs_the_cut_when_its_pong_is_parsed(client: NatsClient) -> None:
    sub = await client.subscribe("compat.cut")  # no callback: messages wait in its queue, countable
    seen: list[tuple[int, int]] = []

    def cut() -> None:  # (messages queued, PINGs still unanswered) at the instant of the PONG
        seen.append((sub.pending_msgs, len(client._pongs)))

    for i in range(5):
        await client.publish("compat.cut", b"%d" % i)  # still buffered: flush_at_cut writes them first
    await _nats_compat.flush_at_cut(client, cut, WAIT)
    assert seen == [(5, 1)]  # every message sent before the PONG is queued; its PING not yet popped
    assert isinstance(client, _nats_compat.TolerantClient) and client._pong_cuts == {}
    for i in range(3):
        await client.publish("compat.cut", b"%d" % i)
    # nats-py's flush writes its PING ahead of publishes still buffered: write them first, or under load
    # the PONG can come back before the server has them (5 queued, not 8).
    await _nats_compat.write_pending(client)
    await client.flush(timeout=int(WAIT))
    assert sub.pending_msgs == 8 and seen == [(5, 1)]  # a plain flush runs no cut


async def test_a_failing_cut_does_not_end_the_read_loop(
    client: NatsClient, caplog: pytest.LogCaptureFixture
) -> None:
    def cut() -> None:
        raise RuntimeError("broken cut")

    await _nats_compat.flush_at_cut(client, cut, WAIT)
    assert "a flush_at_cut callback failed" in caplog.text
    await _nats_compat.flush_at_cut(client, lambda: None, WAIT)  # the read loop still parses PONGs
    assert client.is_connected


async def test_flush_at_cut_needs_a_tolerant_client() -> None:
    with pytest.raises(TypeError, match="TolerantClient"):
        await _nats_compat.flush_at_cut(NatsClient(), lambda: None, WAIT)


async def test_discard_pending_publishes_and_the_reconnection_task() -> None:
    with NatsServer() as server:
        nc = NatsClient()
        lost = asyncio.Event()

        async def disconnected() -> None:
            lost.set()

        await nc.connect(servers=[server.url], reconnect_time_wait=0.2, disconnected_cb=disconnected)
        try:
            assert _nats_compat.reconnection_task(nc) is None
            server.kill()
            await asyncio.wait_for(lost.wait(), WAIT)
            task = _nats_compat.reconnection_task(nc)
            assert task is not None and not task.done()
            await nc.publish("compat.buffered", b"y" * 200)
            size = nc.pending_data_size
            assert size >= 200
            assert _nats_compat.discard_pending_publishes(nc) == size
            assert nc.pending_data_size == 0
            task.cancel()
            await asyncio.wait({task}, timeout=WAIT)
            assert _nats_compat.reconnection_task(nc) is task and task.done()
        finally:
            await nc.close()


# --- TolerantClient: nats-py's message path it hooks into ------------------------------------------


class _RecordingClient:
    """Stands in for the client behind nats-py's parser and records what the parser hands it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def _process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: Any) -> None:
        self.calls.append((sid, subject, reply, data, headers))


async def test_the_parser_hands_raw_subject_and_header_bytes_to_process_msg() -> None:
    nc = _RecordingClient()
    parser = Parser(nc)
    await parser.parse(b"MSG \xff\xfe 7 5\r\nhello\r\nHMSG a 8 b 12 14\r\nNATS/1.0\r\n\r\nhi\r\n")
    assert nc.calls == [
        (7, b"\xff\xfe", b"", b"hello", None),
        (8, b"a", b"b", b"hi", b"NATS/1.0\r\n\r\n"),
    ]


async def test_process_msg_builds_messages_through_the_two_hooks() -> None:
    # nats-py's _process_msg calls _process_headers, then _build_message, and skips a None message.
    class Probe(_nats_compat.TolerantClient):
        def __init__(self) -> None:
            super().__init__()
            self.built: list[Any] = []

        def _build_message(self, *args: Any) -> Any:
            msg = super()._build_message(*args)
            self.built.append(msg)
            return msg

    nc = Probe()
    got: list[Any] = []
    arrived = asyncio.Event()

    async def cb(msg: Any) -> None:
        got.append(msg)
        arrived.set()

    nc._subs[1] = sub = nats.aio.subscription.Subscription(nc, 1, "a", cb=cb)
    sub._start(nc._error_cb)
    bad: list[BadMessageError] = []
    nc.on_bad_message = bad.append
    await nc._process_msg(1, b"a", b"r", b"ok", b"NATS/1.0\r\nK: v\r\n\r\n")
    await nc._process_msg(1, b"\xff", b"", b"bad", None)
    await nc._process_msg(1, b"a", b"", b"bad", b"NATS/1.0 503 \xff\xfe\r\n\r\n")
    await nc._process_msg(1, b"a", b"", b"bad", b"NATS/1.0")
    await asyncio.wait_for(arrived.wait(), WAIT)
    sub._stop_processing()
    assert [(m.subject, m.reply, m.data, m.headers) for m in got] == [("a", "r", b"ok", {"K": "v"})]
    assert len(nc.built) == 4 and nc.built[1:] == [None, None, None]
    assert [(e.subject, e.payload, e.sid) for e in bad] == [(b"\xff", b"bad", 1)] + [(b"a", b"bad", 1)] * 2
    assert isinstance(bad[0].cause, UnicodeDecodeError)
    assert bad[1].headers == b"NATS/1.0 503 \xff\xfe\r\n\r\n"


def test_build_message_builds_what_nats_py_builds() -> None:
    nc = _nats_compat.TolerantClient()
    ours = nc._build_message(3, b"a.b", b"_INBOX.x", b"data", {"K": "v"})
    theirs = NatsClient._build_message(nc, 3, b"a.b", b"_INBOX.x", b"data", {"K": "v"})
    assert ours is not None and theirs is not None
    fields = ("subject", "reply", "data", "headers", "_client", "_sid")
    assert [getattr(ours, f) for f in fields] == [getattr(theirs, f) for f in fields]


async def test_the_read_loop_yields_after_each_full_chunk() -> None:
    # nats-py's read loop awaits `client._ps.parse(chunk)` for every chunk it reads (and never yields while
    # data is buffered); TolerantClient's parse lets the loop run what is ready after a full chunk.
    nc = _nats_compat.TolerantClient()
    ran: list[str] = []
    loop = asyncio.get_running_loop()
    loop.call_soon(ran.append, "between full chunks")
    await nc._ps.parse(b"+OK\r\n" * (_nats_compat.READ_CHUNK // 5 + 1))
    assert ran == ["between full chunks"]
    loop.call_soon(ran.append, "after the buffer was drained")
    await nc._ps.parse(b"+OK\r\n")
    assert ran == ["between full chunks"]  # a short chunk: nothing more is buffered, no extra yield
    await asyncio.sleep(0)


async def test_a_burst_of_many_chunks_arrives_whole(client: NatsClient) -> None:
    got: list[bytes] = []
    done = asyncio.Event()
    count = 3 * _nats_compat.READ_CHUNK // 100

    async def cb(msg: Any) -> None:
        got.append(msg.data)
        if len(got) == count:
            done.set()

    await client.subscribe("burst", cb=cb)
    await client.flush()
    for i in range(count):
        await client.publish("burst", b"%080d" % i)
    await asyncio.wait_for(done.wait(), WAIT)
    assert got == [b"%080d" % i for i in range(count)]


async def test_under_a_firehose_the_read_loop_lets_other_threads_have_the_gil(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every turn of the event loop releases the GIL for an instant, which restarts the wait of a thread
    # that wants it; a busy read loop would starve ipykernel's threads. It sleeps a moment once per switch
    # interval instead (here: at every full chunk), and only when there are other threads.

    slept: list[float] = []
    monkeypatch.setattr(_nats_compat.time, "sleep", slept.append)
    monkeypatch.setattr(_nats_compat.sys, "getswitchinterval", lambda: 0.0)
    nc = _nats_compat.TolerantClient()
    chunk = b"+OK\r\n" * (_nats_compat.READ_CHUNK // 5 + 1)
    monkeypatch.setattr(_nats_compat.threading, "active_count", lambda: 1)
    await nc._ps.parse(chunk)
    assert slept == []  # nobody else to hand the GIL to
    monkeypatch.setattr(_nats_compat.threading, "active_count", lambda: 2)
    await nc._ps.parse(chunk)
    await nc._ps.parse(b"+OK\r\n")  # not a full chunk: the buffer is drained, the loop will wait anyway
    await nc._ps.parse(chunk)
    assert slept == [_nats_compat.GIL_HANDOFF] * 2


async def test_inbox_prefix_is_the_prefix_requests_reply_to(nats_server: NatsServer) -> None:
    client = await nats.connect(nats_server.url, inbox_prefix="_INBOX_fastiot_test")
    try:
        assert _nats_compat.inbox_prefix(client) == "_INBOX_fastiot_test"
        assert client.new_inbox().startswith("_INBOX_fastiot_test.")
    finally:
        await client.close()
    default = await nats.connect(nats_server.url)
    try:
        assert _nats_compat.inbox_prefix(default) == "_INBOX"
    finally:
        await default.close()
