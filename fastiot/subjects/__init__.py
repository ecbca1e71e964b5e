"""Live statistics of every subject seen on the broker: :class:`SubjectIndex` and what it reports.

- :mod:`~fastiot.subjects.index`: :class:`SubjectIndex` (counting, lazy decoding, pause, set_pattern);
- :mod:`~fastiot.subjects.stats`: :class:`SubjectStats`, :class:`SubjectMessage`, :class:`SubjectTreeNode`.

Example:
    >>> from fastiot.subjects import SubjectIndex
    >>> async def main(connection):
    ...     async with SubjectIndex(">", connection) as index:
    ...         await index.wait_for(10, timeout=5)
    ...         return index.sorted_subjects("rate", descending=True)[:10]
"""

from __future__ import annotations

from fastiot.exceptions import MessageNotKeptError, NotRunningError, WaitTimeoutError
from fastiot.subjects.index import DEFAULT_HISTORY, DEFAULT_MAX_SUBJECTS, ChangeCallback, SubjectIndex
from fastiot.subjects.stats import (
    SORT_KEYS,
    SubjectCounter,
    SubjectCounters,
    SubjectMessage,
    SubjectStats,
    SubjectTreeNode,
    build_tree,
)

__all__ = [
    "DEFAULT_HISTORY",
    "DEFAULT_MAX_SUBJECTS",
    "SORT_KEYS",
    "ChangeCallback",
    "MessageNotKeptError",
    "NotRunningError",
    "SubjectCounter",
    "SubjectCounters",
    "SubjectIndex",
    "SubjectMessage",
    "SubjectStats",
    "SubjectTreeNode",
    "WaitTimeoutError",
    "build_tree",
]
