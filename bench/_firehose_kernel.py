"""Part (e) of bench/firehose.py: a trivial cell in a real kernel that shows the widgets under a firehose
over 10,000 subjects, against the same kernel running only a bare nats-py subscriber; and the bytes per
second each widget sends over its comms meanwhile.

See the docstring of bench/firehose.py for what is measured and why.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from typing import Any

from _firehose_common import (
    BARE,
    FULL,
    PACED,
    RUN_TIMEOUT,
    WIDGETS,
    lateness_summary,
    phase_lines,
    stats_line,
)
from _kernel import BenchKernel
from _shared import BENCH_DIR, Publisher, log, rotated

QUIET = "quiet"
KERNEL_WARM_UP_CELLS = 20  # untimed, before the quiet baseline
MANY_SUBJECTS = 10_000  # the firehose of (e) goes round-robin over this many subjects
SELECTED_SUBJECT = "v1.thing.m000.s00"  # of the 10,000
PLOT_SUBJECTS = ["v1.thing.m000.s00", "v1.thing.m001.s00", "v1.thing.m002.s00"]
WIDGET_NAMES = ("browser", "table", "plot")
KERNEL_LABELS = {
    QUIET: "nothing, no firehose",
    BARE: "bare nats-py subscriber (kernel)",
    WIDGETS: "SubjectBrowser + MessageTable + LivePlot",
}
# The cells (e) runs. The bench's helpers come from bench/, put on the kernel's sys.path.
SETUP_CELL = """\
import sys
sys.path.insert(0, {bench_dir!r})
from _firehose_common import widget_counts
from _kernel import CommBytes, show_views
from _shared import BareSubscriber
from fastiot import workbench
from fastiot.core.broker_connection import DEFAULT_PENDING_BYTES_LIMIT, DEFAULT_PENDING_MSGS_LIMIT
comm_bytes = CommBytes(get_ipython().kernel.session)
"""
BARE_CELL = """\
bare = BareSubscriber({messages})
await bare.start(
    {url!r}, "bench-firehose-kernel-bare", DEFAULT_PENDING_MSGS_LIMIT, DEFAULT_PENDING_BYTES_LIMIT
)
"""
BARE_HANDLED = "bare.received + bare.lost"
BARE_DONE_CELL = """\
await bare.close()
counts = {{"received": bare.received, "lost": bare.lost, "accounted": bare.received + bare.lost == {sent}}}
"""
# As a notebook user writes it, on the kernel-wide connection. There is no front end: show_views asks the
# table's grid for the window a browser view would (the grid sends rows only to views); the other widgets
# send what they send to any front end.
WIDGETS_CELL = """\
from datetime import timedelta
from fastiot_widgets import LivePlot, MessageTable, SubjectBrowser

browser = SubjectBrowser(">")
table = MessageTable("v1.thing.>", max_rows={max_rows})
plot = LivePlot({plot_subjects!r}, "value", window=timedelta(minutes=5))
await browser.start()
await table.start()
await plot.start()
browser.select({subject!r})
show_views(browser, table, plot)
"""
WIDGETS_HANDLED = (
    "min(browser.index.received + browser.index.lost, table.capture.received + table.capture.lost)"
)
WIDGETS_DONE_CELL = """\
await browser.index.sync(timeout={timeout})
await table.capture.sync(timeout={timeout})
counts = widget_counts(browser, table, await workbench.connection(), {sent}, {max_rows})
counts["comm"] = comm_bytes.stop({{"browser": browser, "table": table, "plot": plot}})
await browser.aclose()
await table.aclose()
await plot.aclose()
"""
SHUTDOWN_CELL = """\
from fastiot import workbench
await workbench.shutdown()
"""


async def kernel_run(
    kernel: BenchKernel, url: str, publisher: Publisher, kind: str, messages: int, rate: float, max_rows: int
) -> dict[str, Any]:
    """Trivial cells while the kernel's bare subscriber (``kind`` BARE) or widgets follow the firehose."""
    if kind == BARE:
        start = BARE_CELL.format(messages=messages, url=url)
        handled, done = BARE_HANDLED, BARE_DONE_CELL
    else:
        start = WIDGETS_CELL.format(max_rows=max_rows, subject=SELECTED_SUBJECT, plot_subjects=PLOT_SUBJECTS)
        handled, done = WIDGETS_HANDLED, WIDGETS_DONE_CELL
    await kernel.call(kernel.execute, start)
    await kernel.call(kernel.execute, "comm_bytes.start()")
    published = threading.Event()
    started = time.perf_counter()
    cells = asyncio.ensure_future(
        kernel.call(kernel.round_trips_until, published, handled, messages, RUN_TIMEOUT)
    )
    publisher.go(f"things {messages} {rate} {MANY_SUBJECTS}")
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
    if "comm" in counts:
        counts["comm_bytes_per_s"] = {name: c["bytes"] / elapsed for name, c in counts["comm"].items()}
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
        f"{args.rate:,.0f} msgs/s and {args.messages:,} at full speed over {MANY_SUBJECTS:,} subjects, "
        f"{args.kernel_rounds} rounds; {args.kernel_quiet_cells} cells with nothing subscribed first"
    )
    from fastiot.env import FASTIOT_NATS_SERVERS

    kernel = BenchKernel({FASTIOT_NATS_SERVERS: url})
    try:
        await kernel.call(kernel.start, SETUP_CELL.format(bench_dir=str(BENCH_DIR)))
        for _ in range(KERNEL_WARM_UP_CELLS):
            await kernel.call(kernel.round_trip)
        quiet = [await kernel.call(kernel.round_trip) for _ in range(args.kernel_quiet_cells)]
        # Warm-up: the widgets' imports, the first connections and renders in the kernel.
        await kernel_run(kernel, url, publisher, BARE, 5_000, 0.0, args.max_rows)
        await kernel_run(kernel, url, publisher, WIDGETS, 5_000, 0.0, args.max_rows)
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {
            phase: {BARE: [], WIDGETS: []} for phase in phases
        }
        for r in range(args.kernel_rounds):
            for phase, (messages, rate) in phases.items():
                for kind in rotated([BARE, WIDGETS], r):
                    run = await kernel_run(kernel, url, publisher, kind, messages, rate, args.max_rows)
                    runs[phase][kind].append(run)
                    summary = lateness_summary(run["round_trips"], "cells")
                    comm = run.get("comm_bytes_per_s", {})
                    log(
                        f"  round {r + 1}/{args.kernel_rounds} {phase:>5} {kind:>7}: "
                        f"{run['seconds']:5.2f} s, {summary['cells']:,} cells, p50 {summary['p50_ms']:5.1f} "
                        f"p99 {summary['p99_ms']:6.1f} max {summary['max_ms']:6.1f} ms, "
                        f"lost {kernel_run_lost(kind, run):,}"
                        + "".join(f", {name} {comm[name] / 1e3:.1f} kB/s" for name in comm)
                    )
    finally:
        shutdown = await kernel.close(SHUTDOWN_CELL)
    return kernel_report(args, quiet, runs, phases, shutdown)


def kernel_report(
    args: argparse.Namespace,
    quiet: list[float],
    runs: dict[str, dict[str, list[dict[str, Any]]]],
    phases: dict[str, tuple[int, float]],
    shutdown: dict[str, Any],
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "cell": "1",
        "kernel_name": "python3",
        "rounds": args.kernel_rounds,
        "subjects": MANY_SUBJECTS,
        "plot_subjects": PLOT_SUBJECTS,
        "baseline": "the same kernel and firehose with a bare nats-py subscriber (unpack and count) instead "
        "of the widgets: what the widgets add; quiet: the same kernel before any subscription, no firehose",
        "comm": "bytes of comm_open/comm_msg/comm_close sent by the kernel (serialized frames with header "
        "and signature, plus binary buffers), per widget tree, over the seconds of each run",
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
        entry["comm_bytes_per_s_max"] = {
            name: max(run["comm_bytes_per_s"][name] for run in widgets) for name in (*WIDGET_NAMES, "other")
        }
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


def kernel_lines(kernel: dict[str, Any]) -> list[str]:
    """The table of (e)."""
    lines = [
        "",
        f"(e) round trips of a trivial cell ({kernel['cell']!r}) in a {kernel['kernel_name']} ipykernel "
        f"(jupyter_client), {kernel['subjects']:,} subjects, cells of {kernel['rounds']} rounds pooled",
        f"{'phase':<30}{'the kernel follows it with':<36}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'cells':>7}"
        f"{'lost':>8}",
        stats_line("no firehose", KERNEL_LABELS[QUIET], kernel[QUIET], "cells", 0),
        *phase_lines(kernel, KERNEL_LABELS, "cells"),
    ]
    for phase in (PACED, FULL):
        counts, comm = kernel[phase]["counts"], kernel[phase]["comm_bytes_per_s_max"]
        lines.append(
            f"  widgets saw, last {phase} run: browser {counts['index_received_last_round']:,}, table "
            f"{counts['capture_received_last_round']:,} of {counts['sent_last_round']:,} sent (table keeps "
            f"{counts['capture_rows_last_round']:,}, dropped {counts['capture_dropped_last_round']:,})"
        )
        lines.append(
            f"  comm kB/s, {phase} (most of the rounds): "
            + ", ".join(f"{name} {comm[name] / 1e3:.1f}" for name in (*WIDGET_NAMES, "other"))
        )
    return lines
