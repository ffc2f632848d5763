"""The drivers one worker process holds, each built from the inventory on first use.

Task queues split by credentials (DESIGN.md rule 7): a worker builds only the drivers the
activities it runs call, when they first call them. A ``hybridops-dns`` worker builds the DNS
driver for its changes, and the database driver only once a DNS cutover reads the servers
(its safety rules need who is writable); it never builds the infra or backup driver. A driver
handed in (a test's fake) is used as it is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from drivers.backup import BackupDriver, make_backup_driver
from drivers.backup.registry import DRIVERS as backup_drivers
from drivers.dns import DnsDriver, make_dns_driver
from drivers.dns.registry import DRIVERS as dns_drivers
from drivers.gitops import GitOpsDriver, make_gitops_driver
from drivers.infra import InfraDriver, make_infra_driver
from drivers.infra.registry import DRIVERS as infra_drivers
from drivers.loader import driver_class
from drivers.postgres import PostgresDriver, make_postgres_driver
from drivers.postgres.registry import DRIVERS as pg_drivers
from drivers.signals import SignalsDriver, collect_signals, make_signal_drivers
from drivers.topology import TopologyReader
from hybridops.capabilities import Capability
from hybridops.contracts.backup import BackupInfo
from hybridops.contracts.decision import SignalSnapshot
from hybridops.contracts.sites import SiteRef, SiteState
from hybridops.inventory import Inventory

log = logging.getLogger(__name__)


class Part(StrEnum):
    """A driver :class:`Drivers` builds, by the name of its property."""

    POSTGRES = "postgres"
    DNS = "dns"
    INFRA = "infra"
    BACKUP = "backup"
    SIGNALS = "signals"
    TOPOLOGY = "topology"


class Drivers:
    """The inventory's drivers, built lazily and once per process; each property raises the
    registry's :class:`hybridops.errors.ConfigError` naming the inventory key when its driver
    cannot be built."""

    def __init__(
        self,
        inventory: Inventory,
        *,
        postgres: PostgresDriver | None = None,
        dns: DnsDriver | None = None,
        infra: InfraDriver | None = None,
        backup: BackupDriver | None = None,
        local_sites: frozenset[str] | None = None,
    ) -> None:
        self.inventory = inventory
        self.local_sites = local_sites
        """The sites whose server and files this process controls: None, all of them (one
        host, placement ``colocated``); a site agent, its own; a worker of the shared queues
        under placement ``queues``, none (it reads every server over SQL only)."""
        self._postgres = postgres
        self._dns = dns
        self._infra = infra
        self._backup = backup
        self._gitops: GitOpsDriver | None = None
        self._topology: TopologyReader | None = None
        self._signals: list[SignalsDriver] | None = None

    @property
    def postgres(self) -> PostgresDriver:
        if self._postgres is None:
            self._postgres = make_postgres_driver(self.inventory, self.local_sites)
        return self._postgres

    @property
    def dns(self) -> DnsDriver:
        if self._dns is None:
            self._dns = make_dns_driver(self.inventory.dns)
        return self._dns

    @property
    def infra(self) -> InfraDriver:
        if self._infra is None:
            self._infra = make_infra_driver(self.inventory.infra)
        return self._infra

    @property
    def backup(self) -> BackupDriver:
        if self._backup is None:
            self._backup = make_backup_driver(self.inventory)
        return self._backup

    @property
    def gitops(self) -> GitOpsDriver:
        """The inventory's GitOps driver (``gitops``): syncs workloads, and with
        ``app_database.via: gitops`` the apps' database endpoint."""
        if self._gitops is None:
            self._gitops = make_gitops_driver(self.inventory.gitops)
        return self._gitops

    @property
    def signals(self) -> list[SignalsDriver]:
        """The inventory's signal sources (none of them for ``signals.driver: static``)."""
        if self._signals is None:
            self._signals = make_signal_drivers(self.inventory.signals)
        return self._signals

    def warm(self, parts: Iterable[Part]) -> list[Part]:
        """Build ``parts`` now (imports, clients), not in the first step that needs them: a
        worker warms what its queues' steps use when it starts, so a failover's first steps do
        not pay for them (building a Route53 client took 110 to 180 ms here, on top of
        importing boto3). Nothing is connected to: a server that is down at start
        says nothing about a step later. A part that cannot be built is logged and left to
        its first step, which raises its error (the registry's names the inventory key). Returns
        the parts built."""
        built = []
        for part in dict.fromkeys(parts):
            try:
                getattr(self, part.value)
            except Exception as err:  # a driver's own error too (a missing region, a bad URL)
                log.warning("driver %s not built at start: %s", part.value, err)
                continue
            built.append(part)
        return built

    # The decide phase's readings, the same for a run's steps and for ``hybridops decide``.

    async def dns_value(self) -> str | None:
        """Read-only: what the inventory's DNS record holds now (where clients go); None when
        it has no value."""
        record = await self.dns.get_record(self.inventory.dns.record, "A")
        return record.values[0] if record and record.values else None

    async def assess(self, sites: list[str], deadlines: dict[str, float] | None = None) -> list[SiteState]:
        """Read-only: each server's own account of itself, read concurrently (each at most
        the connect timeout, or its deadline in ``deadlines``; an unreachable one says so,
        never raises)."""
        within = deadlines or {}
        return list(await asyncio.gather(*(self.postgres.assess(s, within.get(s)) for s in sites)))

    async def gather_signals(self, sites: list[SiteRef]) -> SignalSnapshot:
        """Read-only: every signal source's readings for ``sites``, now."""
        return await collect_signals(self.signals, self.inventory.signals.static, sites, datetime.now(UTC))

    async def take_backup(self, site: str | None) -> BackupInfo:
        """A base backup of ``site``, or of the one writable primary when None (read from the
        servers: :meth:`TopologyReader.primary`): ``hybridops backup push``, ``lab up``."""
        return await self.backup.backup(site or await self.topology.primary())

    def is_agent(self) -> bool:
        """Whether this process is one site's agent (it sees its own server only)."""
        return self.local_sites is not None and len(self.local_sites) == 1

    def offered(self) -> tuple[dict[str, list[Capability]], dict[str, str]]:
        """What the inventory's drivers can do, per component (``postgres:SITE``, ``infra``,
        ``dns``, ``backup``), and which driver each is: read from the driver classes, none
        built (DESIGN.md rule 14)."""
        inv = self.inventory
        classes: dict[str, type[Any]] = {
            f"postgres:{site}": driver_class(pg_drivers, inv.site_driver(site), f"sites.{site}.driver")
            for site in inv.sites
        }
        classes["infra"] = driver_class(infra_drivers, inv.infra.driver, "infra.driver")
        classes["dns"] = driver_class(dns_drivers, inv.dns.driver, "dns.driver")
        classes["backup"] = driver_class(backup_drivers, inv.backup.driver, "backup.driver")
        offered = {
            key: sorted(Capability(str(c)) for c in getattr(cls, "capabilities", frozenset()))
            for key, cls in classes.items()
        }
        return offered, {key: cls.__name__ for key, cls in classes.items()}

    @property
    def topology(self) -> TopologyReader:
        """The topology from the servers and DNS (so it builds both drivers)."""
        if self._topology is None:
            # A site agent holds no DNS credentials: its topology is its own server's.
            self._topology = TopologyReader(
                self.inventory, self.postgres, None if self.is_agent() else self.dns
            )
        return self._topology
