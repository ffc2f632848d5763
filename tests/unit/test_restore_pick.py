"""Which backup a restore-mode failover restores (``BackupDriver.pick``), and the refusals of a
bad point in time, each naming the failover input's field before anything changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drivers.backup.base import LATEST, BackupDriver
from drivers.backup.errors import BackupNotFound
from hybridops.contracts.backup import BackupInfo, RestoreResult, WalVerifyResult
from hybridops.errors import InputError
from hybridops.inventory import Inventory

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def info(name: str, hours_ago: float) -> BackupInfo:
    done = NOW - timedelta(hours=hours_ago)
    return BackupInfo(name=name, started_at=done - timedelta(minutes=5), finished_at=done, site="onprem")


class Listed(BackupDriver):
    """A backup driver that only lists (pick reads nothing else)."""

    def __init__(self, backups: list[BackupInfo]) -> None:
        self.backups = backups

    async def backup(self, site: str) -> BackupInfo:
        raise AssertionError

    async def list(self) -> list[BackupInfo]:
        return self.backups

    async def _restore(self, backup: str, data_dir: Path, target_time: datetime | None) -> RestoreResult:
        raise AssertionError

    async def verify_wal(self) -> WalVerifyResult:
        raise AssertionError


DRIVER = Listed([info("base_old", 48), info("base_new", 2)])
FIELDS = ("restore_backup", "restore_to")


async def test_latest_is_the_newest_that_finished_before_the_time() -> None:
    assert (await DRIVER.pick(LATEST, None, NOW, *FIELDS)).name == "base_new"
    assert (await DRIVER.pick(LATEST, NOW - timedelta(hours=10), NOW, *FIELDS)).name == "base_old"
    assert (await DRIVER.pick("base_old", NOW - timedelta(hours=1), NOW, *FIELDS)).name == "base_old"


@pytest.mark.parametrize(
    ("backup", "at", "field", "words"),
    [
        (LATEST, NOW + timedelta(minutes=1), "restore_to", "is in the future"),
        (LATEST, NOW - timedelta(days=5), "restore_to", "before the oldest backup finished"),
        ("base_new", NOW - timedelta(hours=10), "restore_to", "before the backup finished"),
        ("--config=/etc/x", None, "restore_backup", "not a backup name"),
    ],
)
async def test_a_bad_point_in_time_is_refused_naming_the_field(
    backup: str, at: datetime | None, field: str, words: str
) -> None:
    with pytest.raises(InputError) as refused:
        await DRIVER.pick(backup, at, NOW, *FIELDS)
    assert str(refused.value).startswith(f"{field}:") and words in str(refused.value)


async def test_a_missing_backup_is_named() -> None:
    with pytest.raises(BackupNotFound, match="restore_backup: backup 'base_gone' does not exist"):
        await DRIVER.pick("base_gone", None, NOW, *FIELDS)
    with pytest.raises(BackupNotFound):
        await Listed([]).pick(LATEST, None, NOW, *FIELDS)


def test_the_driver_is_built_without_an_inventory_here() -> None:
    # Listed skips BackupDriver.__init__: pick must not need the inventory.
    assert not hasattr(DRIVER, "inventory") or isinstance(DRIVER.inventory, Inventory)
