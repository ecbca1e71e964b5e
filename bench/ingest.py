#!/usr/bin/env python3
"""Ingest without a server: CPU time per row of a capture's callback and of a recording's frame builder.

What a change to the decoding or the columnar buffer costs, without the broker, the network and the
other load of the machine in the figure (``bench/capture.py`` and ``bench/history.py`` measure the
whole way, with a nats-server, and are noisy on a shared machine). In this one process:

(a) ``--rows`` Things (1,000 distinct payloads, as FastIoT services publish them) through the NATS callback
    of ``MessageCapture("v1.thing.>", max_rows=rows)``, then its staged rows written (what a read does);
    and the same through a capture of ``Thing.get_subject(">")`` (each payload validated as a Thing);
(b) the same rows into a recording's frame builder (``fastiot.history._frames.FrameBuilder``) in batches of
    8,192 rows (what ``Recording.to_dataframe()`` gets from the stream), then ``to_dataframe()``.

Each is run ``--rounds`` times; the figure is the least CPU time per row (the run least disturbed).
Results go to ``bench/results/ingest.json``; ``bench/side_by_side.py`` runs it on an older commit too.

Usage::

    python bench/ingest.py --rows 200000 --rounds 7
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any

from _shared import Option, environment, log, run_benchmark, thing_payloads

DEFAULT_ROWS = 200_000
DEFAULT_ROUNDS = 7
BATCH_ROWS = 8_192  # the stream reader's batches (fastiot.history._reader.DEFAULT_BATCH_ROWS)

OPTIONS: list[Option] = [
    ("--rows", DEFAULT_ROWS, "rows per run"),
    ("--rounds", DEFAULT_ROUNDS, "runs of each; the least CPU time counts"),
]


class FakeMsg:
    """What a NATS callback reads of a message."""

    __slots__ = ("data", "headers", "subject")

    def __init__(self, subject: str, data: bytes) -> None:
        self.subject, self.data, self.headers = subject, data, None


def capture_run(messages: list[FakeMsg], rows: int, typed: bool = False) -> float:
    from fastiot.capture import MessageCapture
    from fastiot.msg.thing import Thing

    subjects = Thing.get_subject(">") if typed else "v1.thing.>"
    capture = MessageCapture(subjects, connection=None, max_rows=rows)
    ((_, on_msg),) = capture._subscription_plan()
    n = len(messages)
    gc.collect()
    start = time.process_time()
    for i in range(rows):
        on_msg(messages[i % n])
    capture.columns  # noqa: B018 - writes the staged rows
    seconds = time.process_time() - start
    if len(capture) != rows:
        raise RuntimeError(f"the capture kept {len(capture)} of {rows} rows")
    return seconds


def frames_run(batches: list[Any], rows: int) -> float:
    from fastiot.history._frames import FrameBuilder

    gc.collect()
    start = time.process_time()
    builder = FrameBuilder(rows)
    for batch in batches:
        builder.add(batch, None)
    frame = builder.to_dataframe()
    seconds = time.process_time() - start
    if len(frame) != rows:
        raise RuntimeError(f"the frame has {len(frame)} of {rows} rows")
    return seconds


async def main(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from fastiot.history._consumers import RawBatch

    rows: int = args.rows
    payloads = thing_payloads()
    messages = [FakeMsg(subject, data) for subject, data in payloads]
    batches = []
    for first in range(0, rows, BATCH_ROWS):
        ks = range(first, min(rows, first + BATCH_ROWS))
        numbers = np.arange(ks.start, ks.stop, dtype=np.int64)
        batches.append(
            RawBatch(
                [payloads[k % len(payloads)][0] for k in ks],
                numbers,
                numbers * 1_000_000,
                [payloads[k % len(payloads)][1] for k in ks],
            )
        )
    # Warm-up: imports (pandas on the first frame) and first calls are not what is measured.
    capture_run(messages, len(batches[0]))
    frames_run(batches[:1], len(batches[0]))
    runs: dict[str, list[float]] = {"capture": [], "capture_model": [], "frames": []}
    for r in range(args.rounds):
        runs["capture"].append(capture_run(messages, rows))
        runs["capture_model"].append(capture_run(messages, rows, typed=True))
        runs["frames"].append(frames_run(batches, rows))
        log(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in runs.items()) + " (CPU)")
    return {
        "parameters": {"rows": rows, "rounds": args.rounds, "batch_rows": BATCH_ROWS},
        "environment": environment(("fastiot-workbench", "msgpack", "numpy", "pandas")),
        "capture_ns_per_row": 1e9 * min(runs["capture"]) / rows,
        "capture_model_ns_per_row": 1e9 * min(runs["capture_model"]) / rows,
        "frames_ns_per_row": 1e9 * min(runs["frames"]) / rows,
        "runs": runs,
    }


def table(report: dict[str, Any]) -> str:
    rows, rounds = report["parameters"]["rows"], report["parameters"]["rounds"]
    return "\n".join(
        [
            f"Ingest without a server: {rows:,} Things, least CPU time of {rounds} runs",
            f"MessageCapture callback + writing the rows    {report['capture_ns_per_row']:>8.0f} ns/row",
            f"  on Thing's subject (validated)             {report['capture_model_ns_per_row']:>8.0f} ns/row",
            f"FrameBuilder (8,192-row batches) + DataFrame  {report['frames_ns_per_row']:>8.0f} ns/row",
        ]
    )


async def _no_publisher(*_: str) -> None:
    raise SystemExit("bench/ingest.py has no publisher process")


if __name__ == "__main__":
    run_benchmark("ingest", __doc__, OPTIONS, main, table, _no_publisher)
