"""The subject tree model without any widget: totals, folding, filter and sort order from plain Python."""

from __future__ import annotations

import numpy as np

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.core.serialization import pack
from fastiot.subjects import LiveSubjectTree, SubjectIndex, SubjectTree, build_tree, subject_matcher
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


def _machines(tree: LiveSubjectTree, prefix: str) -> list[str]:
    return [node.token for node in tree.flat() if node.parent is not None and node.parent.path == prefix]


async def test_sorted_by_count_machines_at_the_same_rate_keep_name_order_at_every_resort(
    broker: NatsBrokerConnection, prefix: str
) -> None:
    # Three machines publish once a tick each, at the same rate; which of them has reached the kernel
    # when the counters are read changes from tick to tick. Their counts are tied but for that one
    # message, so sorted by count they must stay in name order instead of swapping at every re-sort
    # (where a click then lands on another machine).
    machines = [f"{prefix}.{name}.temperature" for name in ("oven_1", "press_1", "press_2")]
    index = SubjectIndex(f"{prefix}.>", broker)
    await index.start()
    tree = LiveSubjectTree(index)
    tree.sort_by = "count"
    orders = []
    received = 0
    for tick in range(9):
        now = 1.5 * tick  # the tree's clock: renders 1.5 s apart, re-sorting at each
        first = machines[tick % 3]  # this machine's message is in when the counters are read
        for subject in [first, *(m for m in machines if m != first)]:
            await broker.publish_raw(subject, pack({"value": tick}))
            received += 1
            await index.wait_for(received, timeout=5)
            if subject == first:
                tree.sync(now)
                tree.resort(now, interval=1.0)
                orders.append(_machines(tree, prefix))
    # The first two re-sorts come before any rate is known (a second of history); from then on, one order.
    assert {tuple(order) for order in orders[2:]} == {("oven_1", "press_1", "press_2")}, orders
    # A machine clearly ahead (more than a second of its traffic) is still sorted first.
    for n in range(20):
        await broker.publish_raw(machines[2], pack({"value": n}))
    await index.wait_for(received + 20, timeout=5)
    tree.sync(15.0)
    tree.resort(15.0, interval=1.0)
    assert _machines(tree, prefix) == ["press_2", "oven_1", "press_1"]
    await index.stop()


def test_the_index_tree_sorted_highest_first_keeps_ties_in_name_order() -> None:
    # Like SubjectIndex.sorted_subjects: ties in name order whichever way the numbers run.
    rows = [(f"v1.{name}", count, 0, 0.0, 0) for name, count in (("c", 2), ("a", 2), ("d", 5), ("b", 2))]
    for descending in (True, False):
        root = build_tree(rows, sort="count", descending=descending).find("v1")
        assert root is not None
        tied = [token for token in root.children if token != "d"]
        assert tied == ["a", "b", "c"], f"descending={descending}"
    root = build_tree(rows, sort="name", descending=True).find("v1")
    assert root is not None and list(root.children) == ["d", "c", "b", "a"]
