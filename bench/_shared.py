"""What the benchmark scripts in bench/ have in common: logging, statistics, options, the environment, the
report file, the Thing payloads, the publisher subprocess and FastIoT 1.1.23's venv.

The scripts are run as ``python bench/X.py``, so bench/ is on ``sys.path`` and they ``from _shared import``.
Only the standard library is imported at module level: ``bench/pubsub.py`` and ``bench/interop_fastiot.py``
also run inside FastIoT 1.1.23's venv, where ``fastiot`` is that old release; whatever needs this project's
``fastiot`` (or nats-py) imports it inside the function that uses it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

BENCH_DIR = Path(__file__).resolve().parent
DISTINCT_PAYLOADS = 1_000
PUBLISHER_PENDING_SIZE = 256 * 1024**2  # the publisher's client buffer: publishing at full speed never waits

T = TypeVar("T")
# A command-line option: (flag, default, help). The value has the default's type; a bool default (False)
# makes a flag.
Option = tuple[str, Any, str]


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def results_path(name: str) -> Path:
    return BENCH_DIR / "results" / f"{name}.json"


def utc_now() -> str:
    """The ``date`` of a report."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def rotated(items: Sequence[T], r: int) -> list[T]:
    """``items`` starting at ``r`` (modulo their number): round ``r``'s order, so no one always goes first."""
    k = r % len(items)
    return [*items[k:], *items[:k]]


# ---------------------------------------------------------------------------------------------------------
# Statistics, checks
# ---------------------------------------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def p50_p99_ms(sorted_values: list[float]) -> dict[str, float]:
    """``p50_ms`` and ``p99_ms`` of already sorted seconds."""
    return {
        "p50_ms": percentile(sorted_values, 0.50) * 1e3,
        "p99_ms": percentile(sorted_values, 0.99) * 1e3,
    }


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------------------------------------------------
# Options, environment, the report file
# ---------------------------------------------------------------------------------------------------------


def bench_parser(doc: str, output: Path, options: Iterable[Option]) -> argparse.ArgumentParser:
    """A parser described by the first line of ``doc``, with ``options`` and then ``--output``."""
    parser = argparse.ArgumentParser(description=doc.split("\n", 1)[0])
    for flag, default, text in options:
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true", help=text)
        else:
            parser.add_argument(flag, type=type(default), default=default, help=text)
    parser.add_argument("--output", type=Path, default=output, help="where to write the JSON results")
    return parser


def package_versions(packages: Iterable[str]) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def git(cwd: Path, *argv: str) -> str | None:
    """What ``git ARGV`` prints in ``cwd``, stripped; None if git is missing, fails or hangs."""
    try:
        done = subprocess.run(["git", *argv], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def platform_info() -> dict[str, Any]:
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}


def environment(packages: Iterable[str]) -> dict[str, Any]:
    """The machine, its load, the versions of ``packages`` and the commit of bench/."""
    return {
        **platform_info(),
        "load_average_at_start": os.getloadavg(),
        "versions": package_versions(packages),
        "git_commit": git(BENCH_DIR, "rev-parse", "--short", "HEAD"),
    }


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def run_benchmark(
    name: str,
    doc: str,
    options: Iterable[Option],
    main: Callable[[argparse.Namespace], Awaitable[dict[str, Any]]],
    table: Callable[[dict[str, Any]], str],
    publisher: Callable[..., Awaitable[None]],
) -> None:
    """The entry point of ``bench/NAME.py``.

    Run with ``--publisher ARGV...`` it is the publisher subprocess (``publisher(*ARGV)``, see
    :class:`Publisher`). Else it parses the options (``--output`` defaults to ``bench/results/NAME.json``)
    and measures with ``main``. The report: ``benchmark`` and ``date``, what ``main`` returned, and the
    ``table``; it is written as JSON to ``--output``, and the table is printed.
    """
    if sys.argv[1:2] == ["--publisher"]:
        asyncio.run(publisher(*sys.argv[2:]))
        sys.exit(0)
    args = bench_parser(doc, results_path(name), options).parse_args()
    measured = asyncio.run(main(args))
    report = {"benchmark": f"bench/{name}.py", "date": utc_now(), **measured}
    report["table"] = table(report)
    write_json(args.output, report)
    print(report["table"])
    took = f" ({report['seconds']:.0f} s)" if "seconds" in report else ""
    log(f"results: {args.output}{took}")


# ---------------------------------------------------------------------------------------------------------
# Things, and the publisher process
# ---------------------------------------------------------------------------------------------------------


def thing_payloads() -> list[tuple[str, bytes]]:
    """DISTINCT_PAYLOADS (subject, msgpack bytes) of Things, as FastIoT services publish them."""
    from fastiot.core.serialization import serialize_to_bin
    from fastiot.msg.thing import Thing

    start = datetime.now(timezone.utc)
    payloads = []
    for i in range(DISTINCT_PAYLOADS):
        thing = Thing(
            machine=f"press_{i % 3 + 1}",
            name=("temperature", "pressure", "vibration")[(i // 3) % 3],
            value=20.0 + (i * 7919 % 1000) / 10.0,
            unit=("degC", "bar", "mm/s")[(i // 3) % 3],
            timestamp=start + timedelta(milliseconds=i),
        )
        payloads.append((f"v1.thing.{thing.machine}.{thing.name}", serialize_to_bin(Thing, thing)))
    return payloads


async def connect_publisher(url: str, name: str) -> Any:
    """The publisher's nats-py client."""
    import nats

    return await nats.connect(url, name=name, pending_size=PUBLISHER_PENDING_SIZE)


async def serve_commands(run: Callable[[list[str]], Awaitable[dict[str, Any]]]) -> None:
    """The publisher's side of :class:`Publisher`: say ``ready``, then answer each line read from stdin
    (split into words) with ``run(words)`` as one line of JSON, until ``quit`` or EOF."""
    loop = asyncio.get_running_loop()
    print("ready", flush=True)
    while True:
        words = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        if not words or words[0] == "quit":
            return
        print(json.dumps(await run(words)), flush=True)


async def publish_things(
    publish: Callable[[str, bytes], Awaitable[None]],
    payloads: list[tuple[str, bytes]],
    count: int,
    rate: float,
    burst: int,
) -> None:
    """Publish ``count`` of ``payloads`` in turn: as fast as possible if ``rate`` <= 0, else paced at ``rate``
    msgs/s: ``burst`` messages at a time, each burst waiting for its time slot."""
    n = len(payloads)
    if rate <= 0:
        for i in range(count):
            subject, data = payloads[i % n]
            await publish(subject, data)
        return
    start = time.perf_counter()
    for first in range(0, count, burst):
        for i in range(first, min(count, first + burst)):
            subject, data = payloads[i % n]
            await publish(subject, data)
        delay = start + (first + burst) / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)


class Publisher:
    """A bench script run as ``SCRIPT --publisher ARGV...`` in a subprocess (see :func:`run_benchmark`).

    The subprocess says ``ready`` on stdout once connected, then answers each command line written to its
    stdin with one line of JSON; ``quit`` (or EOF) ends it (see :func:`serve_commands`).
    """

    def __init__(self, script: str, *argv: str, timeout: float) -> None:
        self.args = [sys.executable, script, "--publisher", *argv]
        self.timeout: float = timeout  # for an answer
        self.process: asyncio.subprocess.Process | None = None
        self._done: asyncio.Task[dict[str, Any]] | None = None

    async def start(self) -> None:
        """Start the subprocess and wait until it is ready."""
        self.process = await asyncio.create_subprocess_exec(
            *self.args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 60)
        if line.strip() != b"ready":
            raise RuntimeError(f"the publisher did not start: {line!r}")

    def go(self, command: str) -> None:
        """Send ``command``; :meth:`result` waits for its answer."""
        assert self.process is not None and self.process.stdin is not None and self._done is None
        self.process.stdin.write(command.encode() + b"\n")
        self._done = asyncio.create_task(self._read())

    async def _read(self) -> dict[str, Any]:
        assert self.process is not None and self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the publisher died (exit code {await self.process.wait()})")
        return dict(json.loads(line))

    async def result(self) -> dict[str, Any]:
        assert self._done is not None
        done, self._done = self._done, None
        return await asyncio.wait_for(done, self.timeout)

    async def close(self) -> int | None:
        """Tell the subprocess to quit (unless it has exited), wait (30 s, then kill it); its exit code."""
        if self.process is None:
            return None
        if self.process.returncode is None:
            assert self.process.stdin is not None
            self.process.stdin.write(b"quit\n")
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()
        return self.process.returncode


# ---------------------------------------------------------------------------------------------------------
# FastIoT 1.1.23 in its own venv
# ---------------------------------------------------------------------------------------------------------


FASTIOT11_VERSION = "1.1.23"
FASTIOT11_VENV = BENCH_DIR / f".venv-fastiot-{FASTIOT11_VERSION}"


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _installed_fastiot_version(python: Path) -> str | None:
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('fastiot'))"],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
        env=clean_env(),
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def clean_env() -> dict[str, str]:
    # Nothing of this project may leak into the FastIoT 1.1 interpreter.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return env


def ensure_fastiot11_venv() -> Path:
    """The python of a venv holding fastiot==1.1.23 (with pydantic < 2), created if missing."""
    python = _venv_python(FASTIOT11_VENV)
    if _installed_fastiot_version(python) == FASTIOT11_VERSION:
        return python
    log(f"creating {FASTIOT11_VENV} with fastiot=={FASTIOT11_VERSION} (pydantic < 2) from PyPI ...")
    subprocess.run(
        [sys.executable, "-m", "venv", "--clear", str(FASTIOT11_VENV)], check=True, env=clean_env()
    )
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"fastiot=={FASTIOT11_VERSION}",
            "pydantic<2",
        ],
        check=True,
        env=clean_env(),
        cwd=tempfile.gettempdir(),
    )
    version = _installed_fastiot_version(python)
    if version != FASTIOT11_VERSION:
        raise RuntimeError(f"{FASTIOT11_VENV} holds fastiot {version!r}, not {FASTIOT11_VERSION}")
    return python


def fastiot11_env(host: str, port: int, workdir: str, **settings: str) -> dict[str, str]:
    """The environment of a FastIoT 1.1.23 process: :func:`clean_env`, its broker, ``settings``, and what
    keeps 1.1 away from its project layout.

    FastIoT 1.1 reads the broker only from FASTIOT_NATS_HOST / FASTIOT_NATS_PORT. Its
    ``FastIoTService.main()`` walks up from the working directory looking for its project's ``configure.py``
    and calls ``sys.exit(1)`` without one, unless it believes it runs in a container or has a config dir;
    the config and volume dirs also keep it away from /etc/fastiot and /var/fastiot. Run it with ``workdir``
    (an empty directory) as its working directory.
    """
    env = clean_env()
    env.update(
        FASTIOT_NATS_HOST=host,
        FASTIOT_NATS_PORT=str(port),
        FASTIOT_WITHIN_CONTAINER="true",
        FASTIOT_CONFIG_DIR=os.path.join(workdir, "config"),
        FASTIOT_VOLUME_DIR=os.path.join(workdir, "volume"),
        **settings,
    )
    return env


def check_fastiot11() -> str:
    """In a FastIoT 1.1.23 process: its version, after making sure ``fastiot`` is that release from
    site-packages (and not this project's)."""
    import fastiot

    version = metadata.version("fastiot")
    if version != FASTIOT11_VERSION or "site-packages" not in (fastiot.__file__ or ""):
        raise SystemExit(
            f"expected FastIoT {FASTIOT11_VERSION} from site-packages, got {version} at {fastiot.__file__}"
        )
    return version


# ---------------------------------------------------------------------------------------------------------
# The baseline consumer
# ---------------------------------------------------------------------------------------------------------


class BareSubscriber:
    """A nats-py subscriber on ``v1.thing.>`` whose callback only ``msgpack.unpackb``s the payload (with the
    options of FastIoT's wire format) and counts, until ``expected`` messages are received or lost (dropped
    by the client as a slow consumer)."""

    def __init__(self, expected: int) -> None:
        self.expected: int = expected
        self.received: int = 0
        self.lost: int = 0
        self.done: asyncio.Event = asyncio.Event()
        self.client: Any = None

    async def start(self, url: str, name: str, pending_msgs_limit: int, pending_bytes_limit: int) -> None:
        import msgpack
        import nats
        import nats.errors

        unpackb = msgpack.unpackb
        expected, finished = self.expected, self.done.set

        async def on_error(err: Exception) -> None:
            if isinstance(err, nats.errors.SlowConsumerError):
                self.lost += 1
                if self.received + self.lost == expected:
                    finished()

        async def on_msg(msg: Any) -> None:
            unpackb(msg.data, raw=False, timestamp=3, strict_map_key=False)
            self.received += 1
            if self.received + self.lost == expected:
                finished()

        self.client = await nats.connect(url, name=name, error_cb=on_error)
        await self.client.subscribe(
            "v1.thing.>",
            cb=on_msg,
            pending_msgs_limit=pending_msgs_limit,
            pending_bytes_limit=pending_bytes_limit,
        )
        await self.client.flush()

    async def wait(self, timeout: float) -> None:
        await asyncio.wait_for(self.done.wait(), timeout)

    async def close(self) -> None:
        await self.client.close()
