"""The policy engine: a decision from a snapshot of signals and a policy. Pure: no I/O, no
clock, no randomness, so a replay (and an auditor) gets the same decision from the same data.

For each candidate it works out which DR mode the policy allows (warm promotion of a fresh
standby within the RPO objective, else a restore from backup if that meets the objectives, else
deny), records every constraint it failed with the numbers, scores the candidates of the best
mode on the weighted criteria, and ranks them by the policy's strategy and tie-break.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime

from hybridops.contracts.base import Cloud, TargetChoice
from hybridops.contracts.decision import (
    Candidate,
    CandidateSignals,
    Decision,
    DecisionRequest,
    DecisionType,
    DrMode,
    Signal,
    SignalName,
    SignalsInput,
    SignalSnapshot,
    SignalsResult,
    TargetCloud,
    Violation,
)
from hybridops.contracts.sites import PlanResult, SiteRef, SiteState, Topology
from hybridops.inventory import Inventory
from hybridops.lsn import parse_lsn
from hybridops.policy import BudgetMode, Policy, Strategy
from hybridops.topology import establish

S = SignalName

# The database signals warm promotion cannot do without.
WARM_REQUIRED = (S.STANDBY_UP, S.LAG_SECONDS)

# Weighted criteria: the policy's weight name, the signal, and whether higher is better.
CRITERIA: tuple[tuple[str, SignalName, bool], ...] = (
    ("latency", S.LATENCY_MS, False),
    ("error_rate", S.ERROR_RATE, False),
    ("cost", S.HOURLY_COST, False),
    ("replication_lag", S.LAG_BYTES, False),
    ("slo", S.SLO_SCORE, True),
)


# --------------------------------------------------------------------------- database signals


def signals_from_states(
    sites: list[SiteRef], states: list[SiteState], now: datetime
) -> list[CandidateSignals]:
    """The database's own view as signals (``source="postgres"``): standby up, and lag in
    bytes (against the furthest position anyone knows of: the old primary's if it answers,
    else the furthest WAL any standby received) and in seconds."""
    by_name = {s.site: s for s in states}
    positions = [parse_lsn(s.current_lsn) for s in states] + [parse_lsn(s.receive_lsn) for s in states]
    reference = max((p for p in positions if p is not None), default=0)
    out = []
    for site in sites:
        st = by_name.get(site.name)
        cand = CandidateSignals(site=site.name, cloud=site.cloud)
        out.append(cand)
        if st is None:
            continue

        def put(name: SignalName, value: float, cand: CandidateSignals = cand) -> None:
            cand.values[name] = Signal(value=value, source="postgres", observed_at=now)

        if not st.reachable:
            cand.notes.append("unreachable" + (f": {st.error}" if st.error else ""))
            put(S.STANDBY_UP, 0)
            continue
        if not st.in_recovery:
            cand.notes.append("not a standby (a primary)")
        if st.fenced:
            cand.notes.append("fenced")
        put(S.STANDBY_UP, 1 if st.in_recovery and not st.fenced else 0)
        if st.replay_lsn:
            replay = parse_lsn(st.replay_lsn) or 0
            put(S.LAG_BYTES, max(reference - replay, 0))
            received = parse_lsn(st.receive_lsn) or replay
            if received <= replay:
                put(S.LAG_SECONDS, 0.0)
            elif st.last_replay_at is not None:
                put(S.LAG_SECONDS, round(max((now - st.last_replay_at).total_seconds(), 0.0), 3))
    return out


def merge_signals(first: list[CandidateSignals], then: SignalSnapshot) -> SignalSnapshot:
    """``then`` with ``first``'s values and notes taking precedence, site by site."""
    by_site = {c.site: c for c in first}
    merged = []
    for cand in then.candidates:
        own = by_site.pop(cand.site, None)
        if own is None:
            merged.append(cand)
            continue
        values = {**cand.values, **own.values}
        merged.append(
            cand.model_copy(
                update={
                    "values": {k: values[k] for k in SignalName if k in values},
                    "notes": own.notes + cand.notes,
                }
            )
        )
    merged += by_site.values()
    return then.model_copy(update={"candidates": merged})


# --------------------------------------------------------------------------- the engine


def _fmt(x: float) -> str:
    return f"{x:g}"


class _Verdict:
    """Working state for one candidate."""

    def __init__(self, cs: CandidateSignals, policy: Policy, taken_at: datetime) -> None:
        self.cs = cs
        self.values: dict[SignalName, float] = {}
        self.missing: list[str] = []
        self.common: list[Violation] = []
        """Violations whatever the mode (budget, capacity, error rate, the requested target)."""
        self.warm: list[Violation] = []
        """Why warm promotion is not possible."""
        self.warnings: list[str] = []
        self.mode = DrMode.DENY
        max_age = policy.constraints.max_signal_age_s
        for name, sig in cs.values.items():
            if not math.isfinite(sig.value):
                self.missing.append(f"{name.value} is not a number ({sig.source})")
                continue
            if sig.observed_at is not None:
                age = (taken_at - sig.observed_at).total_seconds()
                if age > max_age:
                    self.missing.append(
                        f"{name.value} stale: observed {_fmt(round(age, 1))} s ago > {_fmt(max_age)} s"
                    )
                    continue
            self.values[name] = sig.value

    def get(self, name: SignalName) -> float | None:
        return self.values.get(name)


def _tie_rank(policy: Policy, cs: CandidateSignals) -> int:
    names = [cs.site] + ([cs.cloud.value] if cs.cloud else [])
    ranks = [policy.tie_break.index(n) for n in names if n in policy.tie_break]
    return min(ranks, default=len(policy.tie_break))


def is_candidate(req: DecisionRequest, site: str, cloud: Cloud | None) -> bool:
    """Whether a site is considered at all: never the one serving now; for a failback only
    on-prem sites, else only cloud sites."""
    if site == req.current_primary:
        return False
    if req.decision_type == DecisionType.FAILBACK:
        return cloud is None
    return cloud is not None


def signal_targets(req: DecisionRequest, sites: list[SiteRef]) -> SignalsInput:
    """What to gather signals for: the candidates (the database's own view of the rest comes
    from the assess step)."""
    return SignalsInput(sites=[s for s in sites if is_candidate(req, s.name, s.cloud)])


def _check_own_view(v: _Verdict, req: DecisionRequest, policy: Policy) -> None:
    """Detection declared the primary dead and the run found it down: a candidate is chosen
    only if its own agent agrees (the issue's quorum of observers, the target among them). One
    whose agent saw the primary take a write within the blip tolerance is on the primary's
    side of a partition the run's own reads are not. No view (no monitoring, the agent's
    series gone) is not checked."""
    silent, tolerance = v.get(S.PRIMARY_SILENT_S), policy.detection.blip_tolerance_s
    if silent is not None and silent <= tolerance:
        v.common.append(
            Violation(
                constraint="detection.blip_tolerance_s",
                detail=f"{v.cs.site}'s own agent saw {req.current_primary} take a write "
                f"{_fmt(round(silent, 3))} s ago (within {_fmt(tolerance)} s): it does not agree "
                "the primary is down",
            )
        )


def _check_common(v: _Verdict, req: DecisionRequest, policy: Policy) -> None:
    c, cs = policy.constraints, v.cs
    if req.target != TargetChoice.AUTO and req.target not in (cs.site, cs.cloud.value if cs.cloud else None):
        v.common.append(Violation(constraint="target", detail=f"not the requested target {req.target}"))
    budget = policy.budget.mode
    if budget != BudgetMode.OFF:
        checks = (
            (S.CREDITS, c.min_credits, "constraints.min_credits", lambda x, lim: x < lim, "<"),
            (S.HOURLY_COST, c.max_hourly_cost, "constraints.max_hourly_cost", lambda x, lim: x > lim, ">"),
        )
        for name, limit, key, fails, op in checks:
            if limit is None:
                continue
            value = v.get(name)
            if value is None:
                v.warnings.append(f"{name.value} unknown: budget not checked ({key} {_fmt(limit)})")
            elif fails(value, limit):
                detail = f"{name.value} {_fmt(value)} {op} {_fmt(limit)}"
                if budget == BudgetMode.ENFORCE:
                    v.common.append(Violation(constraint=key, detail=detail))
                else:
                    v.warnings.append(f"budget gate (warn): {detail}")
    if c.min_capacity is not None:
        cap = v.get(S.CAPACITY)
        if cap is None:
            v.warnings.append("capacity unknown: not checked")
        elif cap < c.min_capacity:
            v.common.append(
                Violation(
                    constraint="constraints.min_capacity",
                    detail=f"capacity {_fmt(cap)} < {_fmt(c.min_capacity)}",
                )
            )
    if c.max_error_rate is not None:
        err = v.get(S.ERROR_RATE)
        if err is not None and err > c.max_error_rate:
            v.common.append(
                Violation(
                    constraint="constraints.max_error_rate",
                    detail=f"error_rate {_fmt(err)} > {_fmt(c.max_error_rate)}",
                )
            )


def _check_warm(v: _Verdict, policy: Policy) -> None:
    c, est = policy.constraints, policy.estimates
    absent = [n.value for n in WARM_REQUIRED if n not in v.values]
    if absent:
        why = [m for m in v.missing if m.split(" ")[0] in absent]
        why += [f"{n} missing" for n in absent if not any(m.startswith(n + " ") for m in v.missing)]
        v.warm.append(Violation(constraint="signals", detail="; ".join(why)))
    if v.get(S.STANDBY_UP) == 0:
        notes = ", ".join(v.cs.notes) or "standby_up=0"
        v.warm.append(Violation(constraint="standby", detail=f"not a streaming standby ({notes})"))
    lag = v.get(S.LAG_SECONDS)
    if lag is not None and lag > c.rpo_max_s:
        v.warm.append(
            Violation(constraint="constraints.rpo_max_s", detail=f"lag {_fmt(lag)} s > {_fmt(c.rpo_max_s)} s")
        )
    if est.warm_promote_rto_s > c.rto_max_s:
        v.warm.append(
            Violation(
                constraint="constraints.rto_max_s",
                detail=f"warm promotion RTO {_fmt(est.warm_promote_rto_s)} s > {_fmt(c.rto_max_s)} s",
            )
        )


def _restore_violations(policy: Policy) -> list[Violation]:
    c, est = policy.constraints, policy.estimates
    out = []
    if est.restore_rto_s > c.rto_max_s:
        out.append(
            Violation(
                constraint="constraints.rto_max_s",
                detail=f"restore RTO {_fmt(est.restore_rto_s)} s > {_fmt(c.rto_max_s)} s",
            )
        )
    if est.restore_rpo_s > c.rpo_max_s:
        out.append(
            Violation(
                constraint="constraints.rpo_max_s",
                detail=f"restore RPO {_fmt(est.restore_rpo_s)} s > {_fmt(c.rpo_max_s)} s",
            )
        )
    return out


def _scores(pool: list[_Verdict], policy: Policy, burst: bool) -> dict[str, tuple[float, dict[str, float]]]:
    weights = policy.weights.model_dump()
    out: dict[str, tuple[float, dict[str, float]]] = {v.cs.site: (0.0, {}) for v in pool}
    # A criterion no candidate has a value for cannot tell them apart: it is left out. One that
    # some lack counts as the worst (0) for those, and the warning says so.
    used = [
        (w, s, hi)
        for w, s, hi in CRITERIA
        if weights[w] > 0 and not (burst and w == "replication_lag") and any(s in v.values for v in pool)
    ]
    total = sum(weights[w] for w, _, _ in used)
    if not used or total <= 0:
        return out
    for v in pool:
        comps: dict[str, float] = {}
        for w, sig, higher_better in used:
            present = [x.values[sig] for x in pool if sig in x.values]
            value = v.get(sig)
            if value is None:
                comps[w] = 0.0
                v.warnings.append(f"{sig.value} unknown: scores 0 on {w}")
            elif max(present) == min(present):
                comps[w] = 1.0
            elif higher_better:
                comps[w] = (value - min(present)) / (max(present) - min(present))
            else:
                comps[w] = (max(present) - value) / (max(present) - min(present))
            comps[w] = round(comps[w], 6)
        score = round(sum(weights[w] * comps[w] for w, _, _ in used) / total, 6)
        out[v.cs.site] = (score, comps)
    return out


def _rank_key(policy: Policy, score: float, v: _Verdict) -> tuple[float, float, int, str]:
    first = {
        Strategy.BALANCED: 0.0,
        Strategy.COST: v.get(S.HOURLY_COST) if v.get(S.HOURLY_COST) is not None else math.inf,
        Strategy.LATENCY: v.get(S.LATENCY_MS) if v.get(S.LATENCY_MS) is not None else math.inf,
    }[policy.strategy]
    return (float(first or 0.0), -score, _tie_rank(policy, v.cs), v.cs.site)


SAFETY_NOT_DECIDED = {"agent_start_timeout_s", "agent_restart_timeout_s"}
"""How long a step waits for an agent: how the run executes, not what it decides on."""


def decision_id(req: DecisionRequest, snapshot: SignalSnapshot, policy: Policy) -> str:
    """A digest of everything the decision rests on."""
    canon = json.dumps(
        {
            "request": req.model_dump(mode="json"),
            "snapshot": snapshot.model_dump(mode="json"),
            # How long an agent may take to answer is how the run executes, and how the agents
            # detect a dead primary is what started it: neither is what it decides on (and
            # policies before them digest as they did).
            "policy": policy.model_dump(
                mode="json",
                exclude={**policy.later_defaults(), "safety": SAFETY_NOT_DECIDED, "detection": True},
            ),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return "dec-" + hashlib.sha256(canon.encode()).hexdigest()[:16]


def hold_reason(req: DecisionRequest, candidates: list[Candidate]) -> str:
    """Why a decision holds, in the words an operator needs: a requested target that already
    is the primary is said as such (not as every other site being "not the requested target")."""
    if req.target != TargetChoice.AUTO and req.target == req.current_primary:
        return f"the requested target {req.target} is already the primary: nothing to move"
    why = "; ".join(f"{c.site}: {c.rejected_because}" for c in candidates) or "no candidates"
    return f"no eligible target ({why})"


def evaluate(
    req: DecisionRequest,
    snapshot: SignalSnapshot,
    policy: Policy,
    primary_down: bool = False,
    hosts_down: frozenset[str] = frozenset(),
    primary_up: bool = False,
) -> Decision:
    """Decide. Never raises for data: a request no candidate can serve gives a ``hold``.
    ``primary_down``: the run's own reads found the primary unreachable; each candidate's own
    view of it must then agree (:func:`_check_own_view`). ``hosts_down``: candidates whose
    site agent took no step (their host is down): nothing can be promoted or restored there.
    ``primary_up``: the run's own reads found the current primary writable: no restore then
    (it would discard the writes the primary keeps taking since the backup); a failover waits
    for a standby fit to promote instead."""
    burst = req.decision_type == DecisionType.BURST
    verdicts = [
        _Verdict(cs, policy, snapshot.taken_at)
        for cs in snapshot.candidates
        if is_candidate(req, cs.site, cs.cloud)
    ]
    restore_blocked = _restore_violations(policy)
    if primary_up and not burst:
        restore_blocked.append(
            Violation(
                constraint="primary",
                detail=f"{req.current_primary} is up and writable: no restore over a live primary",
            )
        )
    for v in verdicts:
        _check_common(v, req, policy)
        if v.cs.site in hosts_down:
            v.common.append(
                Violation(
                    constraint="host",
                    detail=f"{v.cs.site}'s site agent took no step: its host is down, nothing can run there",
                )
            )
        if primary_down and not burst:
            _check_own_view(v, req, policy)
        if v.common:
            continue
        if burst:
            v.mode = DrMode.SCALE_OUT
            continue
        _check_warm(v, policy)
        if not v.warm:
            v.mode = DrMode.WARM_PROMOTE
        elif not restore_blocked:
            v.mode = DrMode.RESTORE

    modes = {v.mode for v in verdicts}
    best_mode = next(
        (m for m in (DrMode.SCALE_OUT, DrMode.WARM_PROMOTE, DrMode.RESTORE) if m in modes), DrMode.DENY
    )
    pool = [v for v in verdicts if v.mode == best_mode] if best_mode != DrMode.DENY else []
    scores = _scores(pool, policy, burst)
    ranked = sorted(pool, key=lambda v: _rank_key(policy, scores[v.cs.site][0], v))
    chosen = ranked[0] if ranked else None

    candidates = []
    for v in verdicts:
        violations = list(v.common)
        if not v.common and best_mode != DrMode.SCALE_OUT and v.mode != DrMode.WARM_PROMOTE:
            violations += v.warm + (restore_blocked if v.mode == DrMode.DENY else [])
        eligible = v in pool
        rejected = ""
        if not eligible:
            rejected = (
                "; ".join(f"{x.constraint}: {x.detail}" for x in violations)
                if violations
                else f"{v.mode.value} only, and a candidate for {best_mode.value} exists"
            )
        lag_b, lag_s = v.get(S.LAG_BYTES), v.get(S.LAG_SECONDS)
        said = " ".join(x.detail for x in violations)
        score, comps = scores.get(v.cs.site, (None, {}))
        candidates.append(
            Candidate(
                site=v.cs.site,
                cloud=v.cs.cloud,
                eligible=eligible,
                mode=v.mode,
                score=score,
                components=comps,
                lag_bytes=int(lag_b) if lag_b is not None else None,
                lag_seconds=lag_s,
                violations=violations,
                warnings=v.warnings + [m for m in v.missing if m not in said],
                rejected_because=rejected,
            )
        )

    rationale = [
        f"{req.decision_type.value} requested; current primary {req.current_primary}; target {req.target}",
        f"policy: strategy {policy.strategy.value}, RTO max {_fmt(policy.constraints.rto_max_s)} s, "
        f"RPO max {_fmt(policy.constraints.rpo_max_s)} s, budget {policy.budget.mode.value}",
    ]
    rationale += [f"signals: {e}" for e in snapshot.errors]
    for c in candidates:
        if c.eligible:
            line = f"{c.site}: eligible for {c.mode.value}, score {c.score:g}"
            if c.lag_bytes is not None or c.lag_seconds is not None:
                line += f", lag {c.lag_bytes} bytes / {c.lag_seconds} s"
            rationale.append(line)
        else:
            rationale.append(f"{c.site}: rejected: {c.rejected_because}")
        rationale += [f"{c.site}: warning: {w}" for w in c.warnings]

    if chosen is None:
        primary_asked = req.target != TargetChoice.AUTO and req.target == req.current_primary
        why = hold_reason(req, candidates) if primary_asked else "no candidate passes the policy"
        rationale.append(f"hold: {why}")
        return Decision(
            decision_id=decision_id(req, snapshot, policy),
            decision_type=DecisionType.HOLD,
            target=None,
            target_cloud=TargetCloud.NONE,
            dr_mode=DrMode.DENY,
            requires_approval=False,
            old_primary=req.current_primary,
            strategy=policy.strategy.value,
            rationale=rationale,
            candidates=candidates,
        )

    approval = policy.approval
    needs: list[str] = []
    if getattr(approval, req.decision_type.value, False):
        needs.append(f"policy approval.{req.decision_type.value}")
    if best_mode == DrMode.RESTORE and approval.restore:
        needs.append("policy approval.restore")
    if any(w.startswith(("budget gate", "credits unknown", "hourly_cost unknown")) for w in chosen.warnings):
        needs.append("budget warnings")
    order = {
        Strategy.BALANCED: "highest score",
        Strategy.COST: "lowest hourly cost, then score",
        Strategy.LATENCY: "lowest latency, then score",
    }[policy.strategy]
    rationale.append(
        f"chose {chosen.cs.site} for {best_mode.value}: {order}, then tie-break {policy.tie_break}"
    )
    if needs:
        rationale.append("requires approval: " + ", ".join(needs))
    cloud = chosen.cs.cloud
    return Decision(
        decision_id=decision_id(req, snapshot, policy),
        decision_type=req.decision_type,
        target=chosen.cs.site,
        target_cloud=TargetCloud(cloud.value) if cloud else TargetCloud.NONE,
        dr_mode=best_mode,
        requires_approval=bool(needs),
        old_primary=req.current_primary,
        strategy=policy.strategy.value,
        rationale=rationale,
        candidates=candidates,
    )


# --------------------------------------------------------------------------- the decide phase


def plan_of(inventory: Inventory, dns_value: str | None, policy: Policy) -> PlanResult:
    """What the plan step answers: the inventory's sites, where DNS points (``dns_value``, as
    read), how steps are placed, and the policy in force. Pure: the step and ``hybridops
    decide`` read DNS and the policy, then call this."""
    site = inventory.site_by_host(dns_value) if dns_value else None
    return PlanResult(
        sites=[SiteRef(name=n, cloud=s.cloud) for n, s in inventory.sites.items()],
        dns_record=inventory.dns.record,
        dns_site=site or "",
        dns_value=dns_value,
        placement=inventory.placement.value,
        queue_suffix=inventory.task_queue_suffix,
        policy=policy,
        apps=list(inventory.apps),
        workloads=list(inventory.workloads),
        apps_via=inventory.app_database.via.value,
    )


def topology_of(plan: PlanResult, states: list[SiteState]) -> Topology:
    """The topology a decide phase rests on: the servers as the assess step found them, and
    DNS as the plan step read it (one reading of each)."""
    return establish(states, plan.dns_record, plan.dns_value, plan.dns_site or None)


def policy_in_force(plan: PlanResult, gathered: SignalsResult) -> Policy:
    """The one policy a failover decides and acts on: the plan's, read at its first step.
    ``gather_signals`` reads it too (a burst has no other); its copy counts only in histories
    whose plan recorded none."""
    return plan.policy if plan.policy is not None else gathered.policy


def decide(
    request: DecisionRequest,
    plan: PlanResult,
    states: list[SiteState],
    gathered: SignalsResult,
    detected: bool = False,
    hosts_down: frozenset[str] = frozenset(),
    live_primary_blocks_restore: bool = False,
) -> tuple[Decision, SignalSnapshot]:
    """The decide phase, as the failover workflow and ``hybridops decide`` both run it, on the
    results of the same read-only steps (plan, assess, gather_signals): the database's own view
    of each site wins over what monitoring says of it; then the engine, on the policy in force.
    ``detected``: the run was started by detection (an alert), not by a person; a primary the
    run finds down then also needs each candidate's own view to agree. ``hosts_down``: see
    :func:`evaluate` (a restore-mode failover probes its candidates' agents).
    ``live_primary_blocks_restore``: a primary the run finds writable rules out restore mode
    (the failover's patch ``failover-no-restore-over-live-primary``; off in runs before it)."""
    snapshot = merge_signals(
        signals_from_states(plan.sites, states, gathered.snapshot.taken_at), gathered.snapshot
    )
    down = detected and not any(s.site == request.current_primary and s.reachable for s in states)
    policy = policy_in_force(plan, gathered)
    up = live_primary_blocks_restore and any(
        s.site == request.current_primary and s.reachable and not s.in_recovery and not s.fenced
        for s in states
    )
    return evaluate(
        request, snapshot, policy, primary_down=down, hosts_down=hosts_down, primary_up=up
    ), snapshot


CANDIDATE_COLUMNS = ("candidate", "mode", "eligible", "score", "lag bytes", "lag s", "why not / warnings")


def candidate_rows(decision: Decision) -> list[tuple[str, ...]]:
    """The candidates as table rows (``CANDIDATE_COLUMNS``): one shape for the CLI and the report."""
    rows: list[tuple[str, ...]] = []
    for c in decision.candidates:
        mark = " (chosen)" if c.site == decision.target else ""
        rows.append(
            (
                f"{c.site}{mark}",
                c.mode.value,
                "yes" if c.eligible else "no",
                "-" if c.score is None else f"{c.score:.3f}",
                "-" if c.lag_bytes is None else str(c.lag_bytes),
                "-" if c.lag_seconds is None else f"{c.lag_seconds:g}",
                "; ".join(([c.rejected_because] if c.rejected_because else []) + c.warnings) or "-",
            )
        )
    return rows


def signal_rows(snapshot: SignalSnapshot) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """The snapshot as a table: a column per signal any site has, ``value (source)`` cells."""
    names = [n for n in SignalName if any(n in c.values for c in snapshot.candidates)]
    rows = []
    for c in snapshot.candidates:
        cells = [f"{c.values[n].value:g} ({c.values[n].source})" if n in c.values else "-" for n in names]
        rows.append((c.site, *cells))
    return ("site", *[n.value for n in names]), rows
