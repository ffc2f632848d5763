"""The PostgreSQL driver interface. Each method states its contract.

Every method is idempotent: it reads the server and converges it, so a retry after a crash
changes nothing more (DESIGN.md rule 2).
"""

from __future__ import annotations

import abc
import logging
from datetime import datetime

from drivers.backup.base import BackupDriver
from drivers.postgres.connect import CONNECT_WITHIN
from drivers.postgres.types import CaughtUp, Fenced, Paused, Promoted, Rejoined, Restored
from hybridops.capabilities import Capability
from hybridops.contracts.sites import RejoinMethod, SiteState
from hybridops.errors import CapabilityMissing
from hybridops.inventory import Inventory

log = logging.getLogger(__name__)


class PostgresDriver(abc.ABC):
    """Reaches and controls the PostgreSQL servers the inventory names."""

    capabilities: frozenset[Capability] = frozenset()
    """What this driver can do (DESIGN.md rule 14); a runbook checks it before its first change."""

    def capabilities_of(self, site: str) -> frozenset[Capability]:
        """What this driver can do at ``site`` (a per-site driver answers for the site's own)."""
        return self.capabilities

    def __init__(self, inventory: Inventory, local_sites: frozenset[str] | None = None) -> None:
        self.inventory = inventory
        self.local_sites = local_sites
        """The sites whose server and files this process controls (None: every site). The
        others are read over SQL only; a step that needs their files is a routing error."""

    def is_local(self, site: str) -> bool:
        """Whether this process controls ``site``'s server and files."""
        return self.local_sites is None or site in self.local_sites

    async def assess(self, site: str, within_s: float | None = None) -> SiteState:
        """Read-only. What the server at ``site`` is: reachable, primary or standby, its
        positions and fencing. Never raises for an unreachable server: says so instead.
        Takes at most the connect timeout to connect, or ``within_s`` for a server whose
        marks this process does not read from its disk (a site agent's own server keeps the
        full look)."""
        self.inventory.site(site)
        if within_s is None or self.local_sites is None or site in self.local_sites:
            return await self._assess(site)
        token = CONNECT_WITHIN.set(within_s)
        try:
            return await self._assess(site)
        finally:
            CONNECT_WITHIN.reset(token)

    async def fence(self, site: str, run_id: str) -> Fenced:
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
        self,
        site: str,
        wait_for_lsn: str | None,
        max_catchup_s: float,
        run_id: str = "",
        allow_fenced: bool = False,
    ) -> Promoted:
        """Irreversible. Wait until ``site`` has replayed all WAL it received (and
        ``wait_for_lsn`` when given), at most ``max_catchup_s``, then promote it and wait for
        it to accept writes, recording that ``run_id`` promoted it (see
        :attr:`SiteState.promoted_by`). Already a primary: nothing to do. Raises
        :class:`PreconditionFailed` when it cannot catch up or is fenced (unless
        ``allow_fenced``: a fenced old primary that failback rejoined as a standby), or, with
        a WAL archive in the inventory, when the standby cannot see it (no ``restore_command``).
        Raises :class:`TimelineCollision` (fatal, after the promotion) when the new timeline is
        one the archive held, or its archived history file is another server's."""
        self.inventory.site(site)
        return await self._promote(site, wait_for_lsn, max_catchup_s, run_id, allow_fenced)

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

    async def rewind(
        self, site: str, source: str, run_id: str = "", method: RejoinMethod = RejoinMethod.AUTO
    ) -> Rejoined:
        """Make ``site`` a standby streaming from the primary ``source``, by the cheapest way
        that works (``method`` auto): a running standby that has not diverged follows
        (``primary_conninfo`` reloaded); else the site is stopped cleanly and ``pg_rewind``
        brings it onto the source's timeline (WAL it lacks from the archive, through its
        ``restore_command``); else (no common ancestor, WAL missing, pg_rewind failed) a fresh
        base backup from the source into a new data directory, the old one moved aside with a
        timestamped name, never deleted. The site's own configuration and fence mark survive;
        marks copied from the source do not. Idempotent: already streaming from ``source``,
        nothing changes. May take as long as a base backup; heartbeats. Raises
        :class:`DatabaseUnreachable` when the source does not answer, :class:`PreconditionFailed`
        when the source is not a primary, :class:`DatabaseError` when nothing worked."""
        self.inventory.site(site)
        self.inventory.site(source)
        log.info("rejoining %s as a standby of %s (%s) for %s", site, source, method.value, run_id)
        return await self._rewind(site, source, run_id, method)

    async def catch_up(
        self,
        site: str,
        source: str,
        max_lag_bytes: int,
        timeout_s: float,
        target_lsn: str | None = None,
    ) -> CaughtUp:
        """Read-only. Wait until the standby ``site`` has replayed ``target_lsn`` (or, without
        it, up to ``max_lag_bytes`` short of the source's current LSN), polling for at most
        ``timeout_s``. Raises :class:`PreconditionFailed` at the deadline, with the positions."""
        self.inventory.site(site)
        self.inventory.site(source)
        return await self._catch_up(site, source, max_lag_bytes, timeout_s, target_lsn)

    async def pause_writes(self, site: str, run_id: str = "") -> Paused:
        """Make the primary ``site`` read-only for a switchover, and return its final LSN:
        every new session read-only (``default_transaction_read_only``, reloaded), client
        sessions ended (their uncommitted work rolls back; nothing acknowledged is lost), the
        WAL segment switched (the archive gets it). The server keeps running and streaming.
        Marked (``hybridops.pause.json``) with what was first observed, so a retry reports
        the same and :meth:`resume_writes` restores it. Seconds at most."""
        self.inventory.site(site)
        log.info("pausing writes on %s for %s", site, run_id)
        return await self._pause_writes(site, run_id)

    async def resume_writes(self, site: str) -> bool:
        """Compensation of :meth:`pause_writes`: writable again (unless it was read-only
        before), mark removed. No mark: nothing to do. Returns whether anything changed."""
        self.inventory.site(site)
        return await self._resume_writes(site)

    async def retire_fence(self, site: str) -> bool:
        """Remove the fence mark of a server that has a legitimate role again: a writable
        primary, or a standby streaming from a primary (its ``standby.signal`` stays). No
        mark: nothing to do. Raises :class:`PreconditionFailed` otherwise (the mark is what
        keeps a stale primary read-only)."""
        self.inventory.site(site)
        return await self._retire_fence(site)

    async def restore_primary(
        self,
        site: str,
        backups: BackupDriver,
        backup: str,
        target_time: datetime | None,
        run_id: str,
    ) -> Restored:
        """Irreversible. Replace ``site``'s server (one that does not accept writes: an unfit
        standby, stopped or not) by ``backup`` restored through ``backups`` into a fresh
        directory, swapped in only when complete, replayed from the WAL archive to its end (or
        ``target_time``) and started as the primary on a timeline above every one the archive
        holds. Idempotent: a retry finds the site restored by ``run_id`` and proves it (server
        writable, its timeline new in the archive) instead of restoring again. Takes as long
        as fetching the backup and replaying the archive; heartbeats its phases. Raises
        :class:`CapabilityMissing` for a driver without ``restore_primary`` (checked by the
        runbook before its first change), :class:`PreconditionFailed` for a target that
        accepts writes or was restored by another run, :class:`TimelineCollision` after."""
        self.inventory.site(site)
        if Capability.RESTORE_PRIMARY not in self.capabilities_of(site):
            raise CapabilityMissing(
                f"sites.{site}: its driver has no 'restore_primary' capability",
                site=site,
                capability=Capability.RESTORE_PRIMARY.value,
            )
        log.info("restoring %s from backup %s for %s", site, backup, run_id)
        return await self._restore_primary(site, backups, backup, target_time, run_id)

    async def _restore_primary(
        self,
        site: str,
        backups: BackupDriver,
        backup: str,
        target_time: datetime | None,
        run_id: str,
    ) -> Restored:
        """:meth:`restore_primary`; only drivers that declare the capability implement it."""
        raise AssertionError("unreachable: restore_primary checks the capability first")

    # Hooks each driver implements.
    @abc.abstractmethod
    async def _assess(self, site: str) -> SiteState: ...
    @abc.abstractmethod
    async def _fence(self, site: str, run_id: str) -> Fenced: ...
    @abc.abstractmethod
    async def _unfence(self, site: str) -> bool: ...
    @abc.abstractmethod
    async def _promote(
        self, site: str, wait_for_lsn: str | None, max_catchup_s: float, run_id: str, allow_fenced: bool
    ) -> Promoted: ...
    @abc.abstractmethod
    async def _follow(self, site: str, new_primary: str) -> bool: ...
    @abc.abstractmethod
    async def _write_probe(self, host: str, site: str, table: str, run_id: str) -> datetime: ...
    @abc.abstractmethod
    async def _surviving(self, site: str, table: str, seqs: list[int]) -> set[int]: ...
    @abc.abstractmethod
    async def _rewind(self, site: str, source: str, run_id: str, method: RejoinMethod) -> Rejoined: ...
    @abc.abstractmethod
    async def _catch_up(
        self, site: str, source: str, max_lag_bytes: int, timeout_s: float, target_lsn: str | None
    ) -> CaughtUp: ...
    @abc.abstractmethod
    async def _pause_writes(self, site: str, run_id: str) -> Paused: ...
    @abc.abstractmethod
    async def _resume_writes(self, site: str) -> bool: ...
    @abc.abstractmethod
    async def _retire_fence(self, site: str) -> bool: ...
