"""The policy engine over a table of signal snapshots: each constraint, each strategy, ties,
missing and stale signals, the budget gate's modes; and the database signals it is fed."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hybridops.contracts.base import Cloud
from hybridops.contracts.decision import (
    CandidateSignals,
    DecisionRequest,
    DecisionType,
    DrMode,
    Signal,
    SignalName,
    SignalSnapshot,
    TargetCloud,
)
from hybridops.contracts.sites import SiteRef, SiteState
from hybridops.decision import evaluate, hold_reason, merge_signals, signals_from_states
from hybridops.errors import ConfigError
from hybridops.lsn import parse_lsn
from hybridops.policy import Policy, load_policy, parse_policy

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
S = SignalName
CLOUDS = {"onprem": None, "azure": Cloud.AZURE, "gcp": Cloud.GCP}


def cand(site: str, age_s: float = 1.0, **values: float) -> CandidateSignals:
    """A candidate with fresh (``age_s`` old) values; a standby, caught up, by default."""
    base: dict[str, float] = {"standby_up": 1, "lag_seconds": 0, "lag_bytes": 0}
    base.update(values)
    return CandidateSignals(
        site=site,
        cloud=CLOUDS[site],
        values={
            S(k): Signal(value=v, source="test", observed_at=NOW - timedelta(seconds=age_s))
            for k, v in base.items()
        },
    )


def snap(*cands: CandidateSignals, errors: list[str] | None = None) -> SignalSnapshot:
    return SignalSnapshot(
        taken_at=NOW, candidates=[cand("onprem", standby_up=0), *cands], errors=errors or []
    )


BASE = {"min_credits": 100, "max_hourly_cost": 50, "min_capacity": 1, "max_error_rate": 0.2}


def policy(**changes: Any) -> Policy:
    """The test policy with dotted-key changes: ``policy(**{"budget.mode": "warn"})``. The
    shipped policy asks approval for every failover; this one does not, so a test sees when
    the engine itself requires it (a budget warning, credits unknown)."""
    data: dict[str, Any] = {"constraints": dict(BASE), "approval": {"failover": False}}
    for key, value in changes.items():
        *path, last = key.split(".")
        node = data
        for p in path:
            node = node.setdefault(p, {})
        node[last] = value
    return parse_policy(data)


def decide(s: SignalSnapshot, p: Policy | None = None, **req: Any) -> Any:
    return evaluate(DecisionRequest(current_primary="onprem", **req), s, p or policy())


def by_site(d: Any) -> dict[str, Any]:
    return {c.site: c for c in d.candidates}


# --------------------------------------------------------------------------- choosing


def test_least_lag_wins_on_database_signals_alone() -> None:
    d = decide(snap(cand("azure", lag_bytes=256), cand("gcp", lag_bytes=0)))
    assert (d.target, d.target_cloud, d.dr_mode) == ("gcp", TargetCloud.GCP, DrMode.WARM_PROMOTE)
    assert d.decision_type == DecisionType.FAILOVER and d.old_primary == "onprem"
    c = by_site(d)
    assert c["gcp"].score == 1.0 and c["azure"].score is not None and c["azure"].score < 1.0
    assert c["azure"].components["replication_lag"] == 0.0
    assert "onprem" not in c  # the current primary is never a candidate
    assert any(r.startswith("chose gcp for warm_promote") for r in d.rationale)


@pytest.mark.parametrize(
    ("tie_break", "expected"), [(["azure", "gcp"], "azure"), (["gcp", "azure"], "gcp"), ([], "azure")]
)
def test_exact_tie_goes_to_the_tie_break_then_the_name(tie_break: list[str], expected: str) -> None:
    s = snap(cand("gcp"), cand("azure"))
    assert decide(s, policy(tie_break=tie_break)).target == expected


def test_requested_target_is_the_only_candidate() -> None:
    d = decide(snap(cand("azure", lag_bytes=999), cand("gcp")), target="azure")
    assert d.target == "azure"
    assert by_site(d)["gcp"].violations[0].constraint == "target"


def test_balanced_score_weighs_every_criterion() -> None:
    s = snap(
        cand("azure", latency_ms=10, error_rate=0.01, hourly_cost=40, slo_score=0.99, lag_bytes=100),
        cand("gcp", latency_ms=50, error_rate=0.05, hourly_cost=20, slo_score=0.90, lag_bytes=0),
    )
    d = decide(s)
    c = by_site(d)
    # azure: latency 1, errors 1, cost 0, lag 0, slo 1 -> (0.2+0.2+0+0+0.1)/1.0 = 0.5
    # gcp:   latency 0, errors 0, cost 1, lag 1, slo 0 -> (0+0+0.2+0.3+0)/1.0 = 0.5
    assert c["azure"].score == pytest.approx(0.5) and c["gcp"].score == pytest.approx(0.5)
    assert d.target == "azure"  # the tie-break
    d = decide(s, policy(**{"weights.latency": 0.5}))
    assert d.target == "azure" and by_site(d)["azure"].score > by_site(d)["gcp"].score


def test_cost_and_latency_strategies() -> None:
    s = snap(
        cand("azure", latency_ms=10, hourly_cost=40, lag_bytes=0),
        cand("gcp", latency_ms=80, hourly_cost=10, lag_bytes=500),
    )
    assert decide(s).target == "azure"
    assert decide(s, policy(strategy="cost")).target == "gcp"
    assert decide(s, policy(strategy="latency")).target == "azure"
    # A candidate whose cost is unknown ranks after the known ones under `cost`.
    s2 = snap(cand("azure", hourly_cost=40), cand("gcp"))
    assert decide(s2, policy(strategy="cost", **{"constraints.max_hourly_cost": None})).target == "azure"


# --------------------------------------------------------------------------- constraints


def test_standby_that_is_down_or_fenced_is_rejected_with_the_reason() -> None:
    down = cand("azure", standby_up=0)
    down.notes.append("fenced")
    d = decide(snap(down, cand("gcp")))
    a = by_site(d)["azure"]
    assert d.target == "gcp" and not a.eligible
    assert any(v.constraint == "standby" and "fenced" in v.detail for v in a.violations)


def test_rpo_objective_rejects_a_lagging_standby_and_restore_too_slow_holds() -> None:
    d = decide(snap(cand("azure", lag_seconds=420), cand("gcp", lag_seconds=301)))
    assert d.decision_type == DecisionType.HOLD and d.dr_mode == DrMode.DENY and d.target is None
    a = by_site(d)["azure"]
    assert any(v.constraint == "constraints.rpo_max_s" and "420 s > 300 s" in v.detail for v in a.violations)
    assert any("restore RTO 1800 s > 900 s" in v.detail for v in a.violations)
    assert d.rationale[-1] == "hold: no candidate passes the policy"


def test_restore_mode_when_no_standby_is_fit_and_restore_meets_the_objectives() -> None:
    p = policy(**{"estimates.restore_rto_s": 600})
    d = decide(snap(cand("azure", lag_seconds=420), cand("gcp", standby_up=0)), p)
    assert d.dr_mode == DrMode.RESTORE and d.target == "azure" and d.requires_approval
    assert "policy approval.restore" in d.rationale[-1]


def test_restore_mode_skips_a_candidate_whose_host_is_down() -> None:
    """A restore runs on the target's host: a candidate whose site agent took no step (the
    failover probes them in restore mode) is not a target, so ``{}`` restores to gcp when
    azure's host died with the primary; with every candidate's host down, the policy holds."""
    p = policy(**{"estimates.restore_rto_s": 600})
    s = snap(cand("azure", standby_up=0), cand("gcp", standby_up=0))
    assert evaluate(DecisionRequest(current_primary="onprem"), s, p).target == "azure"
    d = evaluate(DecisionRequest(current_primary="onprem"), s, p, hosts_down=frozenset({"azure"}))
    assert (d.target, d.dr_mode) == ("gcp", DrMode.RESTORE)
    a = by_site(d)["azure"]
    assert not a.eligible and any(v.constraint == "host" and "host is down" in v.detail for v in a.violations)
    held = evaluate(DecisionRequest(current_primary="onprem"), s, p, hosts_down=frozenset({"azure", "gcp"}))
    assert held.target is None


def test_no_restore_over_a_live_primary() -> None:
    """A planned failover whose standbys are momentarily unfit (one reconnecting after the
    primary restarted) holds when the primary is up and writable: a restore would discard the
    writes it keeps taking. With the primary down, the same signals restore."""
    p = policy(**{"estimates.restore_rto_s": 600})
    s = snap(cand("azure", standby_up=0), cand("gcp", lag_seconds=420))
    req = DecisionRequest(current_primary="onprem")
    held = evaluate(req, s, p, primary_up=True)
    assert held.target is None and held.dr_mode == DrMode.DENY
    a = by_site(held)["azure"]
    assert any(v.constraint == "primary" and "onprem is up and writable" in v.detail for v in a.violations)
    assert evaluate(req, s, p).dr_mode == DrMode.RESTORE


def test_warm_candidates_beat_restore_candidates() -> None:
    p = policy(**{"estimates.restore_rto_s": 600})
    d = decide(snap(cand("azure", lag_seconds=420), cand("gcp", lag_seconds=1)), p)
    assert (d.target, d.dr_mode) == ("gcp", DrMode.WARM_PROMOTE)
    a = by_site(d)["azure"]
    assert a.mode == DrMode.RESTORE and not a.eligible


def test_rto_objective_below_the_warm_estimate_denies_warm_promotion() -> None:
    d = decide(snap(cand("azure")), policy(**{"constraints.rto_max_s": 30}))
    assert d.decision_type == DecisionType.HOLD
    assert any("warm promotion RTO 60 s > 30 s" in v.detail for v in by_site(d)["azure"].violations)


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        ({"capacity": 0}, "constraints.min_capacity"),
        ({"error_rate": 0.5}, "constraints.max_error_rate"),
        ({"credits": 50}, "constraints.min_credits"),
        ({"hourly_cost": 80}, "constraints.max_hourly_cost"),
    ],
)
def test_each_constraint_rejects(values: dict[str, float], constraint: str) -> None:
    d = decide(snap(cand("azure", **values), cand("gcp", lag_bytes=10_000)))
    assert d.target == "gcp"
    assert [v.constraint for v in by_site(d)["azure"].violations] == [constraint]


# --------------------------------------------------------------------------- signals


def test_missing_signals_are_not_eligible_for_warm_promotion() -> None:
    bare = CandidateSignals(site="azure", cloud=Cloud.AZURE)
    d = decide(snap(bare, cand("gcp")))
    a = by_site(d)["azure"]
    assert d.target == "gcp" and not a.eligible
    assert any(v.constraint == "signals" and "standby_up missing" in v.detail for v in a.violations)


def test_stale_signals_count_as_missing_and_the_rationale_says_so() -> None:
    d = decide(snap(cand("azure", age_s=300), cand("gcp")))
    a = by_site(d)["azure"]
    assert not a.eligible and "stale: observed 300 s ago > 120 s" in a.rejected_because
    assert any("azure: rejected" in r and "stale" in r for r in d.rationale)
    # Static values (no observation time) never go stale.
    static = cand("gcp")
    static.values[S.CREDITS] = Signal(value=500, source="static")
    assert decide(snap(static)).target == "gcp"


def test_not_a_number_is_missing() -> None:
    d = decide(snap(cand("azure", lag_seconds=math.nan), cand("gcp")))
    assert d.target == "gcp" and "lag_seconds is not a number" in by_site(d)["azure"].rejected_because


def test_source_errors_are_in_the_rationale() -> None:
    d = decide(snap(cand("azure"), errors=["prometheus: connection refused"]))
    assert "signals: prometheus: connection refused" in d.rationale


# --------------------------------------------------------------------------- the budget gate


def test_budget_gate_enforce_warn_off() -> None:
    s = snap(cand("azure", credits=50, hourly_cost=5), cand("gcp", credits=80, hourly_cost=90))
    enforce = decide(s)
    assert enforce.decision_type == DecisionType.HOLD
    warn = decide(s, policy(**{"budget.mode": "warn"}))
    assert warn.target == "azure" and warn.requires_approval
    assert any("budget gate (warn): credits 50 < 100" in w for w in by_site(warn)["azure"].warnings)
    off = decide(s, policy(**{"budget.mode": "off"}))
    assert off.target == "azure" and not off.requires_approval


def test_unknown_credits_require_approval() -> None:
    d = decide(snap(cand("azure")))
    assert d.target == "azure" and d.requires_approval
    assert any("credits unknown" in w for w in by_site(d)["azure"].warnings)
    d = decide(snap(cand("azure", credits=1000, hourly_cost=3)))
    assert not d.requires_approval


# --------------------------------------------------------------------------- other decisions


def test_burst_ignores_the_database_and_scales_out() -> None:
    d = decide(snap(cand("azure", standby_up=0, credits=500), cand("gcp", credits=10)), decision_type="burst")
    assert (d.decision_type, d.target, d.dr_mode) == (DecisionType.BURST, "azure", DrMode.SCALE_OUT)
    assert "replication_lag" not in by_site(d)["azure"].components


def test_failback_considers_only_the_onprem_site() -> None:
    s = SignalSnapshot(taken_at=NOW, candidates=[cand("onprem"), cand("gcp")])
    d = evaluate(DecisionRequest(decision_type=DecisionType.FAILBACK, current_primary="azure"), s, policy())
    assert (d.target, d.target_cloud) == ("onprem", TargetCloud.NONE)
    assert [c.site for c in d.candidates] == ["onprem"] and d.requires_approval


def test_same_inputs_same_decision_and_id() -> None:
    s = snap(cand("azure", lag_bytes=5), cand("gcp", lag_bytes=7))
    a, b = decide(s), decide(s.model_copy(deep=True))
    assert a == b and a.decision_id.startswith("dec-")
    assert decide(snap(cand("azure", lag_bytes=6), cand("gcp", lag_bytes=7))).decision_id != a.decision_id


# --------------------------------------------------------------------------- the policy file


def test_the_shipped_policy_loads() -> None:
    p = load_policy()
    assert p.constraints.rto_max_s == 900 and p.constraints.rpo_max_s == 300
    assert len(p.digest()) == 16


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"weights": {"cost": -1}}, "weights.cost"),
        ({"budget": {"mode": "maybe"}}, "budget.mode"),
        ({"constraints": {"rpo_max": 5}}, "constraints.rpo_max"),
        ({"strategy": "cheap"}, "strategy"),
        ({"tie_break": ["azure", "azure"]}, "tie_break"),
        (
            {"weights": {"latency": 0, "error_rate": 0, "cost": 0, "replication_lag": 0, "slo": 0}},
            "weights",
        ),
        ([1, 2], "mapping"),
    ],
)
def test_policy_errors_name_the_key(data: Any, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        parse_policy(data)


# --------------------------------------------------------------------------- database signals


def test_signals_from_states() -> None:
    sites = [SiteRef(name=n, cloud=c) for n, c in CLOUDS.items()]
    states = [
        SiteState(site="onprem", reachable=False, error="connection refused"),
        SiteState(
            site="azure",
            reachable=True,
            in_recovery=True,
            receive_lsn="0/600",
            replay_lsn="0/500",
            last_replay_at=NOW - timedelta(seconds=2),
        ),
        SiteState(
            site="gcp", reachable=True, in_recovery=True, receive_lsn="0/600", replay_lsn="0/600", fenced=True
        ),
    ]
    out = {c.site: c for c in signals_from_states(sites, states, NOW)}
    assert out["onprem"].values[S.STANDBY_UP].value == 0 and "connection refused" in out["onprem"].notes[0]
    az = out["azure"].values
    assert az[S.LAG_BYTES].value == (parse_lsn("0/600") or 0) - (parse_lsn("0/500") or 0)
    assert az[S.LAG_SECONDS].value == 2.0 and az[S.STANDBY_UP].source == "postgres"
    assert out["gcp"].values[S.STANDBY_UP].value == 0 and out["gcp"].notes == ["fenced"]
    assert out["gcp"].values[S.LAG_SECONDS].value == 0.0


def test_merge_prefers_the_database_view() -> None:
    prom = SignalSnapshot(
        taken_at=NOW,
        candidates=[cand("azure", standby_up=0, credits=300)],
        errors=["prometheus: x"],
    )
    pg = [cand("azure", standby_up=1), cand("gcp")]
    merged = merge_signals(pg, prom)
    a = merged.candidates[0].values
    assert a[S.STANDBY_UP].value == 1 and a[S.CREDITS].value == 300
    assert [c.site for c in merged.candidates] == ["azure", "gcp"] and merged.errors == ["prometheus: x"]


def test_a_requested_target_that_already_is_the_primary_is_said_as_such() -> None:
    """``failover --target azure`` while azure is the primary: the hold names the reason, not
    every other site being "not the requested target"."""
    req = DecisionRequest(decision_type=DecisionType.FAILOVER, current_primary="azure", target="azure")
    d = evaluate(req, snap(cand("azure"), cand("gcp")), policy())
    assert d.decision_type == DecisionType.HOLD and d.target is None
    said = "the requested target azure is already the primary: nothing to move"
    assert d.rationale[-1] == f"hold: {said}" and hold_reason(req, d.candidates) == said
    other = DecisionRequest(decision_type=DecisionType.FAILOVER, current_primary="onprem", target="azure")
    held = evaluate(other, snap(cand("azure", lag_seconds=9999), cand("gcp")), policy())
    assert hold_reason(other, held.candidates).startswith("no eligible target (azure: constraints.rpo_max_s")


def test_a_primary_found_down_needs_the_candidates_own_view_to_agree() -> None:
    """With the primary unreachable to the run, a candidate whose own agent still sees it take
    writes (silent within the blip tolerance) is rejected, named; one whose agent sees it
    silent past the tolerance, or has no view, is not. A planned failover (the primary up)
    does not ask."""
    p = policy()
    req = DecisionRequest(current_primary="onprem")
    s = snap(cand("azure", primary_silent_s=0.4), cand("gcp", primary_silent_s=2.6))
    down = evaluate(req, s, p, primary_down=True)
    assert down.target == "gcp"
    azure = next(c for c in down.candidates if c.site == "azure")
    assert not azure.eligible
    assert azure.rejected_because == (
        "detection.blip_tolerance_s: azure's own agent saw onprem take a write 0.4 s ago (within 2 s):"
        " it does not agree the primary is down"
    )
    agrees_none = evaluate(req, snap(cand("azure", primary_silent_s=1.9)), p, primary_down=True)
    assert agrees_none.decision_type == DecisionType.HOLD
    no_view = evaluate(req, snap(cand("azure")), p, primary_down=True)
    assert no_view.target == "azure"
    planned = evaluate(req, s, p)
    assert {c.site for c in planned.candidates if c.eligible} == {"azure", "gcp"}
