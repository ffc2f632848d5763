"""The PostgreSQL driver interface. Each method states its contract.

Every method is idempotent: it reads the server and converges it, so a retry after a crash
changes nothing more (DESIGN.md rule 2).
"""

from __future__ import annotations

import abc
import logging
from datetime import datetime

from hybridops.inventory import Inventory
from hybridops.models import FenceResult, PromoteResult, SiteState

log = logging.getLogger(__name__)


class PostgresDriver(abc.ABC):
    """Reaches and controls the PostgreSQL servers the inventory names."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    async def assess(self, site: str) -> SiteState:
        """Read-only. What the server at ``site`` is: reachable, primary or standby, its
        positions and fencing. Never raises for an unreachable server: says so instead.
        Takes at most the connect timeout."""
        self.inventory.site(site)
        return await self._assess(site)

    async def fence(self, site: str, run_id: str) -> FenceResult:
        """Make sure ``site`` never accepts writes again, reachable or not.

        Reachable: made read-only, client sessions ended, its last LSN noted, then stopped.
        Always: marked, so that a restart brings it up as a read-only standby, never as a
        writable primary. Idempotent: the mark keeps what was first observed (was it running,
        was it read-only), so a retry reports the same. Done when the server is down or
        read-only and the mark is in place."""
        self.inventory.site(site)
        log.info("fencing %s for %s", site, run_id)
        return await self._fence(site, run_id)

    async def unfence(self, site: str) -> bool:
        """Compensation of :meth:`fence`: remove the mark, and when the server was running
        before it was fenced, start it again writable. No mark: nothing to do. Returns
        whether anything changed."""
        self.inventory.site(site)
        return await self._unfence(site)

    async def promote(
        self, site: str, wait_for_lsn: str | None, max_catchup_s: float, run_id: str = ""
    ) -> PromoteResult:
        """Irreversible. Wait until ``site`` has replayed all WAL it received (and
        ``wait_for_lsn`` when given), at most ``max_catchup_s``, then promote it and wait for
        it to accept writes, recording that ``run_id`` promoted it (see
        :attr:`SiteState.promoted_by`). Already a primary: nothing to do. Raises
        :class:`PreconditionFailed` when it cannot catch up or is fenced."""
        self.inventory.site(site)
        return await self._promote(site, wait_for_lsn, max_catchup_s, run_id)

    async def follow(self, site: str, new_primary: str) -> bool:
        """Point the standby at ``site`` at ``new_primary`` (streaming, latest timeline).
        Returns whether anything changed."""
        self.inventory.site(site)
        self.inventory.site(new_primary)
        return await self._follow(site, new_primary)

    async def write_probe(self, host: str, site: str, table: str, run_id: str) -> datetime:
        """Commit one row into ``table`` on the server at ``host`` (what DNS resolved to,
        with ``site``'s port and credentials). Returns the commit's server time. Raises
        :class:`DatabaseUnreachable` or :class:`DatabaseError` (for example, read-only)."""
        return await self._write_probe(host, site, table, run_id)

    async def surviving(self, site: str, table: str, seqs: list[int]) -> set[int]:
        """Which of the workload's sequence numbers are present on ``site``."""
        return await self._surviving(site, table, seqs)

    # Hooks each driver implements.
    @abc.abstractmethod
    async def _assess(self, site: str) -> SiteState: ...
    @abc.abstractmethod
    async def _fence(self, site: str, run_id: str) -> FenceResult: ...
    @abc.abstractmethod
    async def _unfence(self, site: str) -> bool: ...
    @abc.abstractmethod
    async def _promote(
        self, site: str, wait_for_lsn: str | None, max_catchup_s: float, run_id: str
    ) -> PromoteResult: ...
    @abc.abstractmethod
    async def _follow(self, site: str, new_primary: str) -> bool: ...
    @abc.abstractmethod
    async def _write_probe(self, host: str, site: str, table: str, run_id: str) -> datetime: ...
    @abc.abstractmethod
    async def _surviving(self, site: str, table: str, seqs: list[int]) -> set[int]: ...
