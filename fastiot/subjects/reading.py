"""What a :class:`~fastiot.subjects.SubjectIndex` tells about the subjects it counted.

:class:`SubjectIndexReading` is the reading half of the index: the counters (without decoding), the
decoded payloads, diffs and numeric history of the kept messages, the MQTT topic, QoS and retained flag,
and the DataFrame and tree of every subject. The collecting half (subscribing, counting, keeping
payloads within ``max_bytes``, the listeners) is :mod:`fastiot.subjects.index`.

Example:
    >>> from fastiot.subjects import SubjectIndex
    >>> index = SubjectIndex()
    >>> index.subjects, index.sorted_subjects("rate", descending=True)
    ([], [])
"""

from __future__ import annotations

import dataclasses
import operator
import time
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastiot.capture.export import string_array
from fastiot.mqtt.sparkplug import learn_certificates
from fastiot.mqtt.topics import RETAINED_PREFIX, RetainedPublishHeaders, mqtt_qos, subject_to_topic
from fastiot.payloads import BatchDecoder, Decoded
from fastiot.subjects.entry import NOT_KEPT, SubjectEntry
from fastiot.subjects.stats import (
    SORT_KEYS,
    SubjectCounter,
    SubjectCounters,
    SubjectMessage,
    SubjectStats,
    SubjectTreeNode,
    build_tree,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_HISTORY", "SubjectIndexReading"]

# How many recent messages per subject are kept (undecoded) for the numeric history, diffs and the rate.
DEFAULT_HISTORY = 50

_time_ns = time.time_ns
_COUNT = operator.attrgetter("count")
_BYTES = operator.attrgetter("bytes")
_LAST_SEEN = operator.attrgetter("last_seen")


class SubjectIndexReading:
    """The reading half of :class:`~fastiot.subjects.SubjectIndex`: counters, payloads, tables.

    A base class of the index only; the index's collecting half fills the state declared here.
    """

    # The state the collecting half (fastiot.subjects.index.SubjectIndex) keeps up to date.
    _entries: dict[str, SubjectEntry]
    _pattern: str
    _msg_cls: type | None
    _received: int
    _max_bytes: int
    _kept_bytes: int
    _dropped_payloads: int
    _untracked_messages: int
    _untracked_names: set[str]
    _ignored_messages: int
    _rate_window_ns: int
    _decoder: BatchDecoder
    knows_retained: bool

    # -- reading: counters --------------------------------------------------------------------------

    @property
    def msg_cls(self) -> type | None:
        """The model payloads decode to when the index was made from a Subject, else None."""
        return self._msg_cls

    @property
    def pattern(self) -> str:
        """The NATS pattern watched."""
        return self._pattern

    @property
    def received(self) -> int:
        """Messages counted in the statistics (of the subjects tracked now) since made or cleared."""
        return self._received

    @property
    def max_bytes(self) -> int:
        """The payload bytes the kept messages of all subjects may hold together."""
        return self._max_bytes

    @property
    def payload_bytes(self) -> int:
        """The payload bytes the kept messages hold now (at most :attr:`max_bytes`)."""
        return self._kept_bytes

    @property
    def dropped_payloads(self) -> int:
        """Messages whose payload was let go before ``history`` newer ones came, to stay within ``max_bytes``.

        They are counted in the statistics; only their payloads (for diffs, history, ...) are gone.
        """
        return self._dropped_payloads

    @property
    def untracked_messages(self) -> int:
        """Messages not counted because ``max_subjects`` subjects were tracked already."""
        return self._untracked_messages

    @property
    def untracked_subjects(self) -> int:
        """Distinct subjects not tracked because of ``max_subjects`` (counted up to 100,000)."""
        return len(self._untracked_names)

    @property
    def ignored_messages(self) -> int:
        """Messages on ``_INBOX.*`` subjects, not tracked unless ``include_inbox``."""
        return self._ignored_messages

    @property
    def subjects(self) -> list[str]:
        """The tracked subjects, sorted."""
        return sorted(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, subject: object) -> bool:
        return subject in self._entries

    def __getitem__(self, subject: str) -> SubjectStats:
        return self.stats(subject)

    def counter(self, subject: str) -> SubjectCounter:
        """A subject's message count, payload bytes and last-seen time, without decoding anything.

        Raises:
            KeyError: If the subject has not been seen.
        """
        entry = self._entry(subject)
        return SubjectCounter(entry.count, entry.bytes, entry.last_seen)

    def counters(self) -> SubjectCounters:
        """Every tracked subject's counters at this instant, as arrays (a few ms for 100,000 subjects).

        What a view of thousands of subjects reads once per refresh: nothing is decoded, and subjects
        keep their position (the order they were first seen) from one call to the next until
        :meth:`clear` or a :meth:`set_pattern` that drops subjects.

        Example:
            >>> counters = SubjectIndex().counters()
            >>> len(counters), counters.count.dtype.name
            (0, 'int64')
        """
        import numpy as np

        entries = self._entries
        n = len(entries)
        values = entries.values()
        return SubjectCounters(
            subjects=list(entries),
            count=np.fromiter(map(_COUNT, values), np.int64, n),
            bytes=np.fromiter(map(_BYTES, values), np.int64, n),
            last_seen_ns=np.fromiter(map(_LAST_SEEN, values), np.int64, n),
        )

    def _entry(self, subject: str) -> SubjectEntry:
        try:
            return self._entries[subject]
        except KeyError:
            raise KeyError(
                f"no messages on {subject!r} yet (tracking {len(self._entries)} subjects on "
                f"{self._pattern!r}; see .subjects)"
            ) from None

    def _rate(self, entry: SubjectEntry, now: int) -> float:
        return entry.rate(now, self._rate_window_ns)

    def rate(self, subject: str) -> float:
        """Messages per second on ``subject`` (never 0.0 while it is alive, however slow)."""
        return self._rate(self._entry(subject), _time_ns())

    def sorted_subjects(self, key: str = "name", *, descending: bool = False) -> list[str]:
        """The tracked subjects sorted by ``name``, ``count``, ``rate``, ``bytes`` or ``last_seen``.

        Ties are broken by name, so the order is stable between calls.

        Raises:
            ValueError: If ``key`` is none of :data:`SORT_KEYS`.

        Example:
            >>> SubjectIndex().sorted_subjects("rate", descending=True)
            []
        """
        entries = self._entries
        if key == "name":
            return sorted(entries, reverse=descending)
        if key == "rate":
            now = _time_ns()
            values: dict[str, Any] = {s: self._rate(e, now) for s, e in entries.items()}
        elif key in ("count", "bytes", "last_seen"):
            values = {s: getattr(e, key) for s, e in entries.items()}
        else:
            raise ValueError(f"cannot sort subjects by {key!r}; use one of {', '.join(SORT_KEYS)}")
        by_name = sorted(entries)
        return sorted(by_name, key=values.__getitem__, reverse=descending)

    # -- reading: payloads --------------------------------------------------------------------------

    def _decode(self, data: bytes, subject: str, headers: Mapping[str, str] | None) -> Decoded:
        if data is NOT_KEPT:
            return Decoded(
                "bytes", b"", f"payload not kept: the index's max_bytes ({self._max_bytes:,}) was full"
            )
        if subject.startswith("spBv1//0."):  # the aliases of a Sparkplug B node are in its births
            learn_certificates(subject, self.last, self.__contains__)
        return self._decoder.decoded(data, subject, headers)

    def last(self, subject: str) -> Decoded:
        """The newest payload of ``subject``, decoded (cheap: only the newest is decoded, once).

        Raises:
            KeyError: If the subject has not been seen.
        """
        return self._entry(subject).last_decoded(subject, self._decode)

    def stats(self, subject: str) -> SubjectStats:
        """A snapshot of one subject's statistics, decoding its newest payloads if needed.

        Raises:
            KeyError: If the subject has not been seen.

        Example:
            >>> index = SubjectIndex()
            >>> "v1.thing.press_1.temperature" in index
            False
        """
        stats = self._entry(subject).snapshot(subject, self._decode, _time_ns(), self._rate_window_ns)
        mqtt = self.mqtt(subject)
        if mqtt is None:
            return stats
        return dataclasses.replace(stats, mqtt_topic=mqtt[0], mqtt_qos=mqtt[1], mqtt_retained=mqtt[2])

    def mqtt(self, subject: str) -> tuple[str, int, bool] | None:
        """``(topic, qos, retained)`` if an MQTT client published the newest message of ``subject``.

        ``retained`` comes with the message where the workbench serves MQTT (see
        :class:`fastiot.mqtt.topics.RetainedPublishHeaders`); else the index compares the newest payload
        with what it saw stored on ``$MQTT.rmsgs.<subject>`` (with a pattern such as ``>``).

        Raises:
            KeyError: If the subject has not been seen.

        Example:
            >>> async def main(index):
            ...     return index.mqtt("tele.plug_1.SENSOR")  # ('tele/plug_1/SENSOR', 0, False)
        """
        entry = self._entry(subject)
        qos = mqtt_qos(entry.last_headers)
        if qos is None:
            return None
        headers = entry.last_headers
        if self.knows_retained:
            return subject_to_topic(subject), qos, isinstance(headers, RetainedPublishHeaders)
        retained = self._entries.get(RETAINED_PREFIX + subject)
        is_retained = retained is not None and bool(retained.kept) and retained.kept[-1] == entry.kept[-1]
        return subject_to_topic(subject), qos, is_retained

    def last_payload(self, subject: str) -> Any:
        """The newest payload of a subject, decoded; ``None`` if it did not decode (see :meth:`last`)."""
        last = self.last(subject)
        return last.value if last.error is None else None

    def history(self, subject: str) -> dict[str, list[float]]:
        """The last values of each numeric field of a subject (flattened paths), oldest first."""
        entry = self._entry(subject)
        entry.decode_history(subject, self._decode)
        return {name: list(values) for name, values in entry.history.items()}

    def recent(self, subject: str, n: int = DEFAULT_HISTORY) -> list[tuple[datetime, bytes]]:
        """The newest ``n`` (receive time, raw payload) pairs of a subject, newest first.

        At most ``history`` are kept per subject; :meth:`messages` has them decoded, with headers.

        Raises:
            KeyError: If the subject has not been seen.
        """
        return self._entry(subject).recent(n)

    def messages(self, subject: str, n: int = DEFAULT_HISTORY) -> list[SubjectMessage]:
        """The newest ``n`` messages of a subject, newest first, decoded, with their headers.

        Raises:
            KeyError: If the subject has not been seen.

        Example:
            >>> async def main(index):
            ...     newest, previous = index.messages("v1.thing.press_1.temperature", 2)
            ...     return newest.decoded.value, newest.headers
        """
        return self._entry(subject).messages(subject, n, self._decode)

    def diff(self, subject: str, older: int = 1, newer: int = 0) -> list[tuple[str, Any, Any]]:
        """What changed between two kept messages of ``subject`` (0 is the newest, 1 the one before).

        Returns :func:`fastiot.payloads.diff` of their decoded values: ``(path, old, new)`` per field.

        Raises:
            KeyError: If the subject has not been seen.
            MessageNotKeptError: If fewer messages are kept than the positions need.

        Example:
            >>> async def main(index):
            ...     return index.diff("v1.thing.press_1.temperature")  # the last two messages
        """
        return self._entry(subject).diff(subject, older, newer, self._decode)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per subject, sorted by subject.

        Columns: ``subject``, ``count``, ``rate`` (messages/s), ``bytes``, ``first_seen`` and
        ``last_seen`` (``datetime64[ns, UTC]``).

        Example:
            >>> SubjectIndex().to_dataframe().columns.tolist()
            ['subject', 'count', 'rate', 'bytes', 'first_seen', 'last_seen']
        """
        import numpy as np
        import pandas as pd

        now = _time_ns()
        subjects = sorted(self._entries)
        entries = [self._entries[s] for s in subjects]
        utc = pd.DatetimeTZDtype("ns", "UTC")
        return pd.DataFrame(
            {
                "subject": string_array(subjects),
                "count": np.array([e.count for e in entries], dtype=np.int64),
                "rate": np.array([self._rate(e, now) for e in entries], dtype=np.float64),
                "bytes": np.array([e.bytes for e in entries], dtype=np.int64),
                "first_seen": pd.array(
                    np.array([e.first_seen for e in entries], dtype=np.int64).view("M8[ns]"), dtype=utc
                ),
                "last_seen": pd.array(
                    np.array([e.last_seen for e in entries], dtype=np.int64).view("M8[ns]"), dtype=utc
                ),
            }
        )

    def tree(self, sort: str = "name", *, descending: bool = False) -> SubjectTreeNode:
        """The subjects grouped by their dot-separated tokens, with totals at every level.

        Args:
            sort: How children are ordered: by ``name`` (token), ``count``, ``rate``, ``bytes`` or
                ``last_seen`` (the newest message below a node).
            descending: Largest (or newest) first.

        Returns:
            The root node (``path == ""``).

        Example:
            >>> SubjectIndex().tree().subjects
            0
        """
        now = _time_ns()
        rows = [(s, e.count, e.bytes, self._rate(e, now), e.last_seen) for s, e in self._entries.items()]
        return build_tree(rows, sort=sort, descending=descending)
