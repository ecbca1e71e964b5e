"""The README's examples do what their comments say, run against a real broker."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastiot.core.broker_connection import NatsBrokerConnection
from fastiot.msg.thing import Thing
from fastiot.subjects import SubjectIndex, SubjectStats

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_lines(pattern: str) -> list[str]:
    """The lines of the README's Python examples that match ``pattern`` (a regex, at the line's start)."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if re.match(pattern, line)]


async def test_the_subject_statistics_example_reads_attributes(broker: NatsBrokerConnection) -> None:
    """``index.stats(...)`` is a SubjectStats: the README reads ``stats.count``, not ``stats["count"]``."""
    lines = _readme_lines(r"(stats = index\.stats\(|stats\.)")
    assert lines, "the README shows how to read a subject's statistics"
    subject = "v1.thing.press_1.temperature"
    async with SubjectIndex(Thing.get_subject(">"), broker) as index:
        thing = Thing(machine="press_1", name="temperature", value=21.5, unit="degC")
        await broker.publish(Thing.get_subject("press_1.temperature"), thing)
        await index.wait_for(1, timeout=10)
        namespace: dict[str, Any] = {"index": index}
        exec("\n".join(lines), namespace)
    stats = namespace["stats"]
    assert isinstance(stats, SubjectStats) and stats.subject == subject and stats.count == 1
