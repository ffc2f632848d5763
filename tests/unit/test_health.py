"""The checks a failover records after its cutover (hybridops/health.py): the apps' error
rate against the policy's maximum, and the alert's resolution; unknown where nothing can say."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from hybridops.contracts.base import AlertNotice
from hybridops.contracts.decision import CandidateSignals, Signal, SignalName, SignalSnapshot
from hybridops.health import alert_check, error_rate_check
from hybridops.policy import Policy

NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


def snapshot(rate: float | None, errors: list[str] | None = None) -> SignalSnapshot:
    values = (
        {}
        if rate is None
        else {SignalName.ERROR_RATE: Signal(value=rate, source="prometheus", observed_at=NOW)}
    )
    return SignalSnapshot(
        taken_at=NOW, candidates=[CandidateSignals(site="azure", values=values)], errors=errors or []
    )


def policy(limit: float | None) -> Policy:
    p = Policy()
    p.constraints.max_error_rate = limit
    return p


def test_error_rate_within_and_above_the_policy_maximum() -> None:
    ok = error_rate_check(snapshot(0.002), "azure", policy(0.2))
    assert (ok.passed, ok.value, ok.threshold, ok.source) == (True, 0.002, "<= 0.2", "prometheus")
    assert "within the policy's 0.2" in ok.detail
    bad = error_rate_check(snapshot(0.35), "azure", policy(0.2))
    assert bad.passed is False and bad.value == 0.35 and "above the policy's 0.2" in bad.detail


def test_error_rate_unknown_when_nothing_can_say() -> None:
    missing = error_rate_check(snapshot(None, ["prometheus: connection refused"]), "azure", policy(0.2))
    assert missing.passed is None and missing.value is None
    assert missing.detail == "no source reports error_rate for azure (prometheus: connection refused)"
    nan = error_rate_check(snapshot(math.nan), "azure", policy(0.2))
    assert nan.passed is None and nan.value is None
    no_limit = error_rate_check(snapshot(0.5), "azure", policy(None))
    assert no_limit.passed is None and no_limit.value == 0.5 and "max_error_rate" in no_limit.threshold
    unasked = error_rate_check(None, "azure", policy(0.2), "ActivityError: timeout")
    assert unasked.passed is None and unasked.detail == "monitoring did not answer: ActivityError: timeout"


def notice(status: str) -> AlertNotice:
    return AlertNotice(status=status, received_at=NOW, alertnames=["HybridOpsPrimaryNotTakingWrites"])


def test_the_alert_that_started_the_run() -> None:
    resolved = alert_check("alert:primary-not-taking-writes", 120, [notice("firing"), notice("resolved")])
    assert resolved.passed is True and resolved.value == "resolved"
    assert "HybridOpsPrimaryNotTakingWrites resolved" in resolved.detail
    firing = alert_check("alert:primary-not-taking-writes", 120, [notice("firing")])
    assert firing.passed is False and firing.value == "firing" and "120 s" in firing.detail
    unwaited = alert_check("alert:primary-not-taking-writes", 0, [])
    assert unwaited.passed is None and unwaited.value == "firing"
    manual = alert_check("alice", 0, [])
    assert manual.passed is None and manual.source == "none" and manual.detail == "no alert started this run"
