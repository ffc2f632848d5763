"""The signals interface: live numbers about candidate sites, for the policy engine.

A driver reads one source (Prometheus, Azure Monitor, Google Cloud Monitoring) and returns what
it saw per site. A signal it could not read is left out, never reported as zero, and the reason
goes into ``errors``: the policy engine treats missing and stale signals explicitly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime

from hybridops.contracts.decision import Signal, SignalName
from hybridops.contracts.sites import SiteRef
from hybridops.inventory import SignalSource


@dataclass
class SourceReading:
    """What one source said: per site, per signal; and what went wrong."""

    values: dict[str, dict[SignalName, Signal]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class SignalsDriver(ABC):
    """One source of signals, configured by an inventory ``signals.sources`` entry."""

    name: str
    """The driver's name, recorded as each signal's ``source``."""

    def __init__(self, source: SignalSource) -> None:
        self.source = source

    @abstractmethod
    async def collect(self, targets: list[SiteRef], now: datetime) -> SourceReading:
        """Read every configured signal for every target. Never raises for a source that is
        down or answers badly: that goes into ``errors``. Bounded by ``source.timeout_s``."""
