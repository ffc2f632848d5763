"""The promote mark (``hybridops.promoted.json``) and what it proves.

The mark is written just before ``pg_promote``, so that a retry can tell this run's promotion
from a stranger's. It is an intent, not a proof: PostgreSQL (18, ``StartupXLOG``) removes
``standby.signal`` after it selected the new timeline and before the timeline's history file
and end-of-recovery record are durable. A server killed in between starts again without the
signal file, runs crash recovery on the timeline it was a standby on and comes up writable
there: the mark says "promoted", the server never switched. A writer on the old primary's
timeline writes WAL segments of the same names as the old primary into the WAL archive.

So the mark records the timeline the standby was on (``from_timeline``) and where its replay
ended (``replay_lsn``), and it counts as proof only once the server's timeline moved past
``from_timeline``. Pure functions: :class:`drivers.postgres.local.LocalPostgresDriver` reads
the mark and the server.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any


def promote_mark(run_id: str, from_timeline: int, replay_lsn: str | None) -> dict[str, Any]:
    """The mark written before ``pg_promote``: who promotes, from which timeline, and the end
    of the WAL the standby had replayed (where a writer on ``from_timeline`` began its own)."""
    return {
        "promoted_by": run_id,
        "at": datetime.now(UTC).isoformat(),
        "from_timeline": from_timeline,
        "replay_lsn": replay_lsn,
    }


def from_timeline(mark: dict[str, Any] | None) -> int | None:
    """The timeline the mark's standby was on; None without a mark, or for a mark written
    before marks recorded it."""
    value = (mark or {}).get("from_timeline")
    return int(value) if isinstance(value, int) else None


def completed(mark: dict[str, Any] | None, timeline: int | None) -> bool:
    """The mark's promotion completed: the server's ``timeline`` is past the one the mark
    says it promoted from. False without a mark, without ``from_timeline`` (the mark cannot
    prove anything), or on that timeline or an older one."""
    start = from_timeline(mark)
    return start is not None and timeline is not None and timeline > start


def incomplete(mark: dict[str, Any] | None, timeline: int | None) -> bool:
    """The mark records a promotion from ``timeline`` (or a newer one) that never switched:
    the server accepts writes on the timeline it was a standby on."""
    start = from_timeline(mark)
    return start is not None and timeline is not None and timeline <= start


def incomplete_detail(site: str, timeline: int, mark: dict[str, Any]) -> str:
    """What an operator reads when a step holds on an incomplete promotion: what happened,
    why it must not go on, what to do."""
    by = mark.get("promoted_by") or "?"
    since = mark.get("replay_lsn") or "the end of the WAL it had replayed"
    return (
        f"{site} is writable on timeline {timeline}, the timeline it was a standby on: its promotion"
        f" (by {by}) did not complete (the server stopped after it left recovery, before it switched"
        f" timeline). A writer on the old primary's timeline would collide with it in the WAL archive."
        f" Held for a human: stop {site}; if its WAL after {since} holds only checkpoints (pg_waldump),"
        f" put standby.signal back in its data directory, start it as a standby and run the runbook"
        f" again; if it took writes, treat it as two writable servers (runbooks/failover.md)."
    )


_CHECKPOINT = re.compile(r"rmgr: XLOG .* desc: CHECKPOINT_SHUTDOWN .*?; xid (\d+:\d+);")


def writes_after_recovery(first_record: str, next_xid_now: str) -> str:
    """Why a server cannot be proven to have written nothing since it left recovery on its
    own; empty when it is proven.

    ``first_record`` is ``pg_waldump --limit=1``'s line for the record at the end of the WAL
    the server replayed as a standby (the mark's ``replay_lsn``): after crash recovery the
    first thing a server writes is its end-of-recovery checkpoint, which records the next
    transaction id. ``next_xid_now`` is the stopped server's ``Latest checkpoint's NextXID``
    (``pg_controldata``). Every write of data (rows, DDL, ``nextval``) takes a transaction id,
    so an unchanged next id means none was made; what writes WAL without one (checkpoints,
    hint bits, pruning) changes no data."""
    match = _CHECKPOINT.search(first_record)
    if match is None:
        found = first_record.strip()[:200]
        return f"the first record after its replay is not its end-of-recovery checkpoint: {found}"
    if match.group(1) != next_xid_now:
        return (
            f"it assigned transaction ids since it left recovery (next id {match.group(1)} then,"
            f" {next_xid_now} now): it took writes"
        )
    return ""
