"""The explicit table of PostgreSQL drivers, imported lazily, and the per-site driver: each
site names its own (an on-prem VM with its agent, a cloud site on CloudNativePG)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from drivers.loader import driver_class, load_driver
from drivers.postgres.base import PostgresDriver
from drivers.postgres.types import CaughtUp, Fenced, Paused, Promoted, Rejoined, Restored
from hybridops.capabilities import Capability
from hybridops.contracts.sites import RejoinMethod, SiteState
from hybridops.inventory import Inventory, PostgresKind

if TYPE_CHECKING:
    from drivers.backup.base import BackupDriver

DRIVERS: dict[PostgresKind, str] = {
    PostgresKind.AGENT: "drivers.postgres.local:LocalPostgresDriver",
    PostgresKind.CNPG: "drivers.postgres.cnpg:CnpgPostgresDriver",
}


class PerSiteDriver(PostgresDriver):
    """Each call goes to the driver of the site it acts on; a driver is built on first use,
    once per kind, so a process that only ever touches one site builds only that site's."""

    def __init__(self, inventory: Inventory, local_sites: frozenset[str] | None = None) -> None:
        super().__init__(inventory, local_sites)
        self._drivers: dict[PostgresKind, PostgresDriver] = {}

    def of(self, site: str) -> PostgresDriver:
        """The driver of ``site`` (its ``driver``, else ``postgres.driver``)."""
        kind = self.inventory.site_driver(site)
        if kind not in self._drivers:
            self._drivers[kind] = load_driver(
                DRIVERS, kind, f"sites.{site}.driver", PostgresDriver, self.inventory, self.local_sites
            )
        return self._drivers[kind]

    def capabilities_of(self, site: str) -> frozenset[Capability]:
        found: frozenset[Capability] = driver_class(
            DRIVERS, self.inventory.site_driver(site), f"sites.{site}.driver"
        ).capabilities
        return found

    async def _assess(self, site: str) -> SiteState:
        return await self.of(site)._assess(site)

    async def _fence(self, site: str, run_id: str) -> Fenced:
        return await self.of(site)._fence(site, run_id)

    async def _unfence(self, site: str) -> bool:
        return await self.of(site)._unfence(site)

    async def _promote(
        self, site: str, wait_for_lsn: str | None, max_catchup_s: float, run_id: str, allow_fenced: bool
    ) -> Promoted:
        return await self.of(site)._promote(site, wait_for_lsn, max_catchup_s, run_id, allow_fenced)

    async def _follow(self, site: str, new_primary: str) -> bool:
        return await self.of(site)._follow(site, new_primary)

    async def _restore_primary(
        self,
        site: str,
        backups: BackupDriver,
        backup: str,
        target_time: datetime | None,
        run_id: str,
    ) -> Restored:
        return await self.of(site)._restore_primary(site, backups, backup, target_time, run_id)

    async def _write_probe(self, host: str, site: str, table: str, run_id: str) -> datetime:
        return await self.of(site)._write_probe(host, site, table, run_id)

    async def _surviving(self, site: str, table: str, seqs: list[int]) -> set[int]:
        return await self.of(site)._surviving(site, table, seqs)

    async def _rewind(self, site: str, source: str, run_id: str, method: RejoinMethod) -> Rejoined:
        return await self.of(site)._rewind(site, source, run_id, method)

    async def _catch_up(
        self, site: str, source: str, max_lag_bytes: int, timeout_s: float, target_lsn: str | None
    ) -> CaughtUp:
        return await self.of(site)._catch_up(site, source, max_lag_bytes, timeout_s, target_lsn)

    async def _pause_writes(self, site: str, run_id: str) -> Paused:
        return await self.of(site)._pause_writes(site, run_id)

    async def _resume_writes(self, site: str) -> bool:
        return await self.of(site)._resume_writes(site)

    async def _retire_fence(self, site: str) -> bool:
        return await self.of(site)._retire_fence(site)


def make_postgres_driver(inventory: Inventory, local_sites: frozenset[str] | None = None) -> PostgresDriver:
    """The inventory's PostgreSQL drivers, one per site as each site names it; ``local_sites``
    are those whose server and files this process controls (None: all)."""
    return PerSiteDriver(inventory, local_sites)
