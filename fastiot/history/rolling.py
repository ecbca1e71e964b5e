"""The rolling history: every non-system subject of the workbench's own broker, kept for a while.

"Which machine ran hottest over the last two minutes?" should not need a recording started two minutes
ago. The broker the workbench starts (``fastiot-workbench``, or on demand in a kernel) keeps the JetStream
stream :data:`HISTORY_STREAM` of everything published on it, 24 hours and 1 GiB by default, whichever
is reached first (``FASTIOT_HISTORY_MAX_AGE`` / ``FASTIOT_HISTORY_MAX_BYTES``, the CLI's
``--history-max-age`` / ``--history-max-bytes``; ``FASTIOT_HISTORY=off`` or ``--no-history`` turns it
off). A broker the workbench did not start records nothing unless somebody asks.

Why the stream does not simply record ``>``: NATS stores a subject in one stream only, and ``>`` (the
server allows it only with ``no_ack``) also takes JetStream's own API traffic, ``_INBOX.`` replies and
``$KV.`` puts, and then no key-value bucket or other stream can be made next to it. No stream pattern
says "everything but ``$...`` and ``_INBOX.``" either (``*.>`` covers ``$KV.x.>`` as much as ``>``).
So the stream records one pair of patterns per first token in use (``v1`` and ``v1.>``), starting with
FastIoT's ``v1``, and :class:`HistoryKeeper` adds a token's pair when a message shows it for the first
time; only the messages of that first round trip on a new first token are missed. The stream does
not acknowledge (``no_ack``): it would answer every request on a recorded subject before the service
does, so a JetStream publish (which waits for an ack) to a recorded subject gets none. A recording of
subjects the history holds is made from the history (a stream that sources it, from now on), so it
never collides with it (:func:`history_source`).

Example:
    >>> from datetime import timedelta
    >>> from fastiot import workbench
    >>> async def hottest():
    ...     history = await workbench.history()
    ...     frame = await history.to_dataframe(start=timedelta(minutes=2))
    ...     return frame.groupby("machine")["value"].max().idxmax()
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import nats.errors
import nats.js.errors
from nats.js.api import StorageType, StreamConfig, StreamSource, SubjectTransform

from fastiot._tasks import BackgroundTasks
from fastiot.capture.observer import BrokerObserver, Listener, MessageHandler
from fastiot.core.broker_connection import (
    DEFAULT_PENDING_BYTES_LIMIT,
    DEFAULT_PENDING_MSGS_LIMIT,
    NatsBrokerConnection,
)
from fastiot.core.logger import setup_logger
from fastiot.core.subject_helper import MSG_FORMAT_VERSION, is_system_subject
from fastiot.env import redact_url
from fastiot.exceptions import InvalidRecordingError, RecordingNotFoundError
from fastiot.history._connection import jetstream_error
from fastiot.history.ranges import parse_duration

if TYPE_CHECKING:
    from fastiot.capture import Message
    from fastiot.history.recording import Recording

__all__ = [
    "DEFAULT_HISTORY_MAX_AGE",
    "DEFAULT_HISTORY_MAX_BYTES",
    "HISTORY_ENV",
    "HISTORY_MAX_AGE_ENV",
    "HISTORY_MAX_BYTES_ENV",
    "HISTORY_STREAM",
    "HistoryKeeper",
    "HistorySettings",
    "covers_system_subjects",
    "ensure_history_stream",
    "first_token_patterns",
    "history_source",
    "open_history",
    "parse_size",
    "recorded_patterns",
    "root_patterns",
    "start_history",
    "system_subjects_refused",
]

HISTORY_STREAM = "fastiot_history"
"""The name of the rolling history's JetStream stream."""
DEFAULT_HISTORY_MAX_AGE = timedelta(hours=24)
DEFAULT_HISTORY_MAX_BYTES = 1024**3
"""1 GiB."""
HISTORY_ENV = "FASTIOT_HISTORY"
"""``off`` (or ``0``, ``false``, ``no``): the workbench's broker keeps no rolling history."""
HISTORY_MAX_AGE_ENV = "FASTIOT_HISTORY_MAX_AGE"
HISTORY_MAX_BYTES_ENV = "FASTIOT_HISTORY_MAX_BYTES"
SEED_ROOTS = (MSG_FORMAT_VERSION,)
"""First tokens the history records from its start (FastIoT's subjects all start with ``v1``)."""

_ERR_OVERLAP = 10065
_ERR_NAME_IN_USE = 10058
_OFF = {"0", "off", "false", "no"}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_FACTOR = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}
_logger = setup_logger("history")


def parse_size(text: str | int) -> int:
    """A size in bytes from ``1GiB``, ``512MiB``, ``500MB``, ``2g`` or a number of bytes.

    Raises:
        ValueError: Not a size (the message shows the accepted forms).

    Example:
        >>> parse_size("1GiB"), parse_size("500MB"), parse_size(1024)
        (1073741824, 500000000, 1024)
    """
    if isinstance(text, int) and not isinstance(text, bool):
        size = text
    else:
        match = _SIZE.match(str(text))
        if match is None:
            raise ValueError(
                f"{text!r} is not a size; use bytes or a number with a unit: 512MiB, 1GiB, 500MB"
            )
        unit = (match.group(2) or "").lower()
        binary = "i" in unit
        factor = 1024 ** "bkmgt".index(unit[0]) if binary else _SIZE_FACTOR[unit[:1]]
        size = int(float(match.group(1)) * factor)
    if size < 1:
        raise ValueError(f"a size must be at least one byte, got {text!r}")
    return size


@dataclass(frozen=True)
class HistorySettings:
    """Whether and how long the workbench's broker keeps its rolling history.

    Attributes:
        enabled: Keep one at all.
        max_age: Messages older than this go.
        max_bytes: The oldest messages go beyond this size.
    """

    enabled: bool = True
    max_age: timedelta = DEFAULT_HISTORY_MAX_AGE
    max_bytes: int = DEFAULT_HISTORY_MAX_BYTES

    @classmethod
    def from_env(cls) -> HistorySettings:
        """The settings ``FASTIOT_HISTORY``, ``FASTIOT_HISTORY_MAX_AGE`` and ``_MAX_BYTES`` ask for.

        Raises:
            InvalidRecordingError: A setting is no duration or size (the message names it).
        """
        enabled = os.environ.get(HISTORY_ENV, "").strip().lower() not in _OFF
        age_text = os.environ.get(HISTORY_MAX_AGE_ENV, "").strip()
        size_text = os.environ.get(HISTORY_MAX_BYTES_ENV, "").strip()
        try:
            max_age = parse_duration(age_text) if age_text else DEFAULT_HISTORY_MAX_AGE
            max_bytes = parse_size(size_text) if size_text else DEFAULT_HISTORY_MAX_BYTES
        except ValueError as e:
            raise InvalidRecordingError(f"{HISTORY_MAX_AGE_ENV} / {HISTORY_MAX_BYTES_ENV}: {e}") from None
        if max_age <= timedelta(0):
            raise InvalidRecordingError(f"{HISTORY_MAX_AGE_ENV} must be positive, got {age_text!r}")
        return cls(enabled, max_age, max_bytes)

    def describe(self) -> str:
        """``history of 24h / 1 GiB`` for a banner."""
        hours = self.max_age.total_seconds() / 3600
        return f"rolling history {HISTORY_STREAM!r}: {hours:g} h / {self.max_bytes / 1024**3:g} GiB"


def root_patterns(root: str) -> list[str]:
    """The stream patterns of a first token: the one-token subject and everything below it."""
    return [root, f"{root}.>"]


def first_token_patterns(subjects: Iterable[str]) -> list[str]:
    """Stream patterns that cover every non-system subject of ``subjects``: a pair per first token.

    What "record everything" can be where no rolling history is there to copy from.

    Example:
        >>> first_token_patterns(["v1.thing.a", "plant.b", "$KV.x.k", "_INBOX.r"])
        ['plant', 'plant.>', 'v1', 'v1.>']
    """
    roots = sorted({subject.partition(".")[0] for subject in subjects if not is_system_subject(subject)})
    return [pattern for root in roots for pattern in root_patterns(root)]


def covers_system_subjects(pattern: str) -> bool:
    """Whether a stream on ``pattern`` would take NATS' own subjects (``$...``, ``_INBOX.``).

    A wildcard first token does (``>``, ``*.>``, even ``*.temperature``: nats-server refuses such a
    stream unless it leaves every message unacknowledged, as it overlaps JetStream's API).

    Example:
        >>> [covers_system_subjects(p) for p in (">", "*.temperature", "$KV.config.>", "v1.*.temperature")]
        [True, True, True, False]
    """
    first = pattern.split(".", 1)[0]
    return first in ("*", ">") or is_system_subject(pattern) or is_system_subject(f"{first}.")


def system_subjects_refused(patterns: list[str]) -> InvalidRecordingError:
    """The error for recording NATS' own subjects where no rolling history is there to record from."""
    return InvalidRecordingError(
        f"cannot record {', '.join(patterns)}: that takes NATS' own subjects too ($JS. API traffic, $KV. "
        f"buckets, _INBOX. replies), and a stream on them keeps every key-value bucket and other stream "
        f"from being made. Record the subjects you need, e.g. 'v1.>' (the SubjectBrowser's Record on '>' "
        f"records each first token it has seen), or use a broker with the rolling history (the one "
        f"fastiot-workbench starts keeps one)"
    )


def recorded_patterns(config: StreamConfig) -> list[str]:
    """The patterns a stream records: its subjects, or what it takes from the history (a source's filters)."""
    if config.subjects:
        return list(config.subjects)
    patterns: list[str] = []
    for source in config.sources or []:
        if source.name != HISTORY_STREAM:
            continue
        transforms = source.subject_transforms or []
        patterns.extend(t.src for t in transforms if t.src)
        if source.filter_subject:
            patterns.append(source.filter_subject)
        if not transforms and not source.filter_subject:
            patterns.append(">")
    return patterns


def history_source(config: StreamConfig, patterns: list[str]) -> StreamConfig:
    """``config`` as a stream that takes ``patterns`` from the rolling history, from now on.

    The history holds every non-system subject, and a subject can be stored by one stream only; a
    stream that sources the history copies what it wants instead, kept under its own limits.
    """
    transforms = None if patterns == [">"] else [SubjectTransform(src=p, dest=p) for p in patterns]
    source = StreamSource(
        name=HISTORY_STREAM, opt_start_time=datetime.now(timezone.utc), subject_transforms=transforms
    )
    return config.evolve(subjects=None, sources=[source])


def _history_config(max_age: timedelta, max_bytes: int, subjects: list[str]) -> StreamConfig:
    return StreamConfig(
        name=HISTORY_STREAM,
        description="fastiot workbench: rolling history of every non-system subject",
        subjects=subjects,
        max_age=max_age.total_seconds(),
        max_bytes=max_bytes,
        storage=StorageType.FILE,
        # The stream must not answer: a request on a recorded subject would get its ack as the reply.
        no_ack=True,
    )


async def ensure_history_stream(
    connection: NatsBrokerConnection,
    *,
    max_age: timedelta = DEFAULT_HISTORY_MAX_AGE,
    max_bytes: int = DEFAULT_HISTORY_MAX_BYTES,
) -> StreamConfig:
    """Make the history stream (recording :data:`SEED_ROOTS`), or set the limits of the one there.

    A first token another stream records already is left out (and the keeper will not take it).

    Returns:
        The stream's configuration.

    Raises:
        JetStreamUnavailableError: The server runs without JetStream.
        HistoryServerError: The server refused the stream.
    """
    try:
        return await _ensure_history_stream(connection, max_age, max_bytes)
    except (nats.js.errors.Error, nats.errors.Error) as e:
        raise jetstream_error(e, connection, "making the rolling history") from None


async def _ensure_history_stream(
    connection: NatsBrokerConnection, max_age: timedelta, max_bytes: int
) -> StreamConfig:
    jsm = connection.client.jsm()
    try:
        have = (await jsm.stream_info(HISTORY_STREAM)).config
    except nats.js.errors.NotFoundError:
        have = None
    if have is not None:
        if have.max_age != max_age.total_seconds() or have.max_bytes != max_bytes or not have.no_ack:
            limits = have.evolve(max_age=max_age.total_seconds(), max_bytes=max_bytes, no_ack=True)
            return (await jsm.update_stream(limits)).config
        return have
    seeds = [p for root in SEED_ROOTS for p in root_patterns(root)]
    for subjects in (seeds, []):
        try:
            # No subjects: the server records the stream's name alone until the keeper adds tokens.
            return (await jsm.add_stream(_history_config(max_age, max_bytes, subjects))).config
        except nats.js.errors.APIError as e:
            if e.err_code == _ERR_NAME_IN_USE:  # made by another workbench process a moment ago
                return (await jsm.stream_info(HISTORY_STREAM)).config
            if e.err_code != _ERR_OVERLAP or not subjects:
                raise
            _logger.warning("another stream records %s already: the history leaves it out", ", ".join(seeds))
    raise AssertionError("unreachable")  # pragma: no cover


class HistoryKeeper(BrokerObserver):
    """Keeps the history stream recording every first token published on the broker.

    Per message it looks at the first token only (one dict lookup); a token not seen before is added
    to the stream's subjects in the background (tokens of NATS' own subjects never are). A token that
    another stream records already is left out, once, with a warning (:attr:`left_out`).

    Args:
        connection: A connection to the broker whose history this is.
        owns_connection: Close ``connection`` when the keeper stops.

    Example:
        >>> async def main(connection):
        ...     keeper = await HistoryKeeper(connection).start()
        ...     await keeper.settled()            # the tokens seen so far are recorded
        ...     return keeper.roots
    """

    _what = "history keeper"

    def __init__(self, connection: NatsBrokerConnection, *, owns_connection: bool = False) -> None:
        super().__init__(
            connection,
            pending_msgs_limit=DEFAULT_PENDING_MSGS_LIMIT,
            pending_bytes_limit=DEFAULT_PENDING_BYTES_LIMIT,
        )
        self._client_connection: NatsBrokerConnection = connection
        self._owns_connection: bool = owns_connection
        self._seen: set[str] = set()  # first tokens looked at: recorded, system, or left out
        self._roots: set[str] = set()
        self._wanted: list[str] = []
        self._adding: bool = False  # a task adds the wanted tokens (set and cleared without an await between)
        self.left_out: dict[str, str] = {}
        """First tokens not recorded because another stream records them: token -> that stream."""
        self._tasks: BackgroundTasks = BackgroundTasks(
            on_error=lambda e, what: _logger.error("the history keeper failed to %s: %s", what, e)
        )

    @property
    def roots(self) -> list[str]:
        """The first tokens the history records, sorted."""
        return sorted(self._roots)

    def _subscription_plan(self) -> list[tuple[str, MessageHandler]]:
        seen = self._seen

        def on_msg(msg: Message) -> None:
            root = msg.subject.partition(".")[0]
            if root not in seen:
                self._learn(root)

        return [(">", on_msg)]

    def _listener_news(self, listener: Listener) -> Any:
        return None

    async def _start(self) -> None:
        config = (await self._client_connection.client.jsm().stream_info(HISTORY_STREAM)).config
        for subject in config.subjects or []:
            if subject.endswith(".>"):
                self._roots.add(subject[:-2])
        self._seen |= self._roots
        await super()._start()

    async def _stop(self) -> None:
        await self._tasks.cancel()
        await super()._stop()
        if self._owns_connection:
            await self._client_connection.close()

    def _learn(self, root: str) -> None:
        self._seen.add(root)
        if is_system_subject(f"{root}."):
            return
        self._wanted.append(root)
        if not self._adding:
            self._adding = True
            self._tasks.spawn(self._add_wanted(), what="record new subjects")

    async def settled(self, timeout: float = 10.0) -> None:
        """Wait until every first token seen so far is in the stream's subjects (or left out)."""
        await self.sync(timeout)
        await self._tasks.wait(timeout)

    async def _add_wanted(self) -> None:
        roots: list[str] = []
        try:
            while self._wanted:
                roots, self._wanted = self._wanted, []
                await self._add(roots)
                roots = []
        except BaseException:
            self._seen.difference_update(roots)  # tried again at their next message
            raise
        finally:
            self._adding = False

    async def _add(self, roots: list[str]) -> None:
        jsm = self._client_connection.client.jsm()
        config = (await jsm.stream_info(HISTORY_STREAM)).config
        subjects = list(config.subjects or [])
        added = [p for root in roots for p in root_patterns(root) if p not in subjects]
        try:
            await jsm.update_stream(config.evolve(subjects=subjects + added))
            self._roots.update(roots)
            return
        except nats.js.errors.APIError as e:
            if e.err_code != _ERR_OVERLAP:
                raise
        for root in roots:  # one of them is another stream's: find which, take the others
            await self._add_one(root)

    async def _add_one(self, root: str) -> None:
        jsm = self._client_connection.client.jsm()
        config = (await jsm.stream_info(HISTORY_STREAM)).config
        subjects = list(config.subjects or [])
        try:
            await jsm.update_stream(config.evolve(subjects=subjects + root_patterns(root)))
            self._roots.add(root)
        except nats.js.errors.APIError as e:
            if e.err_code != _ERR_OVERLAP:
                raise
            try:
                other = await jsm.find_stream_name_by_subject(f"{root}.>")
            except (nats.js.errors.Error, nats.errors.Error):
                other = "another stream"
            self.left_out[root] = other
            _logger.warning(
                "the rolling history leaves %s.> out: stream %r records subjects of it already (NATS stores "
                "a subject in one stream only)",
                root,
                other,
            )


async def open_history(connection: NatsBrokerConnection) -> Recording:
    """The rolling history on ``connection``'s broker as a :class:`~fastiot.history.Recording`.

    Raises:
        RecordingNotFoundError: The broker keeps none; the message says how to get one.
    """
    from fastiot.history.recording import Recording

    try:
        return await Recording.open(HISTORY_STREAM, connection=connection)
    except RecordingNotFoundError:
        raise RecordingNotFoundError(
            f"the broker at {redact_url(connection.connected_url or '')} keeps no rolling history: the "
            f"workbench keeps one only on the broker it starts itself (unless {HISTORY_ENV}=off). Record "
            f"what you need with Recording.start(name, 'v1.>'), or have the broker's administrator set up "
            f"the stream {HISTORY_STREAM!r} (README: History by default)",
            name=HISTORY_STREAM,
        ) from None


async def start_history(url: str, settings: HistorySettings | None = None) -> HistoryKeeper | None:
    """Make the history stream on the server at ``url`` and start keeping it (on the running loop).

    What the keeper process runs (:mod:`fastiot.history.rolling_cli`). Returns ``None`` when the settings
    (``FASTIOT_HISTORY=off``) turn the history off.
    """
    settings = settings or HistorySettings.from_env()
    if not settings.enabled:
        return None
    connection = await NatsBrokerConnection.connect(servers=url, name="fastiot-history")
    try:
        await ensure_history_stream(connection, max_age=settings.max_age, max_bytes=settings.max_bytes)
        return await HistoryKeeper(connection, owns_connection=True).start()
    except BaseException:
        await connection.close()
        raise
