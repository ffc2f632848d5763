"""The ``basebackup`` driver and the scratch server against a real lab: base backup, listing,
point-in-time restore, restore of everything archived, the scratch server, the WAL archive."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from drivers.backup import LATEST, BackupNotFound, ScratchServer, make_backup_driver
from drivers.backup.basebackup import BaseBackupDriver
from drivers.backup.recovery import RESTORE_MARK
from hybridops.errors import ConfigError, PreconditionFailed
from hybridops.inventory import BackupSettings, DnsSettings, Inventory, SiteConfig
from hybridops.lab import Lab
from hybridops.lab.layout import SITES
from tests.lab.helpers import assert_one_writer, dns_points_at, eventually, role

TABLE = "hybridops_workload"


def insert(lab: Lab, seqs: range) -> None:
    with psycopg.connect(host=lab.ip("onprem"), port=lab.ports.pg, user="postgres", dbname="app") as conn:
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {TABLE} (seq) VALUES (%s)", [(s,) for s in seqs])
        conn.commit()


async def archive_now(lab: Lab) -> str:
    """Switch the primary to a new WAL segment and wait until the finished one is archived."""
    with psycopg.connect(
        host=lab.ip("onprem"), port=lab.ports.pg, user="postgres", dbname="app", autocommit=True
    ) as conn:
        row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
        assert row is not None
        segment: str = row[0]

    async def archived() -> bool:
        return (lab.archive / segment).exists()

    await eventually(f"{segment} in the archive", archived)
    return segment


async def seqs(server: ScratchServer) -> list[int]:
    conn = await server.connect()
    async with conn:
        cur = await conn.execute(f"SELECT seq FROM {TABLE} ORDER BY seq")
        return [r[0] for r in await cur.fetchall()]


async def test_backup_point_in_time_and_latest_restore(lab: Lab) -> None:
    inv = lab.inventory()
    driver = make_backup_driver(inv)
    assert isinstance(driver, BaseBackupDriver)
    assert inv.backup.scratch_dir is not None
    roles = {site: role(lab, site) for site in SITES}
    timings: dict[str, float] = {}

    insert(lab, range(1, 51))
    t0 = time.monotonic()
    info = await driver.backup("onprem")
    timings["backup"] = time.monotonic() - t0
    assert info.site == "onprem" and info.name == f"base_{info.wal_segment}"
    assert info.timeline == 1 and info.start_lsn and info.end_lsn and info.size_bytes
    assert [b.name for b in await driver.list()] == [info.name]

    insert(lab, range(51, 101))
    target = datetime.now(UTC)
    insert(lab, range(101, 151))
    await archive_now(lab)

    # Point in time: everything committed before the target, nothing after.
    server = ScratchServer(inv, inv.backup.scratch_dir / "pitr")
    pitr_dir = server.data_dir
    t0 = time.monotonic()
    restored = await driver.restore(LATEST, pitr_dir, target)
    timings["restore"] = time.monotonic() - t0
    assert restored.backup == info.name and restored.target_time == target
    assert restored.settings["archive_mode"] == "off" and restored.settings["primary_conninfo"] == "''"
    assert (pitr_dir / "recovery.signal").exists() and not (pitr_dir / "standby.signal").exists()
    assert await driver.restore(LATEST, pitr_dir, target) == restored  # a retry changes nothing
    try:
        t0 = time.monotonic()
        await server.start(timeout=120)
        timings["scratch_start"] = time.monotonic() - t0
        assert await seqs(server) == list(range(1, 101))
        stats = await server.table_stats(TABLE)
        assert stats.present and stats.rows == 100 and stats.newest_at is not None
        assert stats.newest_at <= target
        assert (await server.table_stats("no_such_table")).present is False
        assert await server.setting("archive_mode") == "off"
        assert await server.setting("listen_addresses") == f"{lab.ports.net}.70"
        assert await server.setting("primary_conninfo") == ""
        assert await server.setting("cluster_name") == "hybridops-scratch"
        conn = await server.connect()
        async with conn:  # promoted: it takes writes
            await conn.execute(f"INSERT INTO {TABLE} (seq) VALUES (1000000)")
    finally:
        assert await server.teardown() is True
    assert not server.directory.exists() and not server.running()
    assert await server.teardown() is False  # idempotent

    # Everything archived: the newest rows are there.
    insert(lab, range(151, 201))
    await archive_now(lab)
    server = ScratchServer(inv, inv.backup.scratch_dir / "latest")
    restored = await driver.restore(LATEST, server.data_dir, None)
    assert restored.target_time is None and restored.settings["recovery_target_time"] == "''"
    try:
        await server.start(timeout=120)
        assert await seqs(server) == list(range(1, 201))
    finally:
        await server.teardown()
    assert not server.directory.exists()
    assert sorted(p.name for p in inv.backup.scratch_dir.iterdir()) == []

    # An unknown backup: a domain error that names it, and nothing left behind.
    missing_dir = inv.backup.scratch_dir / "missing" / "data"
    with pytest.raises(BackupNotFound, match="base_000000FF0000000000000001") as caught:
        await driver.restore("base_000000FF0000000000000001", missing_dir, None)
    assert caught.value.ids["backup"] == "base_000000FF0000000000000001"
    assert not caught.value.retryable and not missing_dir.parent.exists()

    # The scratch servers never archived: their promotions made timeline 2, which the
    # archive would hold otherwise. The archive is complete from the backup on.
    assert not (lab.archive / "00000002.history").exists()
    verify = await driver.verify_wal()
    assert verify.ok, verify.detail
    assert verify.first_segment == info.wal_segment and verify.segments >= 3

    # Production is as it was.
    assert {site: role(lab, site) for site in SITES} == roles
    assert dns_points_at(lab) == "onprem"
    assert assert_one_writer(lab) == "onprem"
    print("timings (s):", {k: round(v, 3) for k, v in timings.items()})


async def test_restore_refuses_a_used_directory_and_the_production_data_dirs(lab: Lab) -> None:
    inv = lab.inventory()
    driver = make_backup_driver(inv)
    # From a standby: it neither switches segments nor archives, so the backup waits until the
    # primary has archived the segment that ends it (archive_timeout bounds the wait).
    info = await driver.backup("azure")
    assert info.site == "azure" and info.wal_segment is not None
    assert info.end_lsn is not None
    assert inv.backup.scratch_dir is not None
    used = inv.backup.scratch_dir / "used"
    used.mkdir(parents=True)
    (used / "something").write_text("not ours")
    with pytest.raises(PreconditionFailed, match="not empty"):
        await driver.restore(LATEST, used, None)
    assert (used / "something").read_text() == "not ours"
    with pytest.raises(PreconditionFailed, match="production"):
        await driver.restore(LATEST, lab.data_dir("azure"), None)
    assert not (lab.data_dir("azure") / RESTORE_MARK).exists()
    with pytest.raises(PreconditionFailed, match="scratch_dir"):
        ScratchServer(inv, lab.root / "elsewhere")
    assert role(lab, "azure") == "standby"

    # The standby's backup restores; a scratch server a drill left running stops with the lab.
    left = ScratchServer(inv, inv.backup.scratch_dir / "left")
    await driver.restore(info.name, left.data_dir, None)
    await left.start(timeout=120)
    lab.stop_scratch()
    assert not left.running()
    assert await left.teardown() is True
    assert assert_one_writer(lab) == "onprem"


def _inventory(tmp_path: Path, **backup: object) -> Inventory:
    return Inventory(
        sites={
            "onprem": SiteConfig(host="127.0.0.1", port=5432, data_dir=tmp_path / "onprem"),
            "azure": SiteConfig(cloud="azure", host="127.0.0.2", port=5432, data_dir=tmp_path / "azure"),
        },
        dns=DnsSettings(zone="example.com", record="db.example.com"),
        backup=BackupSettings(scratch_dir=tmp_path / "scratch", **backup),
    )


def test_scratch_server_refuses_a_production_address(tmp_path: Path) -> None:
    inv = _inventory(tmp_path, scratch_host="127.0.0.2", scratch_port=5432)
    with pytest.raises(ConfigError, match="site azure's address"):
        ScratchServer(inv, tmp_path / "scratch" / "d")
    inv = _inventory(tmp_path, scratch_host="127.0.0.70", scratch_port=5432)
    assert ScratchServer(inv, tmp_path / "scratch" / "d").address == "127.0.0.70:5432"
    with pytest.raises(PreconditionFailed):
        ScratchServer(inv, tmp_path / "scratch")  # the scratch root itself is never removed
