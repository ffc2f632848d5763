"""Promotion and the shared WAL archive: a promotion never takes a timeline another server
holds (drivers/postgres/timelines.py), on the real lab."""

from __future__ import annotations

import psycopg
import pytest

from drivers.postgres.local import LocalPostgresDriver
from drivers.postgres.server import PROMOTE_MARK
from drivers.postgres.timelines import archived_timelines, confirm_new_timeline
from hybridops.errors import PreconditionFailed, TimelineCollision
from hybridops.lab import Lab
from tests.lab.helpers import eventually, role, timeline, writable_sites


def _sql(lab: Lab, site: str, *statements: str) -> list[object]:
    """Each statement's first value (None for a statement without rows)."""
    out: list[object] = []
    with psycopg.connect(
        host=lab.ip(site), port=lab.ports.pg, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        for statement in statements:
            cur = conn.execute(statement)
            row = cur.fetchone() if cur.description else None
            out.append(row[0] if row else None)
    return out


def _history_archive_failures(lab: Lab, site: str) -> list[str]:
    """The server log's lines about a failed archive_command for a timeline history file."""
    log = lab.data_dir(site) / "log" / "server.log"
    return [
        line
        for line in log.read_text(errors="replace").splitlines()
        if "archive command" in line and ".history" in line
    ]


async def test_split_brain_promotion_takes_the_next_free_timeline(lab: Lab) -> None:
    # A stranger promotes azure by hand while onprem still runs: two writers, and azure's
    # timeline 2 goes into the archive both share.
    _sql(lab, "azure", "SELECT pg_promote(true, 60)")
    azure_history = lab.archive / "00000002.history"

    async def archived() -> bool:
        return azure_history.exists() and azure_history.read_bytes() == _own_history(lab, "azure", 2)

    await eventually("azure's 00000002.history in the archive", archived)

    result = await LocalPostgresDriver(lab.inventory()).promote("gcp", None, 30, run_id="test-timelines")

    assert result.changed and result.timeline == 3 == timeline(lab, "gcp")
    assert "timeline 3 is new in the WAL archive" in result.detail
    held = archived_timelines(lab.archive)
    assert held[2] == _own_history(lab, "azure", 2)
    assert held[3] == _own_history(lab, "gcp", 3)
    for site in ("azure", "gcp"):
        assert _history_archive_failures(lab, site) == [], site
    # The split brain this test made, read from the servers: all three take writes.
    assert writable_sites(lab) == ["onprem", "azure", "gcp"]


def _own_history(lab: Lab, site: str, tli: int) -> bytes:
    return (lab.data_dir(site) / "pg_wal" / f"{tli:08X}.history").read_bytes()


async def test_promotion_refused_without_restore_command(lab: Lab) -> None:
    _sql(lab, "gcp", "ALTER SYSTEM SET restore_command = ''", "SELECT pg_reload_conf()")

    async def reloaded() -> bool:
        return _sql(lab, "gcp", "SHOW restore_command") == [""]

    await eventually("gcp without restore_command", reloaded)
    inv = lab.inventory()
    with pytest.raises(PreconditionFailed, match="no restore_command") as err:
        await LocalPostgresDriver(inv).promote("gcp", None, 30, run_id="test-refused")
    assert err.value.ids == {"site": "gcp"} and not err.value.retryable
    assert role(lab, "gcp") == "standby" and not (lab.data_dir("gcp") / PROMOTE_MARK).exists()

    # Without a WAL archive in the inventory there are no timelines to see: it promotes.
    no_archive = inv.model_copy(update={"backup": inv.backup.model_copy(update={"wal_archive": None})})
    result = await LocalPostgresDriver(no_archive).promote("gcp", None, 30, run_id="test-no-archive")
    assert result.changed and result.timeline == 2 and role(lab, "gcp") == "primary"
    # The driver promotes what it is told to (the runbook fences first): two writers now.
    assert writable_sites(lab) == ["onprem", "gcp"] and role(lab, "azure") == "standby"


async def test_a_stranger_taking_a_held_timeline_is_caught(lab: Lab) -> None:
    """What the driver's check exists for, made for real: gcp without restore_command,
    promoted by hand after azure, takes timeline 2 again; the archive keeps azure's history
    file, gcp's archive_command fails on its own, and the check names gcp and timeline 2."""
    _sql(lab, "azure", "SELECT pg_promote(true, 60)")

    async def azure_archived() -> bool:
        return (lab.archive / "00000002.history").exists()

    await eventually("azure's 00000002.history in the archive", azure_archived)
    _sql(lab, "gcp", "ALTER SYSTEM SET restore_command = ''", "SELECT pg_reload_conf()")

    async def reloaded() -> bool:
        return _sql(lab, "gcp", "SHOW restore_command") == [""]

    await eventually("gcp without restore_command", reloaded)
    _sql(lab, "gcp", "SELECT pg_promote(true, 60)")
    assert timeline(lab, "gcp") == 2

    # With no writes between, both promoted at the same LSN: identical history files, and
    # only gcp's archiver knows that its copy was refused.
    with pytest.raises(TimelineCollision, match="did not put there") as err:
        await confirm_new_timeline("gcp", 2, {}, lab.archive, lab.data_dir("gcp") / "pg_wal")
    assert err.value.ids == {"site": "gcp", "timeline": 2}
    assert _history_archive_failures(lab, "gcp")
    assert writable_sites(lab) == ["onprem", "azure", "gcp"]
