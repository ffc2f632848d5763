"""The explicit table of signal drivers, imported lazily, and the merge of what they read."""

from __future__ import annotations

import asyncio
from datetime import datetime

from drivers.loader import load_driver
from drivers.signals.base import SignalsDriver, SourceReading
from hybridops.contracts.decision import CandidateSignals, Signal, SignalName, SignalSnapshot
from hybridops.contracts.sites import SiteRef
from hybridops.inventory import SignalsKind, SignalsSettings

DRIVERS: dict[SignalsKind, str] = {
    SignalsKind.PROMETHEUS: "drivers.signals.prometheus:PrometheusDriver",
    SignalsKind.AZURE_MONITOR: "drivers.signals.azure_monitor:AzureMonitorDriver",
    SignalsKind.GCP_MONITORING: "drivers.signals.gcp_monitoring:GcpMonitoringDriver",
}

STATIC = "static"
"""The ``source`` of a value from the inventory's ``signals.static``."""

_GRACE_S = 1.0
"""Beyond its own ``timeout_s``, how long a driver may take before it is given up on."""


def make_signal_drivers(settings: SignalsSettings) -> list[SignalsDriver]:
    """One driver per ``signals.sources`` entry, in the inventory's order (the precedence)."""
    return [
        load_driver(DRIVERS, source.driver, f"signals.sources[{i}].driver", SignalsDriver, source)
        for i, source in enumerate(settings.sources)
    ]


async def _collect(driver: SignalsDriver, targets: list[SiteRef], now: datetime) -> SourceReading:
    """A driver's reading; a driver that overruns its bound or breaks its contract by raising
    becomes an error line, so one source never costs the others."""
    limit = driver.source.timeout_s * 2 + _GRACE_S
    try:
        async with asyncio.timeout(limit):
            return await driver.collect(targets, now)
    except TimeoutError:
        return SourceReading(errors=[f"no reading within {limit:g} s"])
    except Exception as err:
        return SourceReading(errors=[f"failed: {type(err).__name__}: {err}"])


async def collect_signals(
    drivers: list[SignalsDriver],
    static: dict[str, dict[SignalName, float]],
    targets: list[SiteRef],
    now: datetime,
) -> SignalSnapshot:
    """Read every driver at once and merge per site: the first driver (in ``signals.sources``
    order) that has a signal wins, then ``static`` values (``source="static"``, never stale).
    Every target gets a :class:`CandidateSignals`, in the targets' order, with its values in
    :class:`SignalName` order; every driver error is in ``errors``, prefixed by its name."""
    readings = await asyncio.gather(*(_collect(d, targets, now) for d in drivers))
    errors = [f"{d.name}: {e}" for d, r in zip(drivers, readings, strict=True) for e in r.errors]
    candidates = []
    for target in targets:
        found: dict[SignalName, Signal] = {}
        for reading in readings:
            for name, signal in reading.values.get(target.name, {}).items():
                found.setdefault(name, signal)
        for name, value in static.get(target.name, {}).items():
            found.setdefault(name, Signal(value=value, source=STATIC, observed_at=None))
        values = {name: found[name] for name in SignalName if name in found}
        candidates.append(CandidateSignals(site=target.name, cloud=target.cloud, values=values))
    return SignalSnapshot(taken_at=now, candidates=candidates, errors=errors)
