"""The backup interface: take base backups, list them, restore one (to a point in time) into a
fresh data directory, verify the WAL archive. Drivers: ``walg`` (production) and ``basebackup``
(the lab). A restore never touches a running server: it writes a new data directory, which
:class:`drivers.backup.scratch.ScratchServer` (or a human) then starts on its own port.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from datetime import datetime
from pathlib import Path

from drivers.backup.errors import BackupNotFound
from hybridops.capabilities import Capability
from hybridops.contracts.backup import BackupInfo, RestoreResult, WalVerifyResult
from hybridops.errors import InputError
from hybridops.inventory import Inventory

LATEST = "LATEST"
"""The name that means the newest backup (as wal-g spells it)."""
BACKUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")
"""A backup's name (``base_000000010000000000000002``, ``20261126T030000Z``): it goes into a
tool's argv and into paths, so no leading ``-`` (an option), no ``/`` and no ``..``."""


def check_backup_name(backup: str, field: str = "backup") -> str:
    """``backup`` when it is :data:`LATEST` or a plain name; :class:`InputError` naming
    ``field`` otherwise (``--config=/x`` would be an option to wal-g, ``../x`` a path)."""
    if backup != LATEST and (not BACKUP_NAME.match(backup) or ".." in backup):
        # The value is not repeated: whatever was passed (a secret by mistake) stays out of
        # errors and histories.
        raise InputError(
            f"{field}: not a backup name (letters, digits, '_', '.', ':', '-', not starting"
            " with '-'), nor LATEST"
        )
    return backup


class BackupDriver(ABC):
    """One backup system, configured by the inventory's ``backup`` section."""

    capabilities: frozenset[Capability] = frozenset({Capability.BACKUP, Capability.RESTORE})
    """Every backup driver takes and restores base backups."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    @abstractmethod
    async def backup(self, site: str) -> BackupInfo:
        """Take a base backup of ``site``'s server (it must be the primary or a standby)."""

    @abstractmethod
    async def list(self) -> list[BackupInfo]:
        """Every backup, oldest first."""

    async def restore(self, backup: str, data_dir: Path, target_time: datetime | None) -> RestoreResult:
        """Fetch ``backup`` (a name, or :data:`LATEST`) into the empty ``data_dir`` and configure
        recovery: WAL from the archive, up to ``target_time`` (``None``: all of it, ``latest``),
        then promote. Raises :class:`InputError` naming ``backup`` when it is not a backup name
        (before anything runs), a domain error naming the backup if it does not exist."""
        return await self._restore(check_backup_name(backup), data_dir, target_time)

    @abstractmethod
    async def _restore(self, backup: str, data_dir: Path, target_time: datetime | None) -> RestoreResult:
        """:meth:`restore`, with ``backup`` checked."""

    async def pick(
        self,
        backup: str,
        target_time: datetime | None,
        now: datetime,
        backup_field: str = "backup",
        time_field: str = "target_time",
    ) -> BackupInfo:
        """Read-only. The backup a restore of ``backup`` (a name, or :data:`LATEST`: the newest
        that finished before ``target_time``) to ``target_time`` would use, from :meth:`list`.
        Raises :class:`InputError` naming ``time_field`` for a time after ``now`` or before
        the backup finished (recovery cannot stop before the backup's consistent point), and
        naming ``backup_field`` for a malformed name; :class:`BackupNotFound` when there is no
        such backup. A restore-mode failover asks this before it changes anything."""
        check_backup_name(backup, backup_field)
        if target_time is not None:
            if target_time.tzinfo is None:
                raise InputError(f"{time_field}: {target_time.isoformat()} has no time zone")
            if target_time > now:
                raise InputError(
                    f"{time_field}: {target_time.isoformat()} is in the future (now {now.isoformat()});"
                    " recovery cannot stop at a time the archive has not reached"
                )
        backups = [b for b in await self.list() if b.finished_at is not None]
        if backup != LATEST:
            named = [b for b in backups if b.name == backup]
            if not named:
                raise BackupNotFound(f"{backup_field}: backup {backup!r} does not exist", backup=backup)
            backups = named
        usable = [
            b for b in backups if target_time is None or (b.finished_at and b.finished_at <= target_time)
        ]
        if not usable:
            if not backups:
                raise BackupNotFound("no finished backup to restore", backup=backup)
            assert target_time is not None
            oldest = min(b.finished_at for b in backups if b.finished_at is not None)
            raise InputError(
                f"{time_field}: {target_time.isoformat()} is before the "
                + ("backup" if backup != LATEST else "oldest backup")
                + f" finished ({oldest.isoformat()}): recovery cannot stop before a backup's"
                " consistent point; give a later time, or none for all archived WAL"
            )
        return max(usable, key=lambda b: (b.finished_at or now, b.name))

    @abstractmethod
    async def verify_wal(self) -> WalVerifyResult:
        """Check the WAL archive is complete from the oldest backup to now (``wal-verify``)."""
