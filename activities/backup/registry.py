"""The explicit table of backup drivers, imported lazily."""

from __future__ import annotations

from activities.backup.base import BackupDriver
from hybridops.drivers import load_driver
from hybridops.inventory import BackupKind, Inventory

DRIVERS: dict[BackupKind, str] = {
    BackupKind.WALG: "activities.backup.walg:WalgBackupDriver",
    BackupKind.BASEBACKUP: "activities.backup.basebackup:BaseBackupDriver",
}


def make_backup_driver(inventory: Inventory) -> BackupDriver:
    """The driver the inventory's ``backup.driver`` names."""
    return load_driver(DRIVERS, inventory.backup.driver, "backup.driver", BackupDriver, inventory)
