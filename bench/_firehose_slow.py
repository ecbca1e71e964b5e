"""Part (d) of bench/firehose.py: a slow ``@subscribe`` handler flooded beside a fast sibling.

See the docstring of bench/firehose.py for what is measured and why.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
from typing import Any

from _firehose_common import RUN_TIMEOUT, flood, lateness_summary
from _shared import Publisher, log, rotated

SLOW_DELAY = 0.01  # the slow handler's work: at most 100 messages/s
SLOW_SUBJECT, FAST_SUBJECT = "v1.bench_slow_work", "v1.bench_fast_work"


def work_models() -> tuple[type, type]:
    """The two messages of (d), on SLOW_SUBJECT and FAST_SUBJECT."""
    from fastiot.core import FastIoTPublish

    class BenchSlowWork(FastIoTPublish):
        seq: int

    class BenchFastWork(FastIoTPublish):
        seq: int

    assert BenchSlowWork.get_subject().name == SLOW_SUBJECT
    assert BenchFastWork.get_subject().name == FAST_SUBJECT
    return BenchSlowWork, BenchFastWork


async def slow_handler_run(
    url: str, publisher: Publisher, count: int, limit: int, delay: float
) -> dict[str, Any]:
    """A service whose handler ``slow`` takes ``delay`` s (0: no work) beside a fast one, flooded."""
    from fastiot.core import FastIoTService, subscribe
    from fastiot.core.broker_connection import NatsBrokerConnection, NatsBrokerSubscription

    slow_work, fast_work = work_models()

    class Plant(FastIoTService):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.fast_seen: list[int] = []
            self.fast_done: asyncio.Event = asyncio.Event()

        @subscribe(subject=slow_work.get_subject())
        async def slow(self, work: Any) -> None:
            if delay:
                await asyncio.sleep(delay)

        @subscribe(subject=fast_work.get_subject())
        async def fast(self, work: Any) -> None:
            self.fast_seen.append(work.seq)
            if len(self.fast_seen) == count:
                self.fast_done.set()

    connection = await NatsBrokerConnection.connect(servers=url, name="bench-firehose-slow-handler")
    connection.pending_msgs_limit = limit  # for the subscriptions made from now on: the service's
    plant = Plant(broker_connection=connection)
    backlog = {"slow": 0, "fast": 0}
    async with plant:
        slow, fast = plant.subscriptions["slow"], plant.subscriptions["fast"]
        assert isinstance(slow, NatsBrokerSubscription) and isinstance(fast, NatsBrokerSubscription)
        await connection.client.flush()

        def sample() -> None:
            backlog["slow"] = max(backlog["slow"], slow.pending_msgs)
            backlog["fast"] = max(backlog["fast"], fast.pending_msgs)

        publisher.go(f"build {count}")
        await publisher.result()
        published, elapsed, lateness = await flood(
            publisher, f"work {count}", lambda: asyncio.wait_for(plant.fast_done.wait(), RUN_TIMEOUT), sample
        )
        # The messages alternate on one connection: once the sibling has its last one, every message of
        # the slow handler has reached the client too. Each is handled, waiting, or dropped.
        handled, waiting, dropped = slow.received, slow.pending_msgs, slow.slow_consumer_events
        await slow.unsubscribe()  # its backlog would take waiting x delay s to work off
    await connection.close()
    summary = lateness_summary(lateness)
    result = {
        "handler_delay": delay,
        "seconds": elapsed,
        "publisher_msgs_per_s": published["published"] / published["seconds"],
        "fast_received": len(plant.fast_seen),
        "fast_in_order": plant.fast_seen == list(range(count)),
        "fast_dropped": fast.slow_consumer_events,
        "slow_handled": handled,
        "slow_waiting": waiting,
        "slow_dropped": dropped,
        "max_backlog_slow": backlog["slow"],
        "max_backlog_fast": backlog["fast"],
        "drops_exact": handled + waiting + dropped == count and connection.slow_consumer_events == dropped,
        "lateness": summary,
        "ticks": lateness,
    }
    log(
        f"  slow handler {delay * 1e3:.0f} ms: sibling got {result['fast_received']:,} of {count:,}; slow "
        f"handled {handled:,}, waiting {waiting:,}, dropped {dropped:,}; max backlog {backlog['slow']:,} "
        f"/ {limit:,}; lateness p50 {summary['p50_ms']:.1f} p99 {summary['p99_ms']:.1f} "
        f"max {summary['max_ms']:.1f} ms"
    )
    return result


async def measure_slow_handler(url: str, publisher: Publisher, args: argparse.Namespace) -> dict[str, Any]:
    count, limit = args.slow_messages, args.slow_limit
    log(
        f"(d) slow handler: {count:,} messages each to a {SLOW_DELAY * 1e3:.0f} ms handler and its fast "
        f"sibling at full speed, pending_msgs_limit {limit:,}; baseline: the handler doing nothing"
    )
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "slow": []}
    for r in range(args.slow_rounds):
        order = [("baseline", 0.0), ("slow", SLOW_DELAY)]
        for name, delay in rotated(order, r):
            runs[name].append(await slow_handler_run(url, publisher, count, limit, delay))
            gc.collect()
    ticks = {name: [x for run in rs for x in run.pop("ticks")] for name, rs in runs.items()}
    slow, baseline = runs["slow"], runs["baseline"]
    lateness = lateness_summary(ticks["slow"])
    baseline_lateness = lateness_summary(ticks["baseline"])
    return {
        "messages_each": count,
        "pending_msgs_limit": limit,
        "rounds": args.slow_rounds,
        "lateness": lateness,
        "fast_received_min": min(run["fast_received"] for run in slow),
        "fast_in_order": all(run["fast_in_order"] for run in slow),
        "fast_dropped": sum(run["fast_dropped"] for run in slow),
        "max_backlog_slow": max(run["max_backlog_slow"] for run in slow),
        "max_backlog_fast": max(run["max_backlog_fast"] for run in slow),
        "slow_dropped_min": min(run["slow_dropped"] for run in slow),
        "drops_exact": all(run["drops_exact"] and run["slow_dropped"] > 0 for run in slow),
        "per_round": slow,
        "baseline": {
            "lateness": baseline_lateness,
            "dropped": sum(run["slow_dropped"] + run["fast_dropped"] for run in baseline),
            "per_round": baseline,
        },
        "p99_over_baseline": lateness["p99_ms"] / max(baseline_lateness["p99_ms"], 1e-6),
    }
