"""Backups: the driver interface (``walg``, ``basebackup``), its errors, and the scratch server
a restored backup is started on."""

from drivers.backup.base import LATEST, BackupDriver
from drivers.backup.errors import (
    BackupNotFound,
    BackupToolFailed,
    BackupToolTimeout,
    RestoreTargetNotEmpty,
    ScratchServerFailed,
)
from drivers.backup.registry import make_backup_driver
from drivers.backup.scratch import ScratchServer, TableStats

__all__ = [
    "LATEST",
    "BackupDriver",
    "BackupNotFound",
    "BackupToolFailed",
    "BackupToolTimeout",
    "RestoreTargetNotEmpty",
    "ScratchServer",
    "ScratchServerFailed",
    "TableStats",
    "make_backup_driver",
]
