"""The explicit table of backup drivers, imported lazily."""

from __future__ import annotations

from drivers.backup.base import BackupDriver
from drivers.loader import load_driver
from hybridops.inventory import BackupKind, Inventory

DRIVERS: dict[BackupKind, str] = {
    BackupKind.WALG: "drivers.backup.walg:WalgBackupDriver",
    BackupKind.BASEBACKUP: "drivers.backup.basebackup:BaseBackupDriver",
}


def make_backup_driver(inventory: Inventory) -> BackupDriver:
    """The driver the inventory's ``backup.driver`` names."""
    return load_driver(DRIVERS, inventory.backup.driver, "backup.driver", BackupDriver, inventory)
