"""JetStream consumers for reading recordings, and the rows they deliver.

The consumers are made through nats-py's ``jsm.add_consumer``; the rows are :class:`RawBatch`
(undecoded messages) and :class:`Replies` (their ``$JS.ACK...`` reply subjects).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import nats.errors
import nats.js.errors
import numpy as np
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.history._connection import jetstream_error

__all__ = [
    "CONSUMER_INACTIVE_THRESHOLD",
    "DELIVERED",
    "PENDING",
    "SEQUENCE",
    "TIME",
    "RawBatch",
    "Replies",
    "add_consumer",
    "count_from",
    "filter_options",
    "start_options",
]

_logger = logging.getLogger("fastiot.history")

CONSUMER_INACTIVE_THRESHOLD = 60.0  # the server removes a consumer whose reader died after this long
_REQUEST_TIMEOUT = 5.0
# A consumer is made by the cluster's meta leader; while a new one is elected (a server died) requests
# time out or get "temporarily unavailable". Such failures are retried for this long.
_CONSUMER_START_TIMEOUT = 30.0
_RETRY_PAUSE = 0.25
_TRANSIENT_CODES = {10008, 10009}


def _transient(error: BaseException) -> bool:
    if isinstance(error, (nats.errors.TimeoutError, asyncio.TimeoutError, nats.errors.NoRespondersError)):
        return True
    return isinstance(error, nats.js.errors.APIError) and error.err_code in _TRANSIENT_CODES


async def add_consumer(
    connection: NatsBrokerConnection,
    stream: str,
    make_config: Callable[[], Awaitable[ConsumerConfig]],
    undo: Callable[[], Awaitable[None]],
) -> Any:
    """``jsm.add_consumer`` with the config ``make_config()`` returns, tried again during leader elections.

    ``undo()`` runs after each failed attempt (a timed-out request may still make a consumer later, so each
    attempt gets a fresh config, e.g. a new inbox).
    """
    jsm = connection.client.jsm()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _CONSUMER_START_TIMEOUT
    while True:
        config = await make_config()
        try:
            return await jsm.add_consumer(stream, config, timeout=_REQUEST_TIMEOUT)
        except BaseException as e:
            await undo()
            if not _transient(e) or loop.time() + _RETRY_PAUSE >= deadline:
                raise
            _logger.info("JetStream did not make a consumer for %s (%s); trying again", stream, e)
            await asyncio.sleep(_RETRY_PAUSE)


@dataclass
class RawBatch:
    """Consecutive messages of a stream, undecoded.

    Attributes:
        subjects: The subject of each message.
        sequences: Their stream sequences (int64).
        times: The times the stream stored them, in ns since the epoch (int64).
        payloads: Their payload bytes.
        headers: The raw NATS header block of the messages that have headers, by row index.
    """

    subjects: list[str]
    sequences: np.ndarray
    times: np.ndarray
    payloads: list[bytes]
    headers: dict[int, bytes] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.payloads)


class Replies:
    """The ``$JS.ACK...`` reply subjects of a batch, split once; columns are parsed when asked for.

    Both forms nats-py knows are read:
    ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>`` and the one with domain and
    account hash in front (and a random token at the end).

    Args:
        replies: The reply subjects of a batch's messages, as bytes.

    Example:
        >>> r = Replies([b"$JS.ACK.s.c.1.7.1.1700000000000000000.3"])
        >>> r.column(SEQUENCE).tolist(), r.value(PENDING, 0)
        ([7], 3)
    """

    def __init__(self, replies: list[bytes]) -> None:
        n = len(replies)
        tokens = b".".join(replies).split(b".")
        width = len(tokens) // n if n else 0
        if n and width * n == len(tokens) and width in (9, 11, 12):
            first = 5 if width == 9 else 7  # the stream sequence; the others follow it
        else:  # mixed forms in one batch (never seen, but cheap to allow): the four fields of each
            tokens = []
            for reply in replies:
                parts = reply.split(b".")
                start = 5 if len(parts) == 9 else 7
                tokens.extend(parts[start : start + 4])
            width, first = 4, 0
        self.n: int = n
        self._tokens: list[bytes] = tokens
        self._width: int = width
        self._first: int = first

    def column(self, field: int) -> np.ndarray:
        """One field (:data:`SEQUENCE`, :data:`DELIVERED`, :data:`TIME`, :data:`PENDING`) of every reply."""
        return np.fromiter(
            map(int, self._tokens[self._first + field :: self._width]), dtype=np.int64, count=self.n
        )

    def value(self, field: int, row: int) -> int:
        """One field of one reply."""
        return int(self._tokens[self._first + field + self._width * row])


SEQUENCE, DELIVERED, TIME, PENDING = 0, 1, 2, 3  # the fields of a reply, in the order they come


def start_options(start_seq: int | None, start_time: datetime | None) -> dict[str, object]:
    if start_seq is not None:
        return {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": start_seq}
    if start_time is not None:
        return {"deliver_policy": DeliverPolicy.BY_START_TIME, "opt_start_time": start_time}
    return {"deliver_policy": DeliverPolicy.ALL}


def filter_options(filters: Sequence[str]) -> dict[str, object]:
    if len(filters) == 1:
        return {"filter_subject": filters[0]}
    return {"filter_subjects": list(filters)} if filters else {}


async def count_from(
    connection: NatsBrokerConnection,
    stream: str,
    *,
    start_seq: int | None = None,
    start_time: datetime | None = None,
    filters: Sequence[str] = (),
) -> int:
    """How many messages (matching ``filters``) the stream holds from a sequence or a time on.

    Asks the server through a consumer that never delivers anything (made and removed at once).
    """

    async def config() -> ConsumerConfig:
        return ConsumerConfig(
            description="fastiot history: counting",
            ack_policy=AckPolicy.EXPLICIT,
            mem_storage=True,
            inactive_threshold=CONSUMER_INACTIVE_THRESHOLD,
            **start_options(start_seq, start_time),  # type: ignore[arg-type]
            **filter_options(filters),  # type: ignore[arg-type]
        )

    async def nothing() -> None:
        return None

    try:
        info = await add_consumer(connection, stream, config, nothing)
    except (nats.js.errors.Error, nats.errors.Error) as e:
        raise jetstream_error(e, connection, f"counting the messages of {stream!r}") from None
    with contextlib.suppress(Exception):
        await connection.client.jsm().delete_consumer(stream, info.name)
    return int(info.num_pending or 0)
