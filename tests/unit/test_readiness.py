"""The readiness checks (hybridops/readiness.py) on recorded readings: pure, no lab."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hybridops.capabilities import Capability
from hybridops.contracts.backup import WalVerifyResult
from hybridops.contracts.base import Cloud
from hybridops.contracts.decision import SignalSnapshot, SignalsResult
from hybridops.contracts.readiness import (
    BackupAgeResult,
    CheckStatus,
    DrillRecordResult,
    QueuePollers,
    QueuesResult,
    ReadinessCheck,
    ReadinessInput,
    ScheduleReading,
    SchedulesResult,
    SecretCheck,
    SecretsResult,
    WalContinuityResult,
)
from hybridops.contracts.sites import PlanResult, ReplicationSlot, SiteRef, SiteState
from hybridops.decision import topology_of
from hybridops.drills import overdue
from hybridops.policy import Policy
from hybridops.readiness import MoreReadings, evaluate, lag_seconds, queues_used

NOW = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)
ALL = [Capability(c) for c in Capability]


def plan(dns_site: str = "onprem") -> PlanResult:
    return PlanResult(
        sites=[SiteRef(name="onprem"), SiteRef(name="azure", cloud=Cloud.AZURE)],
        dns_record="db.example",
        dns_site=dns_site,
        dns_value=f"10.0.0.{1 if dns_site == 'onprem' else 2}",
        placement="queues",
        queue_suffix="-x",
        site_queues={"onprem": "hybridops-db-onprem-x", "azure": "hybridops-db-azure-x"},
        policy=Policy(),
        capabilities={k: ALL for k in ("postgres:onprem", "postgres:azure", "infra", "dns", "backup")},
        drivers={},
    )


def states(streaming: bool = True, replay: str = "0/100", last_replay_at: datetime = NOW) -> list[SiteState]:
    return [
        SiteState(site="onprem", reachable=True, in_recovery=False, timeline=1, current_lsn="0/100"),
        SiteState(
            site="azure",
            reachable=True,
            in_recovery=True,
            timeline=1,
            replay_lsn=replay,
            receive_lsn=replay,
            last_replay_at=last_replay_at,
            streaming=streaming,
            upstream="onprem",
        ),
    ]


def run(p: PlanResult, s: list[SiteState], **kw: object) -> dict[str, CheckStatus]:
    queues = QueuesResult(queues=[QueuePollers(queue=q, pollers=1, last_poll_s=1.0) for q in queues_used(p)])
    secrets = SecretsResult(secrets=[SecretCheck(key="dns.credentials_ref", scheme="env", resolves=True)])
    backups = BackupAgeResult(listed=True, count=1, newest="b1", newest_at=NOW - timedelta(hours=1))
    args = {"secrets": secrets, "queues": queues, "backups": backups, **kw}
    result = evaluate(p, topology_of(p, s), inp=ReadinessInput(), now=NOW, **args)  # type: ignore[arg-type]
    return {c.id: c.status for c in result.checks}


def test_a_healthy_reading_passes_every_check() -> None:
    checks = run(plan(), states())
    assert set(checks.values()) == {CheckStatus.PASS}, checks
    assert "temporal.queue.agent.azure" in checks and "temporal.queue.dns" in checks


def test_each_fault_fails_its_own_check() -> None:
    assert run(plan("azure"), states())["topology.dns_agrees"] == CheckStatus.FAIL
    assert run(plan(), states(streaming=False))["topology.streaming.azure"] == CheckStatus.FAIL
    late = states(replay="0/50", last_replay_at=NOW - timedelta(seconds=900))
    assert run(plan(), late)["topology.lag.azure"] == CheckStatus.FAIL
    gone = QueuesResult(queues=[QueuePollers(queue="hybridops-db-azure-x", pollers=1, last_poll_s=300)])
    assert run(plan(), states(), queues=gone)["temporal.queue.agent.azure"] == CheckStatus.FAIL
    bad = SecretsResult(secrets=[SecretCheck(key="dns.credentials_ref", scheme="env", resolves=False)])
    assert run(plan(), states(), secrets=bad)["credentials.dns.credentials_ref"] == CheckStatus.FAIL
    unlisted = BackupAgeResult(listed=False, detail="cannot list")
    assert run(plan(), states(), backups=unlisted)["backups.newest_age"] == CheckStatus.UNKNOWN


def test_lag_is_zero_when_caught_up_else_the_last_replays_age() -> None:
    primary, standby = states(replay="0/100", last_replay_at=NOW - timedelta(hours=1))
    assert lag_seconds(standby, primary, NOW) == 0.0
    primary, standby = states(replay="0/80", last_replay_at=NOW - timedelta(seconds=12))
    assert lag_seconds(standby, primary, NOW) == 12.0


def more(**kw: object) -> MoreReadings:
    """Readings of the patch ``readiness-more-checks`` that pass, each replaceable."""
    wal = WalContinuityResult(
        verified=True,
        wal=WalVerifyResult(ok=True, first_segment="000000010000000000000001", segments=3),
    )
    drills = DrillRecordResult(
        listed=True,
        runs=2,
        last_passed_at=NOW - timedelta(hours=2),
        last_passed_id="drill-1",
        last_run_id="drill-1",
        last_run_status="COMPLETED",
        max_age_h=24,
    )
    schedules = SchedulesResult(listed=True, schedules=[ScheduleReading(id="drill-weekly")])
    signals = SignalsResult(snapshot=SignalSnapshot(taken_at=NOW), policy=Policy())
    args: dict[str, Any] = {"wal": wal, "drills": drills, "schedules": schedules, "signals": signals, **kw}
    return MoreReadings(**args)


def checks_of(p: PlanResult, s: list[SiteState], m: MoreReadings, **inp: Any) -> dict[str, ReadinessCheck]:
    queues = QueuesResult(queues=[QueuePollers(queue=q, pollers=1, last_poll_s=1.0) for q in queues_used(p)])
    backups = BackupAgeResult(listed=True, count=1, newest="b1", newest_at=NOW - timedelta(hours=1))
    result = evaluate(
        p, topology_of(p, s), SecretsResult(), queues, backups, ReadinessInput(**inp), NOW, "w", more=m
    )
    return {c.id: c for c in result.checks}


def with_slots(*retained: int | None) -> list[SiteState]:
    primary, standby = states()
    slots = [ReplicationSlot(name=f"s{i}", active=i == 0, retained_bytes=r) for i, r in enumerate(retained)]
    return [primary.model_copy(update={"slots": slots}), standby]


def test_the_more_checks_pass_on_a_healthy_reading_and_name_the_target() -> None:
    checks = checks_of(plan(), with_slots(1 << 20), more())
    for name in (
        "topology.slots.onprem",
        "backups.wal_continuity",
        "drills.last_passed",
        "temporal.schedules",
        "decision.target",
    ):
        assert checks[name].status == CheckStatus.PASS, checks[name]
        assert checks[name].measured and checks[name].threshold and checks[name].protects, checks[name]
    assert checks["decision.target"].measured.startswith("azure ("), checks["decision.target"]
    assert set(checks["decision.target"].runbooks) == {"failover to azure"}


def test_without_the_more_readings_there_are_no_more_checks() -> None:
    """A history recorded before the patch: its result has the checks it had then."""
    p = plan()
    result = evaluate(
        p,
        topology_of(p, with_slots(1 << 40)),
        SecretsResult(),
        QueuesResult(),
        BackupAgeResult(),
        ReadinessInput(),
        NOW,
    )
    ids = {c.id for c in result.checks}
    assert not ids & {
        "topology.slots.onprem",
        "backups.wal_continuity",
        "drills.last_passed",
        "decision.target",
    }


def test_a_slot_retaining_more_than_the_threshold_fails() -> None:
    check = checks_of(plan(), with_slots(None, 2 << 30), more())["topology.slots.onprem"]
    assert check.status == CheckStatus.FAIL and "s1" in check.detail, check
    lower = checks_of(plan(), with_slots(1 << 20), more(), slot_retained_max_bytes=1 << 10)
    assert lower["topology.slots.onprem"].status == CheckStatus.FAIL
    assert checks_of(plan(), with_slots(), more())["topology.slots.onprem"].measured == "no slot"
    unread = checks_of(plan(), states(), more())["topology.slots.onprem"]
    assert unread.status == CheckStatus.UNKNOWN, unread


def test_a_missing_wal_segment_fails_and_an_unverifiable_archive_is_unknown() -> None:
    gap = WalContinuityResult(
        verified=True,
        wal=WalVerifyResult(ok=False, segments=2, missing=["000000010000000000000002"], detail="gap"),
    )
    check = checks_of(plan(), states(), more(wal=gap))["backups.wal_continuity"]
    assert check.status == CheckStatus.FAIL and "000000010000000000000002" in check.detail, check
    unverified = WalContinuityResult(verified=False, detail="cannot verify the WAL archive: no tool")
    check = checks_of(plan(), states(), more(wal=unverified))["backups.wal_continuity"]
    assert check.status == CheckStatus.UNKNOWN and "no tool" in check.measured, check


def test_drills_overdue_fail_a_failed_last_drill_warns_none_is_unknown() -> None:
    def drill(**kw: Any) -> ReadinessCheck:
        record = more().drills.model_copy(update=kw)
        return checks_of(plan(), states(), more(drills=record))["drills.last_passed"]

    assert drill(last_passed_at=NOW - timedelta(hours=25)).status == CheckStatus.FAIL
    assert (
        drill(last_passed_at=None, last_passed_id=None, last_run_status="FAILED").status == CheckStatus.FAIL
    )
    failed = drill(last_run_id="drill-2", last_run_status="FAILED")
    assert failed.status == CheckStatus.WARN and "drill-2: FAILED" in failed.measured, failed
    assert drill(runs=0, last_passed_at=None).status == CheckStatus.UNKNOWN
    assert drill(listed=False).status == CheckStatus.UNKNOWN
    assert overdue(NOW - timedelta(hours=25), 24, NOW) and not overdue(NOW - timedelta(hours=23), 24, NOW)


def test_a_paused_schedule_fails_and_no_drill_schedule_warns() -> None:
    def sched(*readings: ScheduleReading, listed: bool = True) -> ReadinessCheck:
        result = SchedulesResult(listed=listed, schedules=list(readings))
        return checks_of(plan(), states(), more(schedules=result))["temporal.schedules"]

    paused = sched(ScheduleReading(id="drill-weekly", paused=True), ScheduleReading(id="hybridops-readiness"))
    assert paused.status == CheckStatus.FAIL and "drill-weekly" in paused.measured, paused
    assert sched(ScheduleReading(id="hybridops-readiness")).status == CheckStatus.WARN
    assert sched(listed=False).status == CheckStatus.UNKNOWN
    assert sched(ScheduleReading(id="drill-weekly", error="gone")).status == CheckStatus.UNKNOWN


def test_no_target_fails_the_decision_check() -> None:
    down = states()
    down[1] = SiteState(site="azure", reachable=False, error="connection refused")
    check = checks_of(plan(), down, more())["decision.target"]
    assert check.status == CheckStatus.FAIL and "azure" in check.detail, check
    assert checks_of(plan(), states(), more(signals=None))["decision.target"].status == CheckStatus.UNKNOWN


def test_capacity_against_the_failover_size_or_min_capacity() -> None:
    """capacity.<target>: the free nodes monitoring reports against the policy's failover
    size for it (else its min_capacity); unknown when nothing reports them; no check for a
    target the policy asks nothing of."""
    from hybridops.contracts.decision import CandidateSignals, Signal, SignalName

    def signals(free: float | None) -> SignalsResult:
        values = {} if free is None else {SignalName.CAPACITY: Signal(value=free, source="static")}
        snap = SignalSnapshot(taken_at=NOW, candidates=[CandidateSignals(site="azure", values=values)])
        return SignalsResult(snapshot=snap, policy=Policy())

    sized = plan()
    assert sized.policy is not None
    sized.policy.failover.nodes = {"azure": 5}
    few = checks_of(sized, states(), more(signals=signals(3)))["capacity.azure"]
    assert few.status == CheckStatus.FAIL and few.measured == "3 free nodes (static)", few
    assert few.threshold == ">= 5 free nodes (policy failover.nodes)" and "needs 5" in few.detail
    assert checks_of(sized, states(), more(signals=signals(8)))["capacity.azure"].status == CheckStatus.PASS
    assert (
        checks_of(sized, states(), more(signals=signals(None)))["capacity.azure"].status
        == CheckStatus.UNKNOWN
    )
    floor = plan()
    assert floor.policy is not None
    floor.policy.constraints.min_capacity = 1
    check = checks_of(floor, states(), more(signals=signals(2)))["capacity.azure"]
    assert check.status == CheckStatus.PASS and "constraints.min_capacity" in check.threshold
    assert "capacity.azure" not in checks_of(plan(), states(), more(signals=signals(2)))
