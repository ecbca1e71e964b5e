"""The subject tree model without any widget: totals, folding, filter and sort order from plain Python."""

from __future__ import annotations

import numpy as np

from fastiot.subjects import SubjectTree, subject_matcher
from fastiot.subjects.tree import describe_age


def test_the_filter_takes_text_or_a_nats_pattern_and_ages_read_short() -> None:
    match = subject_matcher("v1.*.press_1.>")
    assert match is not None
    assert match("v1.thing.press_1.temperature") and not match("v1.thing.press_1")
    assert subject_matcher("  ") is None
    assert [describe_age(s) for s in (0.5, 59.9, 60, 3599, 3600, 86400 * 2)] == [
        "now",
        "59 s ago",
        "1 min ago",
        "59 min ago",
        "1 h ago",
        "2 d ago",
    ]


def test_the_tree_totals_and_sorts_come_from_one_snapshot_of_the_counters() -> None:
    tree = SubjectTree()
    for subject in ("p.b.x", "p.a.y", "p.a", "p.b.z", "q"):
        tree.add_subject(subject)  # slots 0..4 in this order
    tree.set_counters(np.array([1, 4, 2, 8, 16]), np.array([50, 10, 20, 40, 30]))

    def totals() -> dict[str, tuple[int, int]]:
        return {n.path: (tree.count_of(n), tree.last_seen_of(n)) for n in tree.flat()}

    # A subject that is a folder too (p.a) counts its own messages and those below it.
    assert totals() == {
        "p": (15, 50),
        "p.a": (6, 20),
        "p.a.y": (4, 10),
        "p.b": (9, 50),
        "p.b.x": (1, 50),
        "p.b.z": (8, 40),
        "q": (16, 30),
    }
    tree.sort_by = "count"
    tree.invalidate()
    assert [n.path for n in tree.flat()] == ["q", "p", "p.b", "p.b.z", "p.b.x", "p.a", "p.a.y"]
    tree.sort_by = "last_seen"
    tree.invalidate()
    assert [n.path for n in tree.flat()] == ["p", "p.b", "p.b.x", "p.b.z", "p.a", "p.a.y", "q"]
    # A new snapshot changes the numbers; the order waits for the next re-sort.
    tree.set_counters(np.array([1, 4, 2, 8, 100]), np.array([50, 10, 20, 40, 99]))
    assert totals()["q"] == (100, 99) and tree.flat()[-1].path == "q"
    tree.invalidate()
    assert tree.flat()[0].path == "q"
