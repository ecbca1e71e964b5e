"""Every access fastiot makes to a private attribute of nats-py, behind one named function each.

nats-py's public API lacks a few things fastiot needs: the server's INFO after a failed connect, the
server being tried while reconnecting, whether the socket is TLS, writing the publish buffer before a
PING, discarding that buffer, stopping the reconnect loop, a subscription's id and limits, surviving a
malformed message, and (for reading recordings) a subscription's messages raw from the parser. Each
function here names one such need; ``tests/core/test_nats_compat.py`` (and, for the history section,
``tests/history/test_nats_compat_history.py``) pins the nats-py behaviour it relies on, for the versions
``pyproject.toml`` allows (:data:`SUPPORTED_NATS_PY`). When nats-py changes, this module and those
tests are the only places to look at.

Example:
    >>> from fastiot.core import _nats_compat
    >>> client = _nats_compat.TolerantClient()
    >>> _nats_compat.server_info(client)
    {}
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any
from urllib.parse import ParseResult

import nats.js
from nats.aio.client import DEFAULT_BUFFER_SIZE as READ_CHUNK
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg as NatsMsg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.protocol.parser import Parser

from fastiot.exceptions import BadMessageError

__all__ = [
    "GIL_HANDOFF",
    "SUPPORTED_NATS_PY",
    "YIELD_EVERY",
    "RawMessageHandler",
    "RequestGuard",
    "TolerantClient",
    "abort_sockets",
    "client_subscription_count",
    "current_server_uri",
    "discard_pending_publishes",
    "flush_at_cut",
    "inbox_prefix",
    "intercept_raw_messages",
    "parse_headers",
    "pending_msgs_limit",
    "raw_headers",
    "reconnection_task",
    "report_bad_message",
    "server_info",
    "stop_subscription",
    "subscription_id",
    "uses_tls",
    "write_pending",
]

# How long the read loop sleeps, under a firehose, to let other threads take the GIL (see TolerantClient).
GIL_HANDOFF = 0.0002

# The nats-py versions the functions below are verified against (kept equal to pyproject.toml): 2.15.0
# and 2.16.0 pass tests/core; 2.14 lacks lenient header decoding, below 2.14 reconnect_to_server_handler.
SUPPORTED_NATS_PY = (">=2.15", "<2.17")

BadMessageCallback = Callable[[BadMessageError], None]
# Runs one request (the coroutine) to a subject and returns its reply, or raises instead of it.
RequestGuard = Callable[[Coroutine[Any, Any, NatsMsg], str], Awaitable[NatsMsg]]


class _BadHeaders(dict[str, str]):
    """What :meth:`TolerantClient._process_headers` returns for a header block nats-py cannot parse."""

    def __init__(self, raw: bytes, error: Exception) -> None:
        super().__init__()
        self.raw: bytes = raw
        self.error: Exception = error


class TolerantClient(NatsClient):
    """nats-py's client, except that one malformed message cannot silence the connection.

    nats-py (up to 2.16 at least) decodes each message's subject, reply subject and status header line
    as UTF-8 inside its read loop; one message whose bytes are not UTF-8 (any client may publish one)
    raises there, the read loop ends, and every subscription of the connection goes deaf while the
    client still says it is connected. Here such a message is dropped and handed to
    :attr:`on_bad_message` as a :class:`~fastiot.exceptions.BadMessageError` with its raw bytes;
    the read loop goes on with the next message. The bug report for nats-py, ready to file (to be
    filed; no internet where it was written): ``docs/upstream/nats-py-non-utf8-read-loop.md``.

    And its read loop lets the event loop breathe under a firehose: nats-py's loop reads and parses
    chunk after chunk without ever yielding while data is buffered (awaiting a read that need not wait
    does not suspend), so a burst of a few hundred kilobytes holds the whole loop, and every cell and
    widget with it, for tens of milliseconds. Here, after each full chunk, the read loop yields once:
    the subscriptions' handlers and everything else ready run between chunks, and their backlogs stay
    short. Throughput is the same; a chunk that was not full (the buffer is drained) yields nothing.

    Yielding that often has a price in a process with other threads (ipykernel has its shell, iopub
    and control threads): each turn of the event loop releases the GIL for a moment in ``select``, which
    restarts the wait of a thread that wants the GIL before it may ask for it, so those threads starve
    while the loop is busy, and a notebook cell's reply waits for them (tens of milliseconds, at the
    99th percentile a hundred and more). So while chunks keep coming, the read loop sleeps for
    :data:`GIL_HANDOFF` seconds once per switch interval (``sys.getswitchinterval()``, 5 ms): long
    enough for a waiting thread to take the GIL, a few percent of the loop's time.

    ``_build_message`` is replaced, not wrapped: the hot path of every message costs what nats-py's does.
    """

    def __init__(self) -> None:
        super().__init__()
        self.on_bad_message: BadMessageCallback | None = None
        """Called (on the loop, from the read loop) with each malformed message; it must not block."""
        # The read loop calls `self._ps.parse(chunk)` and nothing else parses: an instance attribute wraps it.
        self._ps.parse = self._parse_then_yield  # type: ignore[method-assign]
        # What flush_at_cut runs when the PONG of its PING is parsed, by that PING's future.
        self._pong_cuts: dict[asyncio.Future[Any], Callable[[], None]] = {}
        self._handed_off: float = 0.0  # when the read loop last let other threads have the GIL
        self.js_domain: str | None = None
        """The JetStream domain every ``jetstream()`` / ``jsm()`` uses unless given one
        (``FASTIOT_NATS_JS_DOMAIN``): set once here, so no JetStream call of fastiot can forget it."""
        self.request_guard: RequestGuard | None = None
        """Wraps every request, JetStream's and key-value's included (they all go through ``request``):
        the connection's refusal watch, which ends a request the server refused at once."""

    def jetstream(self, **opts: Any) -> nats.js.JetStreamContext:
        if self.js_domain is not None and "domain" not in opts and "prefix" not in opts:
            opts["domain"] = self.js_domain
        return super().jetstream(**opts)

    def jsm(self, **opts: Any) -> nats.js.JetStreamManager:
        # nats-py's JetStreamManager takes no domain, only the API prefix the domain makes.
        if self.js_domain is not None and "prefix" not in opts:
            opts["prefix"] = f"$JS.{self.js_domain}.API"
        return super().jsm(**opts)

    async def request(
        self,
        subject: str,
        payload: bytes = b"",
        timeout: float = 0.5,
        old_style: bool = False,
        headers: dict[str, Any] | None = None,
    ) -> NatsMsg:
        """nats-py's ``request``, run through :attr:`request_guard` when one is set."""
        call = super().request(subject, payload, timeout=timeout, old_style=old_style, headers=headers)
        if self.request_guard is None:
            return await call
        return await self.request_guard(call, subject)

    async def _parse_then_yield(self, data: bytes = b"") -> None:
        await Parser.parse(self._ps, data)
        if len(data) >= READ_CHUNK:  # a full chunk: more is probably buffered, and reading it would not wait
            now = time.perf_counter()
            if now - self._handed_off > sys.getswitchinterval() and threading.active_count() > 1:
                time.sleep(GIL_HANDOFF)  # noqa: ASYNC251 - blocking on purpose: the other threads' turn
                self._handed_off = time.perf_counter()
            await asyncio.sleep(0)

    async def _process_headers(self, headers: Any) -> dict[str, str] | None:
        if not headers:
            return None
        try:
            return await super()._process_headers(headers)
        except Exception as e:  # e.g. a status line that is not UTF-8, or a truncated header block
            return _BadHeaders(bytes(headers), e)

    async def _process_pong(self) -> None:
        if self._pongs:  # nats-py answers its PINGs' futures in order, the oldest first
            cut = self._pong_cuts.pop(self._pongs[0], None)
            if cut is not None:
                try:
                    cut()
                except Exception:  # a failing cut must not end the read loop
                    import logging

                    logging.getLogger("fastiot.broker").exception("a flush_at_cut callback failed")
        await super()._process_pong()

    def _build_message(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: dict[str, str] | None
    ) -> NatsMsg | None:
        if headers is not None and type(headers) is _BadHeaders:
            self._report_bad_message(sid, subject, reply, data, headers.raw, headers.error)
            return None  # nats-py's _process_msg skips a message it could not build
        try:
            subject_text = subject.decode()
            reply_text = reply.decode()
        except UnicodeDecodeError as e:
            self._report_bad_message(sid, subject, reply, data, None, e)
            return None
        return self.msg_class(
            subject=subject_text, reply=reply_text, data=data, headers=headers, _client=self, _sid=sid
        )

    def _report_bad_message(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None, cause: Exception
    ) -> None:
        err = BadMessageError(
            subject=bytes(subject), reply=bytes(reply), payload=data, headers=headers, sid=sid, cause=cause
        )
        callback = self.on_bad_message
        if callback is None:
            return
        try:
            callback(err)
        except Exception:  # a failing report must not end the read loop either
            import logging

            logging.getLogger("fastiot.broker").exception("reporting a malformed message failed")


def inbox_prefix(client: NatsClient) -> str:
    """The prefix of the client's reply inboxes (``_INBOX`` unless ``connect(inbox_prefix=...)``)."""
    return bytes(client._inbox_prefix).decode()


def server_info(client: NatsClient) -> dict[str, Any]:
    """The last INFO the server sent (``tls_required``, ``tls_verify``, ...); kept after a failed connect."""
    return dict(getattr(client, "_server_info", None) or {})


def current_server_uri(client: NatsClient) -> ParseResult | None:
    """The URL of the server connected to or, while reconnecting, being tried.

    ``connected_url`` is None while reconnecting. The URL may hold credentials: redact it before showing it.
    """
    server = getattr(client, "_current_server", None)
    return getattr(server, "uri", None)


def uses_tls(client: NatsClient) -> bool:
    """Whether the connection's socket is TLS (nats-py upgrades only when the server asks for it)."""
    writer = getattr(getattr(client, "_transport", None), "_io_writer", None)
    return writer is not None and writer.get_extra_info("ssl_object") is not None


def abort_sockets(client: NatsClient) -> None:
    """Abort the client's sockets, the TLS one and the plain one under it.

    After a failed TLS handshake nats-py's ``close()`` waits forever for the socket it handed to
    ``start_tls``; aborting first lets ``close()`` finish.
    """
    transport = getattr(client, "_transport", None)
    for writer in {getattr(transport, "_bare_io_writer", None), getattr(transport, "_io_writer", None)}:
        if writer is not None:
            writer.transport.abort()


def discard_pending_publishes(client: NatsClient) -> int:
    """Empty the buffer of publishes not yet written and return its size in bytes.

    Closing while reconnecting, nats-py would write the buffer into the dead socket and fail half-way
    through ``close()``.
    """
    size = client.pending_data_size
    client._pending = []
    client._pending_data_size = 0
    return size


def reconnection_task(client: NatsClient) -> asyncio.Task[None] | None:
    """nats-py's reconnect loop, while one runs (to stop it for sure: its ``close()`` may leave it)."""
    return getattr(client, "_reconnection_task", None)


async def write_pending(client: NatsClient) -> None:
    """Write the client's buffer of publishes and subscriptions to the socket and wait until it is.

    nats-py's ``flush()`` writes its PING straight to the socket, ahead of what is still buffered, so the
    PONG can come back before the server has those commands; call this first.
    """
    if client.is_connected:
        await client._flush_pending(force_flush=True)


async def flush_at_cut(client: NatsClient, cut: Callable[[], None], timeout: float) -> None:
    """Flush, and run ``cut()`` inside the read loop at the instant the server's PONG is parsed.

    The server answers a PING in order with the messages it sends: at that instant every message it
    sent before the PONG has been handed to its subscription's queue (or dropped as a slow consumer)
    and none sent after it has. Two subscriptions' counters read in ``cut()`` therefore split one
    stream of messages exactly, with no message on both sides (how observers hand a stream over from
    one subscription to another). ``cut`` must be quick and must not raise. Writes the publish buffer
    first, like ``NatsBrokerConnection.flush``.

    Raises:
        TypeError: If ``client`` is not a :class:`TolerantClient`.
        nats.errors.ConnectionClosedError: The client is not connected.
        nats.errors.FlushTimeoutError: No PONG within ``timeout`` seconds (``cut`` was not run).
    """
    import nats.errors

    if not isinstance(client, TolerantClient):
        raise TypeError(f"flush_at_cut needs a TolerantClient, got {type(client).__name__}")
    if not client.is_connected:
        raise nats.errors.ConnectionClosedError
    await write_pending(client)
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    client._pong_cuts[future] = cut
    try:
        await client._send_ping(future)
        await asyncio.wait_for(future, timeout)
    except asyncio.TimeoutError:
        raise nats.errors.FlushTimeoutError() from None
    finally:
        client._pong_cuts.pop(future, None)


def subscription_id(sub: NatsSubscription) -> int:
    """The subscription's id (``sid``), as in ``SlowConsumerError.sid``."""
    return sub._id


def pending_msgs_limit(sub: NatsSubscription) -> int:
    """The most messages the subscription's backlog may hold before the client drops new ones."""
    return sub._pending_msgs_limit


def stop_subscription(sub: NatsSubscription) -> None:
    """Stop a subscription that a timed-out ``drain()`` left half done.

    Its handler task is cancelled (which also cancels a handler that hangs) and the client forgets it.

    ``drain()`` marks the subscription closed when it is cancelled, so ``unsubscribe()`` afterwards
    raises ``BadSubscriptionError`` and leaves the handler running. The UNSUB was already sent by
    ``drain()``.
    """
    sub._stop_processing()
    sub._conn._remove_sub(sub._id)


def client_subscription_count(client: NatsClient) -> int:
    """How many subscriptions the client knows (for tests that check nothing was left subscribed)."""
    return len(client._subs)


# -- history: bulk reads of JetStream streams ------------------------------------------------------------

# Called from nats-py's read loop with (subject, reply, payload, raw header block or None) as the parser
# has them: bytes, not yet decoded. It must be quick and must not raise.
RawMessageHandler = Callable[[bytes, bytes, bytes, "bytes | None"], None]

_HANDLERS_ATTRIBUTE = "_fastiot_raw_handlers"
YIELD_EVERY = 512


def intercept_raw_messages(client: NatsClient, sid: int, handler: RawMessageHandler) -> Callable[[], None]:
    """Hand the messages of subscription ``sid`` to ``handler`` raw, before nats-py builds a ``Msg``.

    Reading a recording moves up to millions of messages; nats-py spends most of its time per message
    on what comes after its parser (a ``Msg`` object, a queue, a task switch, the callback). Here the
    parser's output goes straight to ``handler``. Messages of other subscriptions take nats-py's usual
    path. nats-py's statistics (``stats["in_msgs"]``) do not count the intercepted messages.

    nats-py's read loop parses all the bytes the socket has without giving the event loop a turn; after
    every :data:`YIELD_EVERY` intercepted messages it is made to give one, so a burst of a recording
    never holds up timers (a replay's schedule) or other tasks for more than a millisecond or two.

    Args:
        client: The nats-py client the subscription belongs to.
        sid: The subscription's id (:func:`subscription_id`).
        handler: Called in the client's read loop for each message of ``sid``.

    Returns:
        A function that ends the interception (call it before unsubscribing).
    """
    handlers: dict[int, RawMessageHandler] | None = client.__dict__.get(_HANDLERS_ATTRIBUTE)
    if handlers is None:
        handlers = {}
        original = client._process_msg  # the bound method of the class
        get = handlers.get
        done = _done_future()
        count = 0

        def process_msg(sid: int, subject: bytes, reply: bytes, data: bytes, headers: Any) -> Any:
            # A plain function: the parser awaits what it returns, nats-py's coroutine for other
            # subscriptions, an already finished future (awaited without a coroutine frame) for ours.
            nonlocal count
            handler = get(sid)
            if handler is None:
                return original(sid, subject, reply, data, headers)
            handler(subject, reply, data, headers)
            count += 1
            if count % YIELD_EVERY:
                return done
            return asyncio.sleep(0)

        setattr(client, _HANDLERS_ATTRIBUTE, handlers)
        # An instance attribute: the parser calls ``self.nc._process_msg(...)`` and finds this first.
        client._process_msg = process_msg  # type: ignore[method-assign]
    handlers[sid] = handler

    def remove() -> None:
        if handlers.get(sid) is handler:
            del handlers[sid]
        if not handlers and client.__dict__.get(_HANDLERS_ATTRIBUTE) is handlers:
            del client.__dict__[_HANDLERS_ATTRIBUTE]
            client.__dict__.pop("_process_msg", None)

    return remove


def _done_future() -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


async def parse_headers(client: NatsClient, raw: bytes) -> dict[str, str]:
    """The headers of a raw header block (``NATS/1.0 ...``) as nats-py parses them.

    Status lines become ``Status`` and ``Description``.
    """
    return dict(await client._process_headers(raw) or {})


def report_bad_message(
    client: NatsClient,
    sid: int,
    subject: bytes,
    reply: bytes,
    data: bytes,
    headers: bytes | None,
    cause: Exception,
) -> None:
    """Report a malformed message taken raw from the parser as nats-py's path would (``on_bad_message``)."""
    if isinstance(client, TolerantClient):
        client._report_bad_message(sid, subject, reply, data, headers, cause)


async def raw_headers(
    client: NatsClient, sid: int, subject: bytes, reply: bytes, data: bytes, raw: bytes
) -> dict[str, str] | None:
    """The headers of a message taken raw from the parser, as nats-py parses them.

    ``None`` if the block is malformed (reported with :func:`report_bad_message`).
    """
    parsed = await client._process_headers(raw)
    if type(parsed) is _BadHeaders:
        report_bad_message(client, sid, subject, reply, data, parsed.raw, parsed.error)
        return None
    return dict(parsed or {})
