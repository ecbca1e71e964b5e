"""JetStream's batch direct get (nats-server 2.11+): the last message per subject up to a time, and the
first message of a subject from a time on, answered by any replica without a consumer.

Synadia's ``jetstreamext`` has these requests as ``get_last_msgs_for`` / ``get_batch``, but it sends times
with microseconds only (a message stored in the same microsecond as the cursor would be missed or taken
twice, and a density bin edge would move) and drops each message's time; the request is the same JSON body
on ``$JS.API.DIRECT.GET.<stream>``, so it is sent here with Synadia's ``natsext.request_many`` (what
``jetstreamext`` itself sends it with), with times in nanoseconds as the server keeps them.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import nats.errors
import natsext
import numpy as np
from nats.aio.msg import Msg as NatsMsg

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
_END_STATUSES = frozenset({"204", "404", "408", "413"})


class TooManyResultsError(Exception):
    """The server would answer a ``multi_last`` with more messages than it sends at once (413)."""


class DirectResult:
    """The messages of one direct get, undecoded, and the message headers of those that have some.

    Attributes:
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


async def direct_get(connection: NatsBrokerConnection, stream: str, body: dict[str, Any]) -> DirectResult:
    """Send one batch direct get (``body`` as JetStream takes it) and collect its answer.

    Raises:
        TooManyResultsError: A ``multi_last`` matched more subjects than the server answers at once.
        RecordingDeletedError: Nobody answers: the stream does not exist (any more).
        HistoryServerError: The server refused the request (its reason included).
    """
    subjects: list[str] = []
    sequences: list[int] = []
    times: list[int] = []
    payloads: list[bytes] = []
    headers: dict[int, dict[str, str]] = {}
    pending = 0
    ended: list[dict[str, str]] = []

    def is_end(msg: NatsMsg) -> bool:
        # The status that ends the answer is not handed out by request_many: it is kept here.
        header = msg.header or {}
        if not msg.data and header.get("Status") in _END_STATUSES and "Nats-Sequence" not in header:
            ended.append(header)
            return True
        return False

    try:
        async for msg in natsext.request_many(
            connection.client,
            f"$JS.API.DIRECT.GET.{stream}",
            json.dumps(body).encode(),
            sentinel=is_end,
            timeout=DIRECT_TIMEOUT,
        ):
            header = msg.header or {}
            if not subjects:
                pending = int(header.get("Nats-Num-Pending", "0"))
            own = {key: value for key, value in header.items() if key not in _JS_HEADERS}
            if own:
                headers[len(subjects)] = own
            subjects.append(header["Nats-Subject"])
            sequences.append(int(header["Nats-Sequence"]))
            times.append(_parse_ns(header["Nats-Time-Stamp"]))
            payloads.append(msg.data)
    except nats.errors.NoRespondersError:
        raise RecordingDeletedError(
            f"recording {stream!r} does not exist (any more), or does not allow direct gets; "
            f"Recording.list() shows the recordings there are",
            name=stream,
        ) from None
    status = ended[0].get("Status") if ended else None
    if status == "413":
        raise TooManyResultsError(ended[0].get("Description", "too many results"))
    if status == "408":  # a malformed request: what an older server says to a batch get
        description = ended[0].get("Description", "")
        raise HistoryServerError(
            f"reading recording {stream!r} at {server_url(connection)} failed: the server says {status} "
            f"{description} to a batch direct get (the timeline needs nats-server 2.11 or newer)",
            description=description,
        )
    batch = RawBatch(
        subjects=subjects,
        sequences=np.asarray(sequences, dtype=np.int64),
        times=np.asarray(times, dtype=np.int64),
        payloads=payloads,
    )
    return DirectResult(batch, headers, pending)
