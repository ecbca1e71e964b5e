"""What the parts of bench/firehose.py share: constants, the ticker, the flood, statistics, widget counts.

Also imported inside the kernel of part (e) (bench/ is put on its ``sys.path``), for :func:`widget_counts`.
Only the standard library is imported at module level (see _shared.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _shared import Publisher, p50_p99_ms

TICK = 0.01  # the ticker's sleep: a trivial task that wants to run every 10 ms
PACE_SLICE = 0.002  # the paced publisher sends a slice's worth of messages, then waits for the next slice
RUN_TIMEOUT = 120.0
BARE, WIDGETS = "bare", "widgets"
PACED, FULL = "paced", "full"


# ---------------------------------------------------------------------------------------------------------
# The ticker and statistics
# ---------------------------------------------------------------------------------------------------------


class Ticker:
    """A coroutine that sleeps TICK s again and again and records how late it woke up each time."""

    def __init__(self, sample: Callable[[], None] | None = None) -> None:
        self.lateness: list[float] = []
        self._sample: Callable[[], None] | None = sample
        self._stopping: bool = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            due = loop.time() + TICK
            await asyncio.sleep(TICK)
            self.lateness.append(loop.time() - due)
            if self._sample is not None:
                self._sample()

    async def stop(self) -> list[float]:
        self._stopping = True
        assert self._task is not None
        await self._task
        return self.lateness


async def flood(
    publisher: Publisher,
    command: str,
    handled: Callable[[], Awaitable[Any]],
    sample: Callable[[], None] | None = None,
) -> tuple[dict[str, Any], float, list[float]]:
    """With a :class:`Ticker` running, send the publisher ``command``, wait for its answer and then for
    ``handled()``; return the answer, the seconds from the go until then, and the ticker's lateness."""
    ticker = Ticker(sample)
    started = time.perf_counter()
    ticker.start()
    publisher.go(command)
    published = await publisher.result()
    await handled()
    elapsed = time.perf_counter() - started
    return published, elapsed, await ticker.stop()


def lateness_summary(samples: list[float], count: str = "ticks") -> dict[str, Any]:
    """How many ``samples`` (seconds) there are, under the key ``count``, and their p50 / p99 / max in ms."""
    ordered = sorted(samples)
    return {
        count: len(ordered),
        **p50_p99_ms(ordered),
        "max_ms": ordered[-1] * 1e3,
    }


def evictions_exact(table: Any, max_rows: int) -> bool:
    """The table's capture evicted exactly what did not fit, and the widget (just rendered) says so."""
    capture = table.capture
    kept = min(capture.received, max_rows)
    return (
        capture.dropped == capture.received - kept
        and len(capture) == kept
        and (table.received, table.dropped, table.rows) == (capture.received, capture.dropped, kept)
    )


def widget_counts(browser: Any, table: Any, connection: Any, sent: int, max_rows: int) -> dict[str, Any]:
    """What a SubjectBrowser and a MessageTable on ``connection`` saw of ``sent`` messages, all handled.

    Also called inside the kernel of (e), which imports this file.
    """
    index, capture = browser.index, table.capture
    table.refresh()  # what the table shows next: the widget's counters must equal the capture's
    return {
        "index_received": index.received,
        "index_lost": index.lost,
        "capture_received": capture.received,
        "capture_lost": capture.lost,
        "capture_dropped": capture.dropped,
        "capture_rows": len(capture),
        "evictions_exact": evictions_exact(table, max_rows),
        "reconnects": connection.reconnects,
        "accounted": index.received + index.lost == sent
        and capture.received + capture.lost == sent
        and connection.reconnects == 0,
    }


def server_slow_consumers(monitor_url: str) -> int:
    """Connections the server found too slow (it drops them; the client's counters cannot see that)."""
    import urllib.request

    with urllib.request.urlopen(f"{monitor_url}/varz", timeout=5) as response:
        return int(json.load(response)["slow_consumers"])


# ---------------------------------------------------------------------------------------------------------
# Report lines
# ---------------------------------------------------------------------------------------------------------


def stats_line(title: str, label: str, stats: dict[str, Any], count: str, lost: int) -> str:
    return (
        f"{title:<30}{label:<36}{stats['p50_ms']:>8.1f}{stats['p99_ms']:>8.1f}{stats['max_ms']:>8.1f}"
        f"{stats[count]:>7,}{lost:>8,}"
    )


def phase_lines(section: dict[str, Any], labels: dict[str, str], count: str) -> list[str]:
    """The rows of the paced and the full-speed phase of (a) or (e): bare, widgets, their p99 ratio."""
    lines = []
    for phase in (PACED, FULL):
        entry = section[phase]
        if phase == PACED:
            title = f"{entry['messages']:,} at {entry['rate']:,.0f} msgs/s"
        else:
            title = f"{entry['messages']:,} at full speed"
        for kind in (BARE, WIDGETS):
            lost = entry["counts"]["bare_lost" if kind == BARE else "widgets_lost"]
            lines.append(stats_line(title if kind == BARE else "", labels[kind], entry[kind], count, lost))
        lines.append(
            f"{'':<30}{'p99 widgets / bare':<36}{entry['p99_ratio_widgets_over_bare']:>16.1f}x"
            f"   (publisher {entry['publisher_msgs_per_s']:,.0f} msgs/s)"
        )
    return lines
