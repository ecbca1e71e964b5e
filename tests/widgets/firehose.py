"""A firehose publisher in its own process, as a busy plant would be: ``python -m tests.widgets.firehose``.

It publishes Thing-shaped msgpack payloads round-robin over ``--subjects`` subjects below a prefix,
at ``--rate`` messages per second (0: as fast as nats-py can), flushes, and prints how many it sent.
Running it in another process keeps the publishing out of the event loop under test, so what is
measured is the cost of receiving and showing the messages.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import msgpack
import nats

# Messages published between two rate checks.
_BATCH = 100
# The folder `tests` is importable from, for `python -m tests.widgets.firehose`.
_REPO = Path(__file__).resolve().parents[2]


def payloads(count: int) -> list[bytes]:
    """``count`` distinct Thing-like payloads (what the demo plant sends)."""
    now = datetime.now(timezone.utc)
    return [
        msgpack.packb(
            {
                "machine": f"m{i % 10}",
                "name": "temperature",
                "value": 20.0 + (i % 100) * 0.1,
                "unit": "degC",
                "timestamp": now,
            },
            datetime=True,
        )
        for i in range(count)
    ]


async def publish(url: str, prefix: str, count: int, rate: float, subjects: int) -> int:
    client = await nats.connect(url)
    try:
        data = payloads(100)
        names = [f"{prefix}.s{i % subjects:03d}.value" for i in range(subjects)]
        started = time.perf_counter()
        for i in range(count):
            await client.publish(names[i % subjects], data[i % len(data)])
            if rate > 0 and i % _BATCH == _BATCH - 1:
                ahead = (i + 1) / rate - (time.perf_counter() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await client.flush(timeout=30)
    finally:
        await client.close()
    return count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("prefix")
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=0.0, help="messages per second; 0: full speed")
    parser.add_argument("--subjects", type=int, default=20)
    args = parser.parse_args(argv)
    sent = asyncio.run(publish(args.url, args.prefix, args.count, args.rate, args.subjects))
    print(sent, flush=True)


async def run_firehose(url: str, prefix: str, *, count: int, rate: float = 0.0, subjects: int = 20) -> int:
    """Run the publisher process to the end (bounded by a timeout) and return how many it sent."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.widgets.firehose",
        url,
        prefix,
        f"--count={count}",
        f"--rate={rate}",
        f"--subjects={subjects}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=_REPO,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    return int(out.decode().strip())


if __name__ == "__main__":
    main()
