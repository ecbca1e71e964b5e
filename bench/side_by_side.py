#!/usr/bin/env python3
"""Run one benchmark on an older commit and on this work tree, taking turns, in the same conditions.

A change that must not slow something down is measured against the code before it on the same machine
in the same hour: the machine is shared and its load changes from minute to minute, so figures of
different days do not compare. The older commit's files are taken with ``git archive`` into a
temporary folder; its own ``bench/NAME.py`` runs there with ``PYTHONPATH`` pointing at it (the
installed packages are the same), then this tree's, ``--runs`` times each, alternating in the order
base, new, new, base, base, new, ... (a benchmark the base does not have yet runs from this tree, on
the base's code). The reports of every run are kept; the summary gives, for a few figures of each
benchmark, every run's value and their medians for base and new side by side.

Results go to ``bench/results/side_by_side_NAME.json``.

Usage::

    python bench/side_by_side.py --base 532b67d --runs 2 capture --messages 100000 --rounds 3
    python bench/side_by_side.py --base 532b67d --runs 2 history --messages 200000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from _shared import BENCH_DIR, environment, log, utc_now, write_json

RUN_TIMEOUT = 3_600.0

# The figures compared, per benchmark: (label, path of keys in its report).
FIGURES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "capture": [
        ("capture ingest / bare (wall)", ("ingest", "capture", "ratio_to_bare")),
        ("capture ingest / bare (CPU)", ("ingest", "capture", "cpu_ratio_to_bare")),
        ("capture msgs/CPU-s", ("ingest", "capture", "msgs_per_cpu_s")),
        ("bare msgs/CPU-s", ("ingest", "bare", "msgs_per_cpu_s")),
        ("capture (Thing subject) / bare (CPU)", ("ingest", "capture_model", "cpu_ratio_to_bare")),
        ("to_dataframe() s", ("to_dataframe", "seconds")),
        ("bytes per row", ("memory", "tracemalloc", "bytes_per_row")),
    ],
    "ingest": [
        ("capture callback ns/row (CPU)", ("capture_ns_per_row",)),
        ("capture of Thing subject ns/row (CPU)", ("capture_model_ns_per_row",)),
        ("FrameBuilder + DataFrame ns/row (CPU)", ("frames_ns_per_row",)),
    ],
    "history": [
        ("Recording.to_dataframe() s (wall)", ("load", "to_dataframe", "seconds")),
        ("Recording.to_dataframe() CPU-s", ("load", "to_dataframe", "cpu_seconds")),
        ("to_dataframe speed-up over nats-py (wall)", ("load", "to_dataframe", "speedup_over_nats_py")),
        ("to_dataframe speed-up over nats-py (CPU)", ("load", "to_dataframe", "cpu_speedup_over_nats_py")),
        ("peak memory / frame", ("memory", "peak_over_frame")),
    ],
}


def checkout(commit: str, into: Path) -> None:
    """The files of ``commit`` (of the repository this file is in) into ``into``."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit],
        cwd=BENCH_DIR.parent,  # from bench/ itself, git would archive bench/ alone
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    tar_path = into / "base.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into / "tree", filter="data")
    tar_path.unlink()


def run_one(tree: Path, name: str, args: list[str], output: Path, base: bool) -> dict[str, Any]:
    env = dict(os.environ)
    if base:
        env["PYTHONPATH"] = str(tree)  # its fastiot before the installed (editable) one
    else:
        env.pop("PYTHONPATH", None)
    script = tree / "bench" / f"{name}.py"
    if not script.exists():  # a benchmark newer than the base: this tree's, run on the base's code
        script = BENCH_DIR / f"{name}.py"
    command = [sys.executable, str(script), *args, "--output", str(output)]
    subprocess.run(command, cwd=tree, env=env, check=True, timeout=RUN_TIMEOUT, stdout=subprocess.DEVNULL)
    report: dict[str, Any] = json.loads(output.read_text())
    return report


def figure(report: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = report
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value)


def summary(name: str, runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for label, path in FIGURES.get(name, []):
        row: dict[str, Any] = {"figure": label}
        for side in ("base", "new"):
            values = [v for v in (figure(r, path) for r in runs[side]) if v is not None]
            row[side] = values
            row[f"{side}_median"] = statistics.median(values) if values else None
        if row["base_median"] and row["new_median"] is not None:
            row["new_over_base"] = row["new_median"] / row["base_median"]
        rows.append(row)
    return rows


def table(name: str, rows: list[dict[str, Any]], runs: int, base: str, new: str) -> str:
    lines = [
        f"bench/{name}.py, {runs} runs each, alternating; base {base}, new {new} (medians; every run)",
        f"{'figure':<44}{'base':>12}{'new':>12}{'new/base':>10}",
    ]
    for row in rows:
        if row["base_median"] is None or row["new_median"] is None:
            continue
        every = " ".join(f"{v:.3g}" for v in row["base"]) + " | " + " ".join(f"{v:.3g}" for v in row["new"])
        lines.append(
            f"{row['figure']:<44}{row['base_median']:>12.4g}{row['new_median']:>12.4g}"
            f"{row.get('new_over_base', float('nan')):>10.3f}   ({every})"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the older commit, e.g. the branch's start")
    parser.add_argument("--runs", type=int, default=2, help="runs of each side")
    parser.add_argument(
        "--output", type=Path, default=None, help="where to write (bench/results/side_by_side_NAME.json)"
    )
    parser.add_argument("name", help="the benchmark: capture, history, ...")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="options passed to bench/NAME.py")
    options = parser.parse_args()
    name: str = options.name
    output = options.output or BENCH_DIR / "results" / f"side_by_side_{name}.json"
    env = environment(("fastiot-workbench", "nats-py", "msgpack", "numpy", "pandas"))
    runs: dict[str, list[dict[str, Any]]] = {"base": [], "new": []}
    with tempfile.TemporaryDirectory(prefix="bench-base-") as tmp:
        checkout(options.base, Path(tmp))
        trees = {"base": Path(tmp) / "tree", "new": BENCH_DIR.parent}
        for r in range(options.runs):
            # ABBA: whichever goes first in a pair (a fresh machine state, the other's leftovers) is not
            # always the same side.
            for side in ("base", "new") if r % 2 == 0 else ("new", "base"):
                log(f"run {r + 1}/{options.runs}: {side}")
                out = Path(tmp) / f"{side}-{r}.json"
                runs[side].append(run_one(trees[side], name, options.args, out, base=side == "base"))
    rows = summary(name, runs)
    report = {
        "benchmark": f"bench/side_by_side.py {name}",
        "date": utc_now(),
        "base": options.base,
        "new": env["git_commit"] + " (work tree)",
        "arguments": options.args,
        "environment": env,
        "summary": rows,
        "runs": runs,
    }
    report["table"] = table(name, rows, options.runs, options.base, report["new"])
    write_json(output, report)
    print(report["table"])
    log(f"results: {output}")


if __name__ == "__main__":
    main()
