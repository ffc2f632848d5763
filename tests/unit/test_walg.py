"""The ``walg`` backup driver against a fake ``wal-g`` (tests/fakes/wal-g) at the process
boundary: the real driver code builds the command lines and environments, parses WAL-G's
documented JSON, and maps its failures; the fake checks what it is given and records it."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from drivers.backup import LATEST, BackupNotFound, make_backup_driver
from drivers.backup.basebackup import BaseBackupDriver
from drivers.backup.errors import BackupToolFailed, BackupToolTimeout
from drivers.backup.walg import ENV_FILE, WalgBackupDriver, backup_info
from hybridops.errors import ConfigError, FatalError, InputError
from hybridops.inventory import (
    BackupKind,
    BackupSettings,
    DnsSettings,
    Inventory,
    SiteConfig,
    parse_inventory,
)

FAKE = Path(__file__).resolve().parents[1] / "fakes" / "wal-g"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
PREFIX = "s3://backups-bucket/hybridops/onprem"


WORKER_CANARY = "worker-own-credential-never-for-wal-g"


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake's state directory, with its wrapper ``wal-g`` (the inventory's ``walg_path``);
    the secrets the inventory references in the worker's environment, beside credentials of
    the worker's own that wal-g must never see."""
    d = tmp_path / "fake-walg"
    d.mkdir()
    # wal-g gets the allow-listed environment, not the test's: the wrapper tells the fake
    # where its state is, and control.env (see control) how to behave.
    wrapper = d / "wal-g"
    wrapper.write_text(
        f"#!/bin/sh\nexport FAKE_WALG_DIR={shlex.quote(str(d))}\n"
        f'[ -f "$FAKE_WALG_DIR/control.env" ] && . "$FAKE_WALG_DIR/control.env"\n'
        f'exec {shlex.quote(sys.executable)} {shlex.quote(str(FAKE))} "$@"\n'
    )
    wrapper.chmod(0o755)
    control(
        d,
        FAKE_WALG_EXPECT_ENV="WALG_S3_PREFIX,AWS_SECRET_ACCESS_KEY",
        FAKE_WALG_SECRET_ENV="AWS_SECRET_ACCESS_KEY",
    )
    monkeypatch.setenv("TEST_WALG_PREFIX", PREFIX)
    monkeypatch.setenv("TEST_WALG_SECRET", SECRET)
    monkeypatch.setenv("HYBRIDOPS_TEST_WORKER_TOKEN", WORKER_CANARY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", WORKER_CANARY)
    monkeypatch.delenv("WALG_SENTINEL_USER_DATA", raising=False)
    return d


def control(state: Path, **settings: str) -> None:
    """Set the fake's behaviour (``FAKE_WALG_FAIL``, ``FAKE_WALG_VERIFY``, ...) for its next calls."""
    path = state / "control.env"
    current = (
        dict(line.removeprefix("export ").split("=", 1) for line in path.read_text().splitlines())
        if path.exists()
        else {}
    )
    current.update({k: shlex.quote(v) for k, v in settings.items()})
    path.write_text("".join(f"export {k}={v}\n" for k, v in current.items()))


def inventory(tmp_path: Path, **backup: Any) -> Inventory:
    for site in ("onprem", "azure"):
        (tmp_path / "pg" / site).mkdir(parents=True, exist_ok=True)
    settings = {
        "driver": BackupKind.WALG,
        "walg_path": str(tmp_path / "fake-walg" / "wal-g"),
        "walg_env": {
            "WALG_S3_PREFIX": "env:TEST_WALG_PREFIX",
            "AWS_SECRET_ACCESS_KEY": "env:TEST_WALG_SECRET",
        },
        "scratch_dir": tmp_path / "scratch",
        "scratch_host": "127.0.0.70",
        **backup,
    }
    pg = tmp_path / "pg"
    return Inventory(
        sites={
            # Nothing listens on these: verify_wal falls back to the on-prem site at once.
            "onprem": SiteConfig(host="127.0.0.1", port=1, user="backup", data_dir=pg / "onprem"),
            "azure": SiteConfig(cloud="azure", host="127.0.0.2", port=1, data_dir=pg / "azure"),
        },
        dns=DnsSettings(zone="example.com", record="db.example.com"),
        backup=BackupSettings(**settings),
    )


@pytest.fixture
def driver(tmp_path: Path, state: Path) -> Iterator[WalgBackupDriver]:
    d = make_backup_driver(inventory(tmp_path))
    assert isinstance(d, WalgBackupDriver)
    yield d


def calls(state: Path) -> list[dict[str, Any]]:
    path = state / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_registry_builds_each_driver(tmp_path: Path) -> None:
    inv = inventory(tmp_path)
    assert isinstance(make_backup_driver(inv), WalgBackupDriver)
    inv.backup.driver = BackupKind.BASEBACKUP
    assert isinstance(make_backup_driver(inv), BaseBackupDriver)
    with pytest.raises(ConfigError, match=r"backup\.driver"):
        parse_inventory({**inv.model_dump(mode="json"), "backup": {"driver": "barman"}})


async def test_backup_push_then_list(driver: WalgBackupDriver, state: Path, tmp_path: Path) -> None:
    assert await driver.list() == []
    info = await driver.backup("onprem")
    assert info.name == "base_000000010000000000000002" and info.site == "onprem"
    assert info.wal_segment == "000000010000000000000002" and info.timeline == 1
    assert info.start_lsn == "0/2000028" and info.end_lsn == "0/2000218"
    assert info.size_bytes == 4194304 and info.uncompressed_bytes == 31457280
    assert info.started_at is not None and info.started_at.tzinfo is not None
    second = await driver.backup("onprem")
    assert [b.name for b in await driver.list()] == [info.name, second.name]

    push = next(c for c in calls(state) if c["argv"][0] == "backup-push")
    assert push["argv"] == ["backup-push", "--", str(tmp_path / "pg" / "onprem")]
    assert push["env"]["PGHOST"] == "127.0.0.1" and push["env"]["PGPORT"] == "1"
    assert push["env"]["PGUSER"] == "backup"
    assert json.loads(push["env"]["WALG_SENTINEL_USER_DATA"]) == {"hybridops_site": "onprem"}
    assert push["present"] == ["AWS_SECRET_ACCESS_KEY", "WALG_S3_PREFIX"]
    assert next(c["argv"] for c in calls(state) if c["argv"][0] == "backup-list") == [
        "backup-list",
        "--json",
        "--detail",
    ]
    assert not any("refused" in c for c in calls(state))
    assert SECRET not in (state / "calls.jsonl").read_text()
    for call in calls(state):  # the worker's own environment stays with the worker
        assert not [k for k in call["env_keys"] if k.startswith("HYBRIDOPS_")]
        assert "AWS_SESSION_TOKEN" not in call["env_keys"] and not call["canary"]


def test_backup_info_reads_the_documented_fields() -> None:
    entry = {
        "backup_name": "base_000000010000000A000000B2",
        "time": "2024-03-04T05:06:07.123456Z",
        "wal_file_name": "000000010000000A000000B2",
        "storage_name": "default",
        "start_time": "2024-03-04T05:00:00.5Z",
        "finish_time": "2024-03-04T05:06:07.123456Z",
        "date_fmt": "%Y-%m-%dT%H:%M:%S.%fZ",
        "hostname": "pg-1",
        "data_dir": "/var/lib/postgresql/16/main",
        "pg_version": 160002,
        "start_lsn": 0xAB2000028,
        "finish_lsn": 0xAB3000100,
        "is_permanent": True,
        "system_identifier": 7000000000000000001,
        "uncompressed_size": 1000,
        "compressed_size": 300,
    }
    info = backup_info(entry)
    assert info.start_lsn == "A/B2000028" and info.end_lsn == "A/B3000100"
    assert info.started_at == datetime(2024, 3, 4, 5, 0, 0, 500000, tzinfo=UTC)
    assert info.site is None and info.timeline == 1
    assert backup_info({**entry, "start_lsn": "A/B2000028"}).start_lsn == "A/B2000028"


async def test_restore_latest_configures_recovery_without_secrets(
    driver: WalgBackupDriver, state: Path, tmp_path: Path
) -> None:
    await driver.backup("onprem")
    newest = await driver.backup("onprem")
    data = tmp_path / "scratch" / "drill-1" / "data"
    result = await driver.restore(LATEST, data, None)
    assert result.backup == newest.name and result.target_time is None
    fetch = [c for c in calls(state) if c["argv"][0] == "backup-fetch"]
    assert [c["argv"] for c in fetch] == [["backup-fetch", "--", str(data), newest.name]]

    # Nothing of the source's production settings survives.
    assert (data / "recovery.signal").exists()
    for gone in ("standby.signal", "postmaster.pid", "hybridops.fence.json"):
        assert not (data / gone).exists(), gone
    conf = (data / "postgresql.conf").read_text()
    assert "\ndata_directory" not in "\n" + conf and "# disabled by hybridops restore: data_directory" in conf
    assert "# disabled by hybridops restore: include_if_exists" in conf
    auto = (data / "postgresql.auto.conf").read_text()
    assert "host=10.0.0.5" not in auto and "primary_conninfo = ''" in auto
    assert "archive_mode = off" in auto and "listen_addresses = '127.0.0.70'" in auto
    assert "default_transaction_read_only = off" in auto
    assert "recovery_target_action = 'promote'" in auto and "recovery_target_timeline = 'latest'" in auto
    command = result.settings["restore_command"]
    assert command.startswith(f'\'. {data / ENV_FILE} && {{ {state / "wal-g"} wal-fetch "%f" "%p"; rc=$?;')
    assert "0|74) exit $rc;; esac; exit 255;" in command

    # The secret is only in the env file restore_command sources, which only its owner reads.
    env_file = data / ENV_FILE
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    assert f"export AWS_SECRET_ACCESS_KEY={SECRET}" in env_file.read_text()
    assert SECRET not in conf + auto and SECRET not in result.model_dump_json()

    # A retry is a no-op.
    assert await driver.restore(LATEST, data, None) == result
    assert len([c for c in calls(state) if c["argv"][0] == "backup-fetch"]) == 1


async def test_restore_command_sources_the_env_file_and_stops_on_errors(
    driver: WalgBackupDriver, state: Path, tmp_path: Path
) -> None:
    """What PostgreSQL will run, in an environment without the secrets: the env file supplies
    them; a missing segment ends recovery (74); any other failure stops the server (255)."""
    await driver.backup("onprem")
    data = tmp_path / "scratch" / "d" / "data"
    result = await driver.restore(LATEST, data, None)
    command = result.settings["restore_command"][1:-1].replace("''", "'").replace("\\\\", "\\")
    (state / "wal").mkdir()
    segment = "000000010000000000000003"
    (state / "wal" / segment).write_bytes(b"wal" * 100)
    env = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}

    def restore_command(name: str, **extra: str) -> int:
        line = command.replace("%f", name).replace("%p", "pg_wal/RECOVERYXLOG")
        return subprocess.run(
            ["sh", "-c", line], env={**env, **extra}, cwd=data, capture_output=True
        ).returncode

    assert restore_command(segment) == 0
    assert (data / "pg_wal" / "RECOVERYXLOG").read_bytes() == b"wal" * 100
    assert restore_command("000000010000000000000099") == 74
    assert restore_command(segment, FAKE_WALG_FAIL="wal-fetch=error") == 255
    fetches = [c for c in calls(state) if c["argv"][0] == "wal-fetch"]
    assert len(fetches) == 3 and all(
        c["present"] == ["AWS_SECRET_ACCESS_KEY", "WALG_S3_PREFIX"] for c in fetches
    )


async def test_point_in_time_picks_the_newest_backup_finished_before_the_target(
    driver: WalgBackupDriver, tmp_path: Path
) -> None:
    first = await driver.backup("onprem")
    target = datetime.now(UTC)
    await driver.backup("onprem")
    result = await driver.restore(LATEST, tmp_path / "scratch" / "pitr" / "data", target)
    assert result.backup == first.name and result.target_time == target
    assert result.settings["recovery_target_time"] == f"'{target:%Y-%m-%d %H:%M:%S.%f}+00'"
    with pytest.raises(BackupNotFound, match="finished before"):
        early = datetime(2000, 1, 1, tzinfo=UTC)
        await driver.restore(LATEST, tmp_path / "scratch" / "early" / "data", early)


async def test_unknown_backup_is_a_fatal_error_naming_it(driver: WalgBackupDriver, tmp_path: Path) -> None:
    await driver.backup("onprem")
    data = tmp_path / "scratch" / "d" / "data"
    with pytest.raises(BackupNotFound, match="base_00000001000000000000AAAA") as caught:
        await driver.restore("base_00000001000000000000AAAA", data, None)
    assert caught.value.ids["backup"] == "base_00000001000000000000AAAA" and not caught.value.retryable
    assert not data.exists()


@pytest.mark.parametrize("name", ["--config=/etc/evil.yaml", "-h", "../other/backup", "a/b", "", "x\ny"])
async def test_a_backup_name_that_is_no_name_is_refused_before_wal_g_runs(
    driver: WalgBackupDriver, state: Path, tmp_path: Path, name: str
) -> None:
    """A name that wal-g would read as an option (``--config=...``) or a path is an input error
    naming the field; wal-g is not run and nothing is written."""
    data = tmp_path / "scratch" / "d" / "data"
    with pytest.raises(InputError, match=r"^backup: ") as caught:
        await driver.restore(name, data, None)
    assert not caught.value.retryable
    assert not (state / "calls.jsonl").exists() and not data.exists()


async def test_no_backup_at_all(driver: WalgBackupDriver, tmp_path: Path) -> None:
    with pytest.raises(BackupNotFound, match="LATEST"):
        await driver.restore(LATEST, tmp_path / "scratch" / "d" / "data", None)


async def test_a_failure_carries_the_command_and_stderr_never_the_secret(
    driver: WalgBackupDriver, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    control(state, FAKE_WALG_FAIL="backup-push=error")
    with pytest.raises(BackupToolFailed) as caught:
        await driver.backup("onprem")
    message = str(caught.value)
    assert "backup-push" in message and "exited 1" in message and "AccessDenied" in message
    assert SECRET not in message and PREFIX not in message and "[REDACTED]" in message
    assert caught.value.retryable and caught.value.ids["site"] == "onprem"


async def test_a_secret_is_never_put_in_argv(driver: WalgBackupDriver, state: Path, tmp_path: Path) -> None:
    await driver.backup("onprem")
    before = len(calls(state))
    # Refused as a backup name (it holds '/') before wal-g's argv is even built.
    with pytest.raises(InputError, match="backup") as caught:
        await driver.restore(SECRET, tmp_path / "scratch" / "d" / "data", None)
    assert SECRET not in str(caught.value)
    assert len(calls(state)) == before  # refused before wal-g ran


async def test_a_missing_secret_reference_names_its_key(tmp_path: Path, state: Path) -> None:
    inv = inventory(tmp_path, walg_env={"AWS_SECRET_ACCESS_KEY": "env:TEST_WALG_NOT_SET"})
    with pytest.raises(ConfigError, match=r"backup\.walg_env\.AWS_SECRET_ACCESS_KEY"):
        await make_backup_driver(inv).list()


async def test_unexpected_output_is_fatal(driver: WalgBackupDriver, state: Path) -> None:
    await driver.backup("onprem")
    control(state, FAKE_WALG_FAIL="backup-list=garbage")
    with pytest.raises(FatalError, match="unexpected output"):
        await driver.list()


async def test_a_timeout_kills_the_whole_process_group(
    driver: WalgBackupDriver, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    control(state, FAKE_WALG_FAIL="backup-list=hang")
    driver.list_timeout_s = 1.0
    started = time.monotonic()
    with pytest.raises(BackupToolTimeout, match="backup-list"):
        await driver.list()
    assert time.monotonic() - started < 10
    child = next(c["child_pid"] for c in calls(state) if "child_pid" in c)

    def gone() -> bool:
        try:
            return psutil.Process(child).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    deadline = time.monotonic() + 10
    while not gone():
        assert time.monotonic() < deadline, f"the fake's child {child} survived the timeout"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("answer", "ok", "missing"),
    [
        ("ok", True, []),
        ("warning", True, ["000000010000000000000041-000000010000000000000042 (MISSING_DELAYED, 2)"]),
        ("lost", False, ["000000010000000000000011-000000010000000000000013 (MISSING_LOST, 3)"]),
    ],
)
async def test_verify_wal(
    driver: WalgBackupDriver,
    state: Path,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    ok: bool,
    missing: list[str],
) -> None:
    control(state, FAKE_WALG_VERIFY=answer)
    result = await driver.verify_wal()
    assert result.ok is ok and result.missing == missing
    assert result.first_segment is not None and result.last_segment is not None
    call = calls(state)[-1]
    assert call["argv"] == ["wal-verify", "integrity", "timeline", "--json"]
    assert call["env"]["PGHOST"] == "127.0.0.1"  # no primary answers: the on-prem site
    if answer == "ok":
        assert result.segments == 420 + 836 and "timeline OK" in result.detail
