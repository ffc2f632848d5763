"""The readiness checks (hybridops/readiness.py) on recorded readings: pure, no lab."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hybridops.capabilities import Capability
from hybridops.contracts.base import Cloud
from hybridops.contracts.readiness import (
    BackupAgeResult,
    CheckStatus,
    QueuePollers,
    QueuesResult,
    ReadinessInput,
    SecretCheck,
    SecretsResult,
)
from hybridops.contracts.sites import PlanResult, SiteRef, SiteState
from hybridops.decision import topology_of
from hybridops.policy import Policy
from hybridops.readiness import evaluate, lag_seconds, queues_used

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
