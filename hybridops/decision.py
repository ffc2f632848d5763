"""Choosing the failover target: pure and deterministic, so a replay decides the same.

For now a simple rule (a later issue brings the policy engine): among healthy standbys,
the one with the least replication lag, in bytes then seconds; ties go to the name.
"""

from __future__ import annotations

from datetime import datetime

from hybridops.errors import PreconditionFailed
from hybridops.lsn import parse_lsn
from hybridops.models import Candidate, Decision, SiteRef, SiteState, TargetChoice


def decide(
    sites: list[SiteRef],
    states: list[SiteState],
    old_primary: str,
    choice: TargetChoice,
    now: datetime,
) -> Decision:
    """The target to fail over to, with the rationale and every candidate's verdict."""
    by_name = {s.site: s for s in states}
    # Lag is measured against the most advanced position anyone knows of: the old primary's
    # if it still answers, else the furthest WAL any standby received.
    positions = [parse_lsn(s.current_lsn) for s in states] + [parse_lsn(s.receive_lsn) for s in states]
    reference = max((p for p in positions if p is not None), default=0)
    candidates: list[Candidate] = []
    for site in sites:
        if site.name == old_primary or site.cloud is None:
            continue
        st = by_name.get(site.name)
        cand = Candidate(site=site.name, cloud=site.cloud, eligible=False)
        if st is None or not st.reachable:
            cand.rejected_because = "unreachable" + (f": {st.error}" if st and st.error else "")
        elif not st.in_recovery:
            cand.rejected_because = "not a standby (already a primary)"
        elif st.fenced:
            cand.rejected_because = "fenced"
        elif choice != TargetChoice.AUTO and site.name != choice.value:
            cand.rejected_because = f"not the requested target {choice.value}"
        else:
            cand.eligible = True
        if st is not None and st.replay_lsn:
            replay = parse_lsn(st.replay_lsn) or 0
            cand.lag_bytes = max(reference - replay, 0)
            received = parse_lsn(st.receive_lsn) or replay
            if received <= replay:
                cand.lag_seconds = 0.0
            elif st.last_replay_at is not None:
                cand.lag_seconds = round(max((now - st.last_replay_at).total_seconds(), 0.0), 3)
        candidates.append(cand)
    eligible = [c for c in candidates if c.eligible]
    if not eligible:
        why = "; ".join(f"{c.site}: {c.rejected_because}" for c in candidates) or "no cloud sites"
        raise PreconditionFailed(f"no eligible failover target ({why})", target=choice.value)
    best = min(
        eligible,
        key=lambda c: (
            c.lag_bytes if c.lag_bytes is not None else 2**63,
            c.lag_seconds if c.lag_seconds is not None else 1e18,
            c.site,
        ),
    )
    rationale = [
        f"old primary {old_primary} (where {'DNS'} points)",
        f"requested target: {choice.value}",
        f"chose {best.site} ({best.cloud.value}): lag {best.lag_bytes} bytes, {best.lag_seconds} s",
    ]
    rationale += [f"{c.site} rejected: {c.rejected_because}" for c in candidates if not c.eligible]
    rationale += [f"{c.site} eligible, lag {c.lag_bytes} bytes" for c in eligible if c is not best]
    return Decision(
        target=best.site,
        cloud=best.cloud,
        old_primary=old_primary,
        rationale=rationale,
        candidates=candidates,
    )
