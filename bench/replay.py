"""Replaying many histories: ``hybridops audit replay --from-dir`` at the scale of an audit.
Prints figures; never passes or fails on them.

    .venv/bin/python bench/replay.py [--count 1000] [--processes N]

Makes ``--count`` history files by copying the stored ones (tests/histories/), each with its
own workflow id, then reads and replays them all twice: one at a time in this process (what
the audit did before: one replayer, histories read here), and split across processes (one
replayer each over an iterator of its share, reading its own files). Prints histories/s for
both and the ratio, and checks that both gave the same verdict for every history.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hybridops.audit.histories import HISTORY_SUFFIX, find_history_files
from hybridops.audit.replay import ReplayReport, replay_files
from hybridops.cli.replayer import make_replayer

STORED = Path(__file__).resolve().parents[1] / "tests" / "histories"


def make_histories(out: Path, count: int) -> list[Path]:
    """``count`` copies of the stored histories, round robin, each with its own workflow id."""
    stored = [
        (p.name.removesuffix(HISTORY_SUFFIX), json.loads(p.read_text())) for p in find_history_files(STORED)
    ]
    paths = []
    for i in range(count):
        name, data = stored[i % len(stored)]
        wf_id = f"{name}-copy-{i:05d}"
        data["events"][0]["workflowExecutionStartedEventAttributes"]["workflowId"] = wf_id
        path = out / f"{wf_id}{HISTORY_SUFFIX}"
        path.write_text(json.dumps(data))
        paths.append(path)
    return paths


async def timed(paths: list[Path], processes: int | None) -> tuple[float, list[ReplayReport]]:
    began = time.perf_counter()
    reports = await replay_files(paths, make_replayer, processes=processes)
    return time.perf_counter() - began, reports


def verdicts(reports: list[ReplayReport]) -> list[tuple[str, str, str]]:
    return [(r.workflow_id, r.outcome.value, r.reason) for r in reports]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=None, help="default: one per CPU")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hybridops-bench-replay-"))
    try:
        paths = make_histories(work, args.count)
        print(
            f"{len(paths)} histories (copies of {len(find_history_files(STORED))} stored), "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
        )
        old_s, old = await timed(paths, processes=1)
        new_s, new = await timed(paths, processes=args.processes)
        counts = Counter(r.outcome.value for r in new)
        procs = args.processes or os.cpu_count()
        print(f"one at a time (one process): {old_s:7.1f} s  {len(old) / old_s:6.1f} histories/s")
        print(f"in parallel ({procs} processes):  {new_s:7.1f} s  {len(new) / new_s:6.1f} histories/s")
        print(f"ratio: {old_s / new_s:.2f}x   verdicts: {dict(counts)}")
        print("same verdicts both ways: " + ("yes" if verdicts(old) == verdicts(new) else "NO"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
