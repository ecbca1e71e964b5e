"""JetStream's batch direct get (nats-server 2.11+), answered by any replica without a consumer.

The last message per subject up to a time, and the first message of a subject from a time on.

Synadia's ``jetstreamext`` has these requests as ``get_last_msgs_for`` / ``get_batch``, but it sends times
with microseconds only (a message stored in the same microsecond as the cursor would be missed or taken
twice, and a density bin edge would move), drops each message's time, and builds a nats-py ``Msg`` and a
task per message (a state of 1,000 subjects took ~100 ms that way). The request is the same JSON body on
``$JS.API.DIRECT.GET.<stream>``; here it is sent with times in nanoseconds, and the answers are taken raw
from nats-py's parser (:func:`_nats_compat.intercept_raw_messages`), as :mod:`._reader` reads ranges.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import datetime, timezone
from typing import Any

import nats.errors
import numpy as np

from fastiot.core import _nats_compat
from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.exceptions import HistoryServerError, RecordingDeletedError
from fastiot.history._connection import server_url
from fastiot.history._consumers import RawBatch

__all__ = ["DirectResult", "TooManyResultsError", "direct_get", "rfc3339_ns"]

DIRECT_TIMEOUT = 10.0
# The headers JetStream adds to a direct get's answer; the rest are the message's own.
_JS_HEADERS = frozenset(
    {
        "Nats-Stream",
        "Nats-Subject",
        "Nats-Sequence",
        "Nats-Time-Stamp",
        "Nats-Num-Pending",
        "Nats-Last-Sequence",
        "Nats-UpTo-Sequence",
    }
)


class TooManyResultsError(Exception):
    """The server would answer a ``multi_last`` with more messages than it sends at once (413)."""


class DirectResult:
    """The messages of one direct get, undecoded, and the message headers of those that have some.

    Args:
        batch: The messages in stream order.
        headers: The message's own headers (without JetStream's) by row index.
        pending: ``Nats-Num-Pending`` of the first message: matching messages after it in the stream.
    """

    def __init__(self, batch: RawBatch, headers: dict[int, dict[str, str]], pending: int) -> None:
        self.batch: RawBatch = batch
        self.headers: dict[int, dict[str, str]] = headers
        self.pending: int = pending


def rfc3339_ns(ns: int) -> str:
    """``ns`` since the epoch as the RFC 3339 text with nanoseconds that JetStream reads.

    Example:
        >>> rfc3339_ns(1_500_000_000_123_456_789)
        '2017-07-14T02:40:00.123456789Z'
    """
    seconds, fraction = divmod(ns, 1_000_000_000)
    whole = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{fraction:09d}Z"


def _parse_ns(text: str) -> int:
    # "2026-12-08T01:31:32.47317518Z": JetStream trims trailing zeros of the fraction.
    whole, _, fraction = text.rstrip("Z").partition(".")
    seconds = int(datetime.fromisoformat(whole).replace(tzinfo=timezone.utc).timestamp())
    return seconds * 1_000_000_000 + int((fraction or "0").ljust(9, "0")[:9])


def _headers(raw: bytes) -> dict[str, str]:
    # "NATS/1.0\r\nName: value\r\n...": what nats-py's parser would make of it, for these few names.
    found: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").split("\r\n")[1:]:
        name, colon, value = line.partition(":")
        if colon:
            found[name.strip()] = value.strip()
    return found


def _status(raw: bytes) -> tuple[str, str]:
    # "NATS/1.0 404 Message Not Found\r\n...": a status line, no message.
    line = raw.split(b"\r\n", 1)[0].decode("utf-8", "replace")
    code, _, description = line[9:].partition(" ")
    return code, description.strip()


async def direct_get(connection: NatsBrokerConnection, stream: str, body: dict[str, Any]) -> DirectResult:
    """Send one batch direct get (``body`` as JetStream takes it) and collect its answer.

    Raises:
        TooManyResultsError: A ``multi_last`` matched more subjects than the server answers at once.
        RecordingDeletedError: Nobody answers: the stream does not exist (any more).
        HistoryServerError: The server refused the request (its reason included), or did not answer.
    """
    client = connection.client
    raw_headers: list[bytes] = []
    payloads: list[bytes] = []
    ended: list[tuple[str, str]] = []
    done = asyncio.Event()

    def on_raw(subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        if headers is None or headers[8:9] == b" ":
            ended.append(_status(headers) if headers is not None else ("", "no headers"))
            done.set()
            return
        raw_headers.append(headers)
        payloads.append(data)

    inbox = client.new_inbox()
    subscription = await client.subscribe(inbox)
    end_intercept = _nats_compat.intercept_raw_messages(
        client, _nats_compat.subscription_id(subscription), on_raw
    )
    try:
        await client.publish(f"$JS.API.DIRECT.GET.{stream}", json.dumps(body).encode(), reply=inbox)
        try:
            await asyncio.wait_for(done.wait(), DIRECT_TIMEOUT)
        except asyncio.TimeoutError:
            raise HistoryServerError(
                f"reading recording {stream!r} at {server_url(connection)}: no answer to a direct get "
                f"within {DIRECT_TIMEOUT:g} s; check the connection and that the stream's servers are up"
            ) from None
    finally:
        end_intercept()
        with contextlib.suppress(nats.errors.Error):
            await subscription.unsubscribe()
    code, description = ended[0]
    if code == "413":
        raise TooManyResultsError(description)
    if code == "503":
        raise RecordingDeletedError(
            f"recording {stream!r} does not exist (any more), or does not allow direct gets; "
            f"Recording.list() shows the recordings there are",
            name=stream,
        )
    if code not in ("204", "404"):
        raise HistoryServerError(
            f"reading recording {stream!r} at {server_url(connection)} failed: the server says {code} "
            f"{description} to a batch direct get (the timeline needs nats-server 2.11 or newer)",
            description=description,
        )
    subjects: list[str] = []
    sequences: list[int] = []
    times: list[int] = []
    own_headers: dict[int, dict[str, str]] = {}
    pending = 0
    for i, raw in enumerate(raw_headers):
        header = _headers(raw)
        if i == 0:
            pending = int(header.get("Nats-Num-Pending", "0"))
        subjects.append(header["Nats-Subject"])
        sequences.append(int(header["Nats-Sequence"]))
        times.append(_parse_ns(header["Nats-Time-Stamp"]))
        if len(header) > len(_JS_HEADERS & header.keys()):
            own_headers[i] = {k: v for k, v in header.items() if k not in _JS_HEADERS}
    batch = RawBatch(
        subjects=subjects,
        sequences=np.asarray(sequences, dtype=np.int64),
        times=np.asarray(times, dtype=np.int64),
        payloads=payloads,
    )
    return DirectResult(batch, own_headers, pending)
