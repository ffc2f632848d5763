"""The backup interface: take base backups, list them, restore one (to a point in time) into a
fresh data directory, verify the WAL archive. Drivers: ``walg`` (production) and ``basebackup``
(the lab). A restore never touches a running server: it writes a new data directory, which
:class:`activities.backup.scratch.ScratchServer` (or a human) then starts on its own port.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from pathlib import Path

from hybridops.backup_models import BackupInfo, RestoreResult, WalVerifyResult
from hybridops.inventory import Inventory

LATEST = "LATEST"
"""The name that means the newest backup (as wal-g spells it)."""


class BackupDriver(ABC):
    """One backup system, configured by the inventory's ``backup`` section."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    @abstractmethod
    async def backup(self, site: str) -> BackupInfo:
        """Take a base backup of ``site``'s server (it must be the primary or a standby)."""

    @abstractmethod
    async def list(self) -> list[BackupInfo]:
        """Every backup, oldest first."""

    @abstractmethod
    async def restore(self, backup: str, data_dir: Path, target_time: datetime | None) -> RestoreResult:
        """Fetch ``backup`` (a name, or :data:`LATEST`) into the empty ``data_dir`` and configure
        recovery: WAL from the archive, up to ``target_time`` (``None``: all of it, ``latest``),
        then promote. Raises a domain error naming the backup if it does not exist."""

    @abstractmethod
    async def verify_wal(self) -> WalVerifyResult:
        """Check the WAL archive is complete from the oldest backup to now (``wal-verify``)."""
