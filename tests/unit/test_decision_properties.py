"""Properties of the policy engine over generated snapshots and policies (hypothesis):
the chosen target never violates a hard constraint, and the same inputs give the same
decision, whatever order the candidates come in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hybridops.contracts.base import Cloud
from hybridops.contracts.decision import (
    CandidateSignals,
    DecisionRequest,
    DecisionType,
    DrMode,
    Signal,
    SignalName,
    SignalSnapshot,
)
from hybridops.decision import evaluate
from hybridops.policy import BudgetMode, Policy, parse_policy

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
S = SignalName
SITES = [("onprem", None), ("azure", Cloud.AZURE), ("gcp", Cloud.GCP), ("aws-like", Cloud.AZURE)]

RANGES: dict[SignalName, st.SearchStrategy[float]] = {
    S.STANDBY_UP: st.sampled_from([0.0, 1.0, 1.0, 1.0]),
    S.LAG_BYTES: st.integers(0, 10**9).map(float),
    S.LAG_SECONDS: st.one_of(st.floats(0, 5, allow_nan=False), st.floats(0, 1000, allow_nan=False)),
    S.LATENCY_MS: st.floats(0, 500, allow_nan=False),
    S.ERROR_RATE: st.floats(0, 1, allow_nan=False),
    S.CAPACITY: st.integers(0, 10).map(float),
    S.CREDITS: st.floats(0, 1000, allow_nan=False),
    S.HOURLY_COST: st.floats(0, 100, allow_nan=False),
    S.SLO_SCORE: st.floats(0, 1, allow_nan=False),
    S.LOAD: st.floats(0, 1, allow_nan=False),
    S.PRIMARY_SILENT_S: st.floats(0, 10, allow_nan=False),
}


@st.composite
def signal(draw: st.DrawFn, name: SignalName) -> Signal:
    age = draw(st.one_of(st.none(), st.floats(0, 30, allow_nan=False), st.floats(0, 400, allow_nan=False)))
    return Signal(
        value=draw(RANGES[name]),
        source="gen",
        observed_at=None if age is None else NOW - timedelta(seconds=age),
    )


@st.composite
def candidate(draw: st.DrawFn, site: str, cloud: Cloud | None) -> CandidateSignals:
    # Most signals present, some missing: the interesting cases are near the constraints.
    missing = draw(st.sets(st.sampled_from(list(S)), max_size=3))
    return CandidateSignals(
        site=site, cloud=cloud, values={n: draw(signal(n)) for n in S if n not in missing}
    )


@st.composite
def snapshot(draw: st.DrawFn) -> SignalSnapshot:
    chosen = draw(st.lists(st.sampled_from(SITES), min_size=1, max_size=4, unique=True))
    return SignalSnapshot(taken_at=NOW, candidates=[draw(candidate(s, c)) for s, c in chosen])


@st.composite
def policy(draw: st.DrawFn) -> Policy:
    opt = st.one_of(st.none(), st.floats(0, 1, allow_nan=False))
    data: dict[str, Any] = {
        "constraints": {
            "rto_max_s": draw(st.floats(1, 3000, allow_nan=False)),
            "rpo_max_s": draw(st.floats(0, 600, allow_nan=False)),
            "min_credits": draw(st.one_of(st.none(), st.floats(0, 1000, allow_nan=False))),
            "max_hourly_cost": draw(st.one_of(st.none(), st.floats(0, 100, allow_nan=False))),
            "min_capacity": draw(st.one_of(st.none(), st.integers(0, 5).map(float))),
            "max_error_rate": draw(opt),
            "max_signal_age_s": draw(st.floats(1, 300, allow_nan=False)),
        },
        "budget": {"mode": draw(st.sampled_from([m.value for m in BudgetMode]))},
        "strategy": draw(st.sampled_from(["balanced", "cost", "latency"])),
        "tie_break": draw(st.permutations(["azure", "gcp"])),
        "estimates": {
            "warm_promote_rto_s": draw(st.floats(0, 2000, allow_nan=False)),
            "restore_rto_s": draw(st.floats(0, 4000, allow_nan=False)),
            "restore_rpo_s": draw(st.floats(0, 600, allow_nan=False)),
        },
    }
    weights = draw(
        st.lists(st.floats(0, 1, allow_nan=False), min_size=5, max_size=5).filter(lambda w: sum(w) > 0)
    )
    data["weights"] = dict(
        zip(["latency", "error_rate", "cost", "replication_lag", "slo"], weights, strict=True)
    )
    return parse_policy(data)


def fresh(c: CandidateSignals, name: SignalName, p: Policy) -> float | None:
    sig = c.values.get(name)
    if sig is None:
        return None
    if (
        sig.observed_at is not None
        and (NOW - sig.observed_at).total_seconds() > p.constraints.max_signal_age_s
    ):
        return None
    return sig.value


REQUEST = st.builds(
    DecisionRequest,
    decision_type=st.sampled_from([DecisionType.FAILOVER, DecisionType.BURST, DecisionType.FAILBACK]),
    current_primary=st.sampled_from([s for s, _ in SITES]),
    target=st.sampled_from(["auto", "azure", "gcp"]),
)


@settings(max_examples=400, deadline=None)
@given(snap=snapshot(), pol=policy(), req=REQUEST, down=st.booleans())
def test_the_chosen_target_never_violates_a_hard_constraint(
    snap: SignalSnapshot, pol: Policy, req: DecisionRequest, down: bool
) -> None:
    d = evaluate(req, snap, pol, primary_down=down)
    if d.target is None:
        assert d.decision_type == DecisionType.HOLD and d.dr_mode == DrMode.DENY
        assert not any(c.eligible for c in d.candidates)
        return
    chosen = next(c for c in snap.candidates if c.site == d.target)
    c = pol.constraints
    assert d.target != req.current_primary
    assert (chosen.cloud is None) == (req.decision_type == DecisionType.FAILBACK)
    if req.target != "auto":
        assert req.target in (chosen.site, chosen.cloud.value if chosen.cloud else None)
    if pol.budget.mode == BudgetMode.ENFORCE:
        credits, cost = fresh(chosen, S.CREDITS, pol), fresh(chosen, S.HOURLY_COST, pol)
        assert c.min_credits is None or credits is None or credits >= c.min_credits
        assert c.max_hourly_cost is None or cost is None or cost <= c.max_hourly_cost
    silent = fresh(chosen, S.PRIMARY_SILENT_S, pol)
    if down and req.decision_type != DecisionType.BURST:  # the target's own view agrees
        assert silent is None or silent > pol.detection.blip_tolerance_s
    cap, err = fresh(chosen, S.CAPACITY, pol), fresh(chosen, S.ERROR_RATE, pol)
    assert c.min_capacity is None or cap is None or cap >= c.min_capacity
    assert c.max_error_rate is None or err is None or err <= c.max_error_rate
    if d.dr_mode == DrMode.WARM_PROMOTE:
        lag = fresh(chosen, S.LAG_SECONDS, pol)
        assert fresh(chosen, S.STANDBY_UP, pol) == 1
        assert lag is not None and lag <= c.rpo_max_s
        assert pol.estimates.warm_promote_rto_s <= c.rto_max_s
    elif d.dr_mode == DrMode.RESTORE:
        assert pol.estimates.restore_rto_s <= c.rto_max_s and pol.estimates.restore_rpo_s <= c.rpo_max_s
        assert d.requires_approval == pol.approval.restore or d.requires_approval
    else:
        assert d.dr_mode == DrMode.SCALE_OUT and req.decision_type == DecisionType.BURST
    assert next(x for x in d.candidates if x.site == d.target).eligible


@settings(max_examples=200, deadline=None)
@given(snap=snapshot(), pol=policy(), req=REQUEST, data=st.data())
def test_same_inputs_same_decision_in_any_order(
    snap: SignalSnapshot, pol: Policy, req: DecisionRequest, data: st.DataObject
) -> None:
    first = evaluate(req, snap, pol)
    assert evaluate(req, snap.model_copy(deep=True), pol) == first
    shuffled = snap.model_copy(update={"candidates": data.draw(st.permutations(snap.candidates))})
    again = evaluate(req, shuffled, pol)
    assert (again.target, again.dr_mode, again.requires_approval) == (
        first.target,
        first.dr_mode,
        first.requires_approval,
    )
    assert {c.site: c.score for c in again.candidates} == {c.site: c.score for c in first.candidates}
