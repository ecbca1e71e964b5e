"""Live statistics of every subject seen on the broker: :class:`SubjectIndex` and what it reports.

- :mod:`~fastiot.subjects.index`: :class:`SubjectIndex` (counting, lazy decoding, pause, set_pattern);
- :mod:`~fastiot.subjects.stats`: :class:`SubjectStats`, :class:`SubjectMessage`, :class:`SubjectTreeNode`;
- :mod:`~fastiot.subjects.tree`: :class:`SubjectTree` and :class:`LiveSubjectTree`, the token tree of an
  index's subjects with folding, a filter and a sort order, flattened to rows (what a SubjectBrowser
  shows).

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
from fastiot.subjects.tree import LiveSubjectTree, SubjectTree, TreeNode, TreeRow, subject_matcher

__all__ = [
    "DEFAULT_HISTORY",
    "DEFAULT_MAX_SUBJECTS",
    "SORT_KEYS",
    "ChangeCallback",
    "LiveSubjectTree",
    "MessageNotKeptError",
    "NotRunningError",
    "SubjectCounter",
    "SubjectCounters",
    "SubjectIndex",
    "SubjectMessage",
    "SubjectStats",
    "SubjectTree",
    "SubjectTreeNode",
    "TreeNode",
    "TreeRow",
    "WaitTimeoutError",
    "build_tree",
    "subject_matcher",
]
