"""What ``gather_signals`` costs against the lab's Prometheus: every signal of both cloud
candidates read with the driver's one combined query, and with one query (and its
``timestamp()``) per signal per candidate, as the driver did before and still does when
Prometheus refuses the combined one. Figures, never assertions.

    .venv/bin/python bench/signals.py [--runs 200] [--incident]   (make bench-signals)

Brings up a lab of its own (its own addresses, ports and temp directory) with its monitoring,
the worker and the writer, as ``bench/detection.py`` does, and times the two ways interleaved,
each call as the activity makes it (:func:`collect_signals`, a fresh HTTP session each), beside
a floor: the same call with one trivial query. With ``--incident``, again for the seconds after
onprem's server is killed, while the lab's alert starts a failover.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.lab import bench_lab
from drivers.signals import collect_signals
from drivers.signals.http import HttpSource, SourceError
from drivers.signals.prometheus import PrometheusDriver
from hybridops.contracts.base import Cloud
from hybridops.contracts.decision import Signal, SignalName
from hybridops.contracts.sites import SiteRef
from hybridops.inventory import Inventory
from hybridops.lab import Lab, LabPorts

PORTS = LabPorts(net="127.76.0", pg=24432, dns=24353, temporal=27533, ui=28533)
"""Apart from the demo lab's, the other benches' and the tests'."""
SETTLE_S = 10.0
"""A lab's first seconds (its first scrapes and federations, the writer's start) are busier
than the rest: measured after them."""
INCIDENT_S = 20.0
CANDIDATES = [SiteRef(name="azure", cloud=Cloud.AZURE), SiteRef(name="gcp", cloud=Cloud.GCP)]


class PerQueryDriver(PrometheusDriver):
    """The driver with its combined query refused: one query and its ``timestamp()`` per pair."""

    async def _read_all(self, http: HttpSource, queries: list[str], at: str) -> list[Signal | str]:
        raise SourceError("refused by the bench")


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return f"median {statistics.median(ordered):6.1f} ms  p90 {p90:6.1f} ms  max {ordered[-1]:6.1f} ms"


async def measure(inv: Inventory, ways: dict[str, PrometheusDriver], runs: int, seconds: float) -> None:
    """``runs`` collections each way, interleaved, or as many as fit in ``seconds``."""
    times: dict[str, list[float]] = {name: [] for name in ways}
    errors: dict[str, set[str]] = {name: set() for name in ways}
    stop = time.monotonic() + seconds
    while len(times[next(iter(ways))]) < runs and time.monotonic() < stop:
        for name, driver in ways.items():
            started = time.perf_counter()
            snapshot = await collect_signals([driver], inv.signals.static, CANDIDATES, datetime.now(UTC))
            times[name].append((time.perf_counter() - started) * 1000)
            errors[name].update(snapshot.errors)
    for name, values in times.items():
        print(f"  {name:24} {_ms(values)}  ({len(values)} runs)")
        for line in sorted(errors[name]):
            print(f"    an error seen: {line[:150]}")


async def bench(lab: Lab, inv: Inventory, runs: int, incident: bool) -> None:
    (source,) = inv.signals.sources
    await asyncio.sleep(SETTLE_S)
    floor = source.model_copy(update={"queries": {SignalName.STANDBY_UP: "vector(1)"}})
    ways = {
        "combined query": PrometheusDriver(source),
        "per query (before)": PerQueryDriver(source),
        "floor: vector(1) only": PrometheusDriver(floor),
    }
    for driver in ways.values():  # imports, first connections
        await collect_signals([driver], inv.signals.static, CANDIDATES, datetime.now(UTC))
    print(f"{len(source.queries)} signals x {len(CANDIDATES)} candidates; the lab steady:")
    await measure(inv, ways, runs, float("inf"))
    if incident:
        lab.kill_site("onprem")
        print(f"the {INCIDENT_S:g} s after onprem's server is killed (the alert, a failover):")
        await measure(inv, ways, runs, INCIDENT_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=200, help="collections each way (default 200)")
    parser.add_argument("--incident", action="store_true", help="then again while onprem is killed")
    args = parser.parse_args(argv)
    with bench_lab("signals", PORTS) as lab:
        inv = lab.up(temporal=True, worker=True, writer=True, monitoring=True)
        if not lab.monitoring_running():
            print("error: the lab's monitoring did not start (Prometheus, Alertmanager installed?)")
            return 2
        asyncio.run(bench(lab, inv, args.runs, args.incident))
    return 0


if __name__ == "__main__":
    sys.exit(main())
