"""DR readiness: every precondition a runbook would check, evaluated on what the read-only
steps read now (issue 20). Pure functions over recorded data, as
:func:`hybridops.topology.establish`: the workflow runs them, a replay decides the same.

A failover plan fails at 3 a.m. for reasons visible a week before: a standby that stopped
streaming, a credential that no longer resolves, DNS edited by hand, a task queue nobody
polls, a backup too old to restore from. Each is a :class:`ReadinessCheck` here, with what was
measured, what it must be, the runbooks it matters to and the steps it protects.
"""

from __future__ import annotations

from datetime import datetime

from hybridops.capabilities import runbook_needs, unmet
from hybridops.constants import TaskQueue
from hybridops.contracts.readiness import (
    SEVERITY,
    BackupAgeResult,
    CheckStatus,
    QueuesResult,
    ReadinessCheck,
    ReadinessInput,
    ReadinessResult,
    SecretsResult,
)
from hybridops.contracts.sites import FindingKind, PlanResult, SiteState, Topology
from hybridops.lsn import parse_lsn
from hybridops.policy import Constraints

DRILL = "drill"

QUEUE_STEPS: dict[TaskQueue, str] = {
    TaskQueue.CONTROL: "every runbook: the workflow itself, plan, checkpoints, evidence",
    TaskQueue.DB: "failover: assess, verify_writes, measure_rpo; drill: take_backup, restore_backup",
    TaskQueue.INFRA: "failover: prepare_target, isolate, repoint_apps; burst: scale_pool",
    TaskQueue.DNS: "failover: dns_cutover; failback: DNS back; burst: set_traffic",
}
"""What stops when nobody polls a shared queue (placement ``queues``)."""

SECRET_STEPS: dict[str, str] = {
    "dns": "failover: dns_cutover; failback: DNS back; burst: set_traffic",
    "sites": "every step on that site's server",
    "backup": "drill: take_backup, restore_backup",
    "temporal": "every runbook: reaching Temporal",
    "infra": "failover: prepare_target, isolate, repoint_apps; burst: scale_pool",
    "gitops": "failover: GitOps sync; burst: deploy_workloads",
}
"""The steps a credential serves, by the inventory section that holds it."""


def runbook_names(plan: PlanResult) -> list[str]:
    """Every runbook and target the inventory allows: those ``hybridops inventory check``
    lists, and the drill."""
    home, clouds = _home_and_clouds(plan)
    return [name for name, _ in runbook_needs(home, clouds, bool(plan.apps))] + [DRILL]


def _home_and_clouds(plan: PlanResult) -> tuple[str, list[str]]:
    home = next((s.name for s in plan.sites if s.cloud is None), "")
    return home, [s.name for s in plan.sites if s.cloud is not None]


def queues_used(plan: PlanResult) -> dict[str, str]:
    """The task queues the runbooks use (real names), each with its role: the control queue
    alone when steps run colocated; else every shared queue and each site agent's."""
    suffix = plan.queue_suffix
    if plan.placement != "queues":
        return {TaskQueue.CONTROL.value + suffix: "control"}
    out = {q.value + suffix: q.name.lower() for q in TaskQueue}
    out.update({queue: f"agent.{site}" for site, queue in sorted(plan.site_queues.items())})
    return out


def _failovers(plan: PlanResult) -> list[str]:
    _, clouds = _home_and_clouds(plan)
    return [f"failover to {c}" for c in clouds]


def _to(plan: PlanResult, site: str, primary: str | None) -> str:
    """The runbook that would make standby ``site`` the primary."""
    home, _ = _home_and_clouds(plan)
    return f"failback from {primary}" if site == home and primary else f"failover to {site}"


def topology_checks(
    plan: PlanResult, topology: Topology, constraints: Constraints, now: datetime
) -> list[ReadinessCheck]:
    """One writable primary; DNS at it; each standby streaming from it, its lag within the
    policy's RPO objective; one timeline and one system identifier."""
    primary = topology.primary
    movers = _failovers(plan)
    out = [
        ReadinessCheck(
            id="topology.one_writer",
            status=CheckStatus.PASS if primary else CheckStatus.FAIL,
            measured="writable: " + (", ".join(topology.writable) or "none"),
            threshold="exactly one writable server",
            runbooks=movers,
            protects=["failover: fence_old_primary, promote_target (safety rule single_writer)"],
            detail="; ".join(
                f.detail
                for f in topology.findings
                if f.kind in (FindingKind.SPLIT_BRAIN, FindingKind.NO_WRITABLE_SERVER)
            ),
        ),
        ReadinessCheck(
            id="topology.dns_agrees",
            status=CheckStatus.PASS if primary and topology.dns_site == primary else CheckStatus.FAIL,
            measured=f"{topology.dns_record} -> {topology.dns_value or 'no record'}"
            f" ({topology.dns_site or 'no site'})",
            threshold=f"the primary ({primary or 'none'})",
            runbooks=movers,
            protects=["failover: decide (the old primary), dns_cutover"],
            detail="; ".join(
                f.detail
                for f in topology.findings
                if f.kind in (FindingKind.DNS_DISAGREES, FindingKind.DNS_NOT_A_SITE)
            ),
        ),
    ]
    primary_state = topology.state(primary) if primary else None
    for state in topology.servers:
        if state.site == primary:
            continue
        out += _standby_checks(plan, state, primary_state, constraints, now)
    out.append(_timelines(topology, movers))
    return out


def _standby_checks(
    plan: PlanResult,
    state: SiteState,
    primary: SiteState | None,
    constraints: Constraints,
    now: datetime,
) -> list[ReadinessCheck]:
    site = state.site
    runbook = [_to(plan, site, primary.site if primary else None)]
    upstream_ok = primary is None or state.upstream in (None, primary.site)
    if not state.reachable:
        status, measured = CheckStatus.FAIL, "down" + (f": {state.error}" if state.error else "")
    elif state.in_recovery is not True:
        status, measured = CheckStatus.FAIL, "not a standby (accepts writes or is read-only primary)"
    elif state.streaming and upstream_ok:
        status, measured = CheckStatus.PASS, f"streaming from {state.upstream or '?'}"
    else:
        status = CheckStatus.FAIL
        measured = "not streaming" if not state.streaming else f"streaming from {state.upstream}"
    streaming = ReadinessCheck(
        id=f"topology.streaming.{site}",
        status=status,
        measured=measured,
        threshold=f"a standby streaming from the primary ({primary.site if primary else 'none'})",
        runbooks=runbook,
        protects=[f"{runbook[0]}: promote_target (its data is only as fresh as its stream)"],
    )
    lag = lag_seconds(state, primary, now)
    rpo = constraints.rpo_max_s
    if lag is None:
        lag_status, lag_text = CheckStatus.UNKNOWN, "not measured (standby or primary unreadable)"
    else:
        lag_status = CheckStatus.PASS if lag <= rpo else CheckStatus.FAIL
        lag_text = f"{lag:.1f} s"
    return [
        streaming,
        ReadinessCheck(
            id=f"topology.lag.{site}",
            status=lag_status,
            measured=lag_text,
            threshold=f"<= {rpo:g} s (policy constraints.rpo_max_s)",
            runbooks=runbook,
            protects=[f"{runbook[0]}: decide (rpo_max_s), promote_target"],
        ),
    ]


def lag_seconds(state: SiteState, primary: SiteState | None, now: datetime) -> float | None:
    """How far ``state`` (a standby) is behind ``primary`` in time: 0 when it replayed all the
    primary wrote, else the age of its last replayed transaction; None when either position
    cannot be read."""
    if primary is None or not state.reachable or not primary.reachable:
        return None
    written = parse_lsn(primary.current_lsn)
    replayed = parse_lsn(state.replay_lsn)
    if written is None or replayed is None:
        return None
    if replayed >= written:
        return 0.0
    if state.last_replay_at is None:
        return None
    return max((now - state.last_replay_at).total_seconds(), 0.0)


def _timelines(topology: Topology, runbooks: list[str]) -> ReadinessCheck:
    seen = {s.site: s.timeline for s in topology.servers if s.reachable and s.timeline is not None}
    mismatch = [f.detail for f in topology.findings if f.kind == FindingKind.SYSTEM_MISMATCH]
    one = len(set(seen.values())) <= 1 and not mismatch
    return ReadinessCheck(
        id="topology.timelines",
        status=CheckStatus.PASS if one else CheckStatus.FAIL,
        measured=", ".join(f"{site} {tl}" for site, tl in seen.items()) or "no server answered",
        threshold="every server on one timeline, of one system identifier",
        runbooks=runbooks,
        protects=["failover: promote_target (safety rules not_forked, same_system)"],
        detail="; ".join(mismatch),
    )


def secret_checks(secrets: SecretsResult, runbooks: list[str]) -> list[ReadinessCheck]:
    """Each secret reference of the inventory resolves (its key and scheme, never its value)."""
    return [
        ReadinessCheck(
            id=f"credentials.{s.key}",
            status=CheckStatus.PASS if s.resolves else CheckStatus.FAIL,
            measured=f"{s.scheme}: " + ("resolves" if s.resolves else "does not resolve"),
            threshold="resolves",
            runbooks=runbooks,
            protects=[SECRET_STEPS.get(s.key.split(".", 1)[0], f"every step that uses {s.key}")],
            detail=s.error,
        )
        for s in secrets.secrets
    ]


def capability_checks(plan: PlanResult) -> list[ReadinessCheck]:
    """Per runbook and target: the inventory's drivers offer what it needs (the plan step
    recorded what they offer)."""
    home, clouds = _home_and_clouds(plan)
    out = []
    for runbook, needs in runbook_needs(home, clouds, bool(plan.apps)):
        missing, without = unmet(needs, plan.capabilities, plan.drivers)
        if not plan.capabilities:
            status = CheckStatus.UNKNOWN
        else:
            status = CheckStatus.FAIL if missing else CheckStatus.WARN if without else CheckStatus.PASS
        out.append(
            ReadinessCheck(
                id="capabilities." + runbook.replace(" ", "_"),
                status=status,
                measured="; ".join(missing + without) or "every capability offered",
                threshold="every capability it needs",
                runbooks=[runbook],
                protects=[f"{runbook}: {need.why}" for need in needs],
            )
        )
    return out


def queue_checks(
    plan: PlanResult, queues: QueuesResult, poll_fresh_s: float, runbooks: list[str]
) -> list[ReadinessCheck]:
    """A worker polls every task queue the runbooks use (Temporal's task queue description)."""
    roles = queues_used(plan)
    out = []
    for q in queues.queues:
        role = roles.get(q.queue, q.queue)
        if q.error:
            status, measured = CheckStatus.UNKNOWN, f"{q.queue}: {q.error}"
        elif q.last_poll_s is None:
            status, measured = CheckStatus.FAIL, f"{q.queue}: no poller"
        else:
            fresh = q.last_poll_s <= poll_fresh_s
            status = CheckStatus.PASS if fresh else CheckStatus.FAIL
            measured = f"{q.queue}: last poll {q.last_poll_s:.0f} s ago" + ("" if fresh else " (gone)")
        if role.startswith("agent."):
            site = role.split(".", 1)[1]
            protects = [f"every runbook: the steps on {site}'s server (fence, promote, rejoin, pause)"]
        else:
            shared = TaskQueue.__members__.get(role.upper())
            protects = [QUEUE_STEPS[shared]] if shared else []
        out.append(
            ReadinessCheck(
                id=f"temporal.queue.{role}",
                status=status,
                measured=measured,
                threshold=f"a worker polled within {poll_fresh_s:g} s",
                runbooks=runbooks,
                protects=protects,
            )
        )
    return out


def backup_check(
    backups: BackupAgeResult, max_age_h: float, now: datetime, runbooks: list[str]
) -> ReadinessCheck:
    """The newest backup is younger than ``max_age_h``; ``unknown`` when the driver cannot list."""
    threshold = f"<= {max_age_h:g} h"
    if not backups.listed:
        status, measured = CheckStatus.UNKNOWN, backups.detail or "the backup driver cannot list backups"
    elif backups.newest_at is None:
        status, measured = CheckStatus.FAIL, "no backup"
    else:
        age_h = max((now - backups.newest_at).total_seconds(), 0.0) / 3600
        status = CheckStatus.PASS if age_h <= max_age_h else CheckStatus.FAIL
        measured = f"{age_h:.1f} h ({backups.newest}, {backups.count} backups)"
    return ReadinessCheck(
        id="backups.newest_age",
        status=status,
        measured=measured,
        threshold=threshold,
        runbooks=runbooks,
        protects=["drill: restore_backup", "failover: restore when no standby can be promoted"],
    )


def evaluate(
    plan: PlanResult,
    topology: Topology,
    secrets: SecretsResult,
    queues: QueuesResult,
    backups: BackupAgeResult,
    inp: ReadinessInput,
    now: datetime,
    workflow_id: str = "",
) -> ReadinessResult:
    """Every check, the worst per runbook and over all."""
    constraints = plan.policy.constraints if plan.policy else Constraints()
    names = runbook_names(plan)
    checks = [
        *topology_checks(plan, topology, constraints, now),
        *secret_checks(secrets, names),
        *capability_checks(plan),
        *queue_checks(plan, queues, inp.poll_fresh_s, names),
        backup_check(backups, inp.backup_max_age_h, now, [DRILL, *_failovers(plan)]),
    ]
    per_runbook = {name: worst([c.status for c in checks if name in c.runbooks]) for name in names}
    return ReadinessResult(
        workflow_id=workflow_id,
        checked_at=now,
        status=worst([c.status for c in checks]),
        runbooks=per_runbook,
        checks=checks,
    )


def worst(statuses: list[CheckStatus]) -> CheckStatus:
    """The worst of ``statuses`` (pass when there are none)."""
    return max(statuses, key=lambda s: SEVERITY[s], default=CheckStatus.PASS)
