"""The promote mark proves a promotion only once the server left the timeline it promoted
from, and a repair needs proof that nothing was written (drivers/postgres/promotion.py)."""

from __future__ import annotations

from drivers.postgres import promotion

# pg_waldump --limit=1 at the end of a standby's replay, after crash recovery on timeline 1
# (PostgreSQL 18, seen in the lab after a kill between standby.signal's removal and the switch).
END_OF_RECOVERY = (
    "rmgr: XLOG        len (rec/tot):    114/   114, tx:          0, lsn: 0/00E13060, prev 0/00E12FE8,"
    " desc: CHECKPOINT_SHUTDOWN redo 0/E13060; tli 1; prev tli 1; fpw true; wal_level replica;"
    " xid 0:955; oid 24576; multi 1; offset 0; oldest xid 744 in DB 1; oldest multi 1 in DB 1;"
    " oldest/newest commit timestamp xid: 0/0; oldest running xid 0; shutdown\n"
)
A_COMMIT = (
    "rmgr: Transaction len (rec/tot):     34/    34, tx:        955, lsn: 0/00E13060, prev 0/00E12FE8,"
    " desc: COMMIT 2026-12-03 20:17:03.020353 UTC\n"
)


def test_the_mark_proves_nothing_until_the_timeline_moved() -> None:
    mark = promotion.promote_mark("run-1", 1, "0/E13060")
    assert mark["from_timeline"] == 1 and mark["replay_lsn"] == "0/E13060"
    assert not promotion.completed(mark, 1) and promotion.incomplete(mark, 1)
    assert promotion.completed(mark, 2) and not promotion.incomplete(mark, 2)
    assert not promotion.completed(mark, None) and not promotion.incomplete(mark, None)


def test_a_mark_without_its_timeline_proves_nothing_either_way() -> None:
    legacy = {"promoted_by": "run-1", "at": "2026-01-01T00:00:00+00:00"}
    assert promotion.from_timeline(legacy) is None and promotion.from_timeline(None) is None
    assert not promotion.completed(legacy, 5) and not promotion.incomplete(legacy, 5)


def test_the_hold_names_the_site_the_timeline_and_what_to_do() -> None:
    detail = promotion.incomplete_detail("azure", 1, promotion.promote_mark("run-1", 1, "0/E13060"))
    assert detail.startswith("azure is writable on timeline 1, the timeline it was a standby on")
    assert "run-1" in detail and "collide" in detail and "0/E13060" in detail
    assert "standby.signal" in detail and "runbooks/failover.md" in detail


def test_nothing_written_is_proven_by_the_transaction_id() -> None:
    assert promotion.writes_after_recovery(END_OF_RECOVERY, "0:955") == ""
    took = promotion.writes_after_recovery(END_OF_RECOVERY, "0:957")
    assert "0:955 then, 0:957 now" in took and "took writes" in took
    assert "not its end-of-recovery checkpoint" in promotion.writes_after_recovery(A_COMMIT, "0:955")
    assert "not its end-of-recovery checkpoint" in promotion.writes_after_recovery("", "0:955")
