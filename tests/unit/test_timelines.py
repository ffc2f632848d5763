"""The WAL archive's timelines and the check after a promotion (drivers/postgres/timelines.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from drivers.postgres import timelines
from drivers.postgres.timelines import archived_timelines, confirm_new_timeline, replay_timeline
from hybridops.errors import TimelineCollision

OURS = b"1\t0/5000000\tno recovery target specified\n"
THEIRS = b"1\t0/4000000\tno recovery target specified\n"


def _dirs(tmp_path: Path, archived_by_us: bool = True) -> tuple[Path, Path]:
    archive, pg_wal = tmp_path / "archive", tmp_path / "pg_wal"
    archive.mkdir()
    (pg_wal / "archive_status").mkdir(parents=True)
    (pg_wal / "00000002.history").write_bytes(OURS)
    status = "done" if archived_by_us else "ready"
    (pg_wal / "archive_status" / f"00000002.history.{status}").touch()
    return archive, pg_wal


THREE = "1\t0/5000000\tno recovery target specified\n2\t0/7000000\tno recovery target specified\n"


def test_a_standby_past_the_switch_point_is_on_the_new_timeline_whatever_its_control_data_says() -> None:
    """A rewound home whose last restartpoint is still on timeline 1 and whose WAL receiver
    stopped with the paused primary: the history file of the timeline it follows says 2."""
    assert replay_timeline(0x5000100, 2, OURS.decode(), known=1) == 2
    assert replay_timeline(0x5000000, 2, OURS.decode(), known=1) == 1  # the parent's last record
    assert replay_timeline(0x4000000, 3, THREE, known=1) == 1
    assert replay_timeline(0x6000000, 3, THREE, known=1) == 2
    assert replay_timeline(0x7000001, 3, THREE, known=2) == 3


def test_the_control_data_wins_over_a_history_it_is_not_on() -> None:
    """Never older than what the control data says; a history file of another branch (the
    lower bound is not on its ancestry) or not in PostgreSQL's format is not taken."""
    assert replay_timeline(0x4000000, 2, OURS.decode(), known=2) == 2
    assert replay_timeline(0x9000000, 3, "1\t0/5000000\tx\n", known=2) == 2
    assert replay_timeline(0x9000000, 2, "garbage here\n", known=1) == 1
    assert replay_timeline(0x9000000, 2, "# comment\n1\t0/5000000\n", known=0) == 2


def test_archived_timelines_reads_only_history_files(tmp_path: Path) -> None:
    assert archived_timelines(tmp_path / "missing") == {}
    (tmp_path / "00000002.history").write_bytes(OURS)
    (tmp_path / "0000000A.history").write_bytes(THEIRS)
    (tmp_path / "000000010000000000000003").write_bytes(b"wal")
    (tmp_path / "00000003.history.tmp").write_bytes(b"partial")
    assert archived_timelines(tmp_path) == {2: OURS, 10: THEIRS}


async def test_new_timeline_and_our_history_file_pass(tmp_path: Path) -> None:
    archive, own = _dirs(tmp_path)
    (archive / "00000002.history").write_bytes(OURS)
    note = await confirm_new_timeline("gcp", 2, {}, archive, own)
    assert "timeline 2 is new" in note


async def test_a_timeline_the_archive_held_is_a_collision(tmp_path: Path) -> None:
    archive, own = _dirs(tmp_path)
    with pytest.raises(TimelineCollision) as err:
        await confirm_new_timeline("gcp", 2, {2: THEIRS}, archive, own)
    assert err.value.ids == {"site": "gcp", "timeline": 2} and not err.value.retryable


async def test_another_servers_history_file_is_a_collision(tmp_path: Path) -> None:
    archive, own = _dirs(tmp_path)
    (archive / "00000002.history").write_bytes(THEIRS)  # archived between our look and our promotion
    with pytest.raises(TimelineCollision, match="another server's") as err:
        await confirm_new_timeline("gcp", 2, {}, archive, own)
    assert err.value.ids == {"site": "gcp", "timeline": 2}


async def test_our_copy_being_written_is_waited_for(tmp_path: Path) -> None:
    archive, own = _dirs(tmp_path)
    path = archive / "00000002.history"
    path.write_bytes(OURS[:5])

    async def finish() -> None:
        await asyncio.sleep(0.2)
        path.write_bytes(OURS)

    task = asyncio.create_task(finish())
    note = await confirm_new_timeline("gcp", 2, {1: b""}, archive, own)
    await task
    assert "is new" in note


async def test_an_identical_file_we_did_not_archive_is_a_collision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two servers promoted at the same LSN: the same content; ours stays .ready (refused)."""
    archive, own = _dirs(tmp_path, archived_by_us=False)
    (archive / "00000002.history").write_bytes(OURS)
    monkeypatch.setattr(timelines, "ARCHIVE_WAIT_S", 0.1)
    with pytest.raises(TimelineCollision, match="did not put there") as err:
        await confirm_new_timeline("gcp", 2, {}, archive, own)
    assert err.value.ids == {"site": "gcp", "timeline": 2}


async def test_not_archived_in_time_is_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive, own = _dirs(tmp_path)
    monkeypatch.setattr(timelines, "ARCHIVE_WAIT_S", 0.1)
    note = await confirm_new_timeline("gcp", 2, {}, archive, own)
    assert "not archived" in note and "not checked" in note


def test_a_history_file_counts_only_with_a_segment_of_its_timeline() -> None:
    """A standby following ``latest`` fetched a split brain's sibling history (00000002) but
    holds no WAL of timeline 2: it follows timeline 1. Once it streams timeline 3, 3's."""
    seg = "000000010000000000000005"
    fetched_only = [seg, "00000002.history", "archive_status"]
    assert timelines.followed_history(fetched_only) is None
    streamed = [seg, "00000002.history", "00000003.history", "000000030000000000000006.partial"]
    assert timelines.followed_history(streamed) == "00000003.history"
    rewound = [*streamed, "000000020000000000000005"]
    assert timelines.followed_history(rewound) == "00000003.history"
    assert timelines.followed_history(["00000002.history", "000000020000000000000007"]) == "00000002.history"
    assert timelines.followed_history([]) is None
