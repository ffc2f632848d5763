"""DR readiness: every precondition a runbook would check, evaluated on what the read-only
steps read now (issue 20). Pure functions over recorded data, as
:func:`hybridops.topology.establish`: the workflow runs them, a replay decides the same.

A failover plan fails at 3 a.m. for reasons visible a week before: a standby that stopped
streaming, a credential that no longer resolves, DNS edited by hand, a task queue nobody
polls, a backup too old to restore from. Each is a :class:`ReadinessCheck` here, with what was
measured, what it must be, the runbooks it matters to and the steps it protects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hybridops.capabilities import runbook_needs, unmet
from hybridops.constants import TaskQueue
from hybridops.contracts.backup import WalVerifyResult
from hybridops.contracts.base import TargetChoice
from hybridops.contracts.decision import DecisionRequest, DecisionType, SignalName, SignalsResult
from hybridops.contracts.readiness import (
    SEVERITY,
    BackupAgeResult,
    CheckStatus,
    DnsProbeResult,
    DrillRecordResult,
    QueuesResult,
    ReadinessCheck,
    ReadinessInput,
    ReadinessResult,
    SchedulesResult,
    SecretsResult,
    StateLockStatus,
    TerraformStateResult,
    WalContinuityResult,
)
from hybridops.contracts.sites import FindingKind, PlanResult, SiteState, Topology
from hybridops.decision import decide, hold_reason
from hybridops.drills import SCHEDULE_PREFIX, overdue
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
    return [name for name, _ in runbook_needs(home, clouds, plan.apps_need_infra())] + [DRILL]


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
    for runbook, needs in runbook_needs(home, clouds, plan.apps_need_infra()):
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


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.2f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MiB"


def slot_check(topology: Topology, max_bytes: int, runbooks: list[str]) -> ReadinessCheck | None:
    """The primary's replication slots hold back at most ``max_bytes`` of WAL each (a slot
    nobody consumes keeps WAL until the primary's disk is full); ``unknown`` when its slots
    were not read. None when there is no one primary to ask."""
    primary = topology.primary
    state = topology.state(primary) if primary else None
    if primary is None or state is None:
        return None
    threshold = f"each slot retains <= {_gib(max_bytes)} ({max_bytes} bytes, input slot_retained_max_bytes)"
    if state.slots is None:
        status, measured, detail = CheckStatus.UNKNOWN, "slots not read", "its driver does not read slots"
    else:
        over = [s for s in state.slots if s.retained_bytes is not None and s.retained_bytes > max_bytes]
        status = CheckStatus.FAIL if over else CheckStatus.PASS
        measured = (
            ", ".join(
                f"{s.name} {'active' if s.active else 'inactive'}"
                f" {'-' if s.retained_bytes is None else _gib(s.retained_bytes)}"
                for s in state.slots
            )
            or "no slot"
        )
        detail = "; ".join(f"{s.name} holds {s.retained_bytes} bytes of WAL" for s in over)
    return ReadinessCheck(
        id=f"topology.slots.{primary}",
        status=status,
        measured=measured,
        threshold=threshold,
        runbooks=runbooks,
        protects=[
            "every runbook: the primary's disk (pg_wal), so fence_old_primary and the standbys"
            " it feeds (promote_target) have a primary to act on"
        ],
        detail=detail,
    )


def wal_check(wal: WalContinuityResult, runbooks: list[str]) -> ReadinessCheck:
    """The WAL archive is continuous (the backup driver's ``verify_wal``); ``fail`` when a
    segment is missing, ``unknown`` when the driver could not verify."""
    found = wal.wal
    if not wal.verified or found is None:
        status, measured = CheckStatus.UNKNOWN, wal.detail or "the backup driver could not verify"
    else:
        status = CheckStatus.PASS if found.ok else CheckStatus.FAIL
        span = f"{found.first_segment or '?'}..{found.last_segment or '?'}"
        measured = f"{found.segments} segments {span}" + (
            f", {len(found.missing)} missing" if found.missing else ""
        )
    return ReadinessCheck(
        id="backups.wal_continuity",
        status=status,
        measured=measured,
        threshold="every WAL segment archived from the oldest backup's start to the newest segment",
        runbooks=runbooks,
        protects=[
            "drill: restore_backup (recovery stops at the first missing segment)",
            "failover: restore when no standby can be promoted",
        ],
        detail=_wal_detail(found),
    )


def _wal_detail(found: WalVerifyResult | None) -> str:
    if found is None:
        return ""
    unnamed = found.missing and found.missing[0] not in found.detail
    return found.detail + ("; missing: " + ", ".join(found.missing[:10]) if unnamed else "")


_DRILL_FAILED = frozenset({"FAILED", "TERMINATED", "TIMED_OUT", "CANCELED"})
"""Execution statuses of a drill that did not pass (``RUNNING`` and ``CONTINUED_AS_NEW`` are
neither)."""


def drill_check(record: DrillRecordResult, now: datetime) -> ReadinessCheck:
    """The last drill passed within the inventory's ``drill.max_age_h`` (:func:`overdue`, as
    ``hybridops drill status`` decides): ``fail`` when overdue, ``warn`` when a later drill
    failed, ``unknown`` when there is no drill record or it cannot be read."""
    threshold = f"a drill passed within {record.max_age_h:g} h (drill.max_age_h), the last one passing"
    last_failed = record.last_run_status in _DRILL_FAILED
    if not record.listed:
        status, measured = CheckStatus.UNKNOWN, record.detail or "drills could not be listed"
    elif record.runs == 0:
        status, measured = CheckStatus.UNKNOWN, "no drill record"
    elif overdue(record.last_passed_at, record.max_age_h, now):
        status = CheckStatus.FAIL
        measured = "overdue: " + (
            f"last passed {_age_h(record.last_passed_at, now)} ago ({record.last_passed_id})"
            if record.last_passed_at
            else "no drill passed"
        )
    else:
        status = CheckStatus.WARN if last_failed else CheckStatus.PASS
        measured = f"last passed {_age_h(record.last_passed_at, now)} ago ({record.last_passed_id})"
    if record.listed and record.last_run_id and record.last_run_id != record.last_passed_id:
        measured += f"; newest {record.last_run_id}: {record.last_run_status}"
    return ReadinessCheck(
        id="drills.last_passed",
        status=status,
        measured=measured,
        threshold=threshold,
        runbooks=[DRILL],
        protects=["drill: the proof that restore_backup and verify_restore meet the RTO and RPO objectives"],
    )


def _age_h(at: datetime | None, now: datetime) -> str:
    return "?" if at is None else f"{max((now - at).total_seconds(), 0.0) / 3600:.1f} h"


def schedule_check(schedules: SchedulesResult, runbooks: list[str]) -> ReadinessCheck:
    """The Temporal Schedules the runbooks created exist and none is paused: ``fail`` when one
    is paused, ``warn`` when there is no drill schedule (drills then run only by hand),
    ``unknown`` when they cannot be listed or one cannot be described."""
    paused = [s.id for s in schedules.schedules if s.paused]
    unread = [s for s in schedules.schedules if s.error]
    drills = [s.id for s in schedules.schedules if s.id.startswith(SCHEDULE_PREFIX)]
    if not schedules.listed:
        status, measured = CheckStatus.UNKNOWN, schedules.detail or "schedules could not be listed"
    elif paused:
        status, measured = CheckStatus.FAIL, "paused: " + ", ".join(paused)
    elif unread:
        status, measured = CheckStatus.UNKNOWN, "not described: " + ", ".join(s.id for s in unread)
    elif not drills:
        status, measured = CheckStatus.WARN, "no drill schedule"
    else:
        status = CheckStatus.PASS
        measured = ", ".join(s.id for s in schedules.schedules) + ": running"
    return ReadinessCheck(
        id="temporal.schedules",
        status=status,
        measured=measured,
        threshold=f"a drill schedule ({SCHEDULE_PREFIX}*) and every runbook schedule unpaused",
        runbooks=runbooks,
        protects=["drill: every scheduled run", "readiness: the scheduled evaluation (hybridops-readiness)"],
        detail="; ".join(f"{s.id}: {s.error}" for s in unread),
    )


def failover_request(topology: Topology) -> DecisionRequest | None:
    """The question ``decision.target`` asks: a failover from the acting primary, target auto,
    as ``hybridops decide`` asks it; None when there is no one primary to fail over from (a
    split brain, or no server to name)."""
    current = None if topology.has(FindingKind.SPLIT_BRAIN) else topology.acting_primary
    if current is None:
        return None
    return DecisionRequest(
        decision_type=DecisionType.FAILOVER, current_primary=current, target=TargetChoice.AUTO
    )


def decision_check(
    plan: PlanResult, topology: Topology, signals: SignalsResult | None, detail: str = ""
) -> ReadinessCheck:
    """The policy would choose a failover target now: the decide phase of a failover (and of
    ``hybridops decide``), :func:`hybridops.decision.decide`, on the same readings; ``fail``
    when it holds, ``unknown`` when there is no one primary or the signals could not be read."""
    request = failover_request(topology)
    common: dict[str, Any] = {
        "id": "decision.target",
        "threshold": "a target chosen (failover, target auto)",
        "runbooks": _failovers(plan),
        "protects": ["failover: decide (a run holds with PolicyHold when no target is eligible)"],
    }
    if request is None:
        return ReadinessCheck(
            status=CheckStatus.UNKNOWN, measured="no one primary to fail over from", detail=detail, **common
        )
    if signals is None:
        return ReadinessCheck(
            status=CheckStatus.UNKNOWN, measured="signals not read", detail=detail, **common
        )
    decision, _ = decide(request, plan, topology.servers, signals)
    if decision.target is None:
        return ReadinessCheck(
            status=CheckStatus.FAIL,
            measured=f"hold: no target (from {request.current_primary})",
            detail=hold_reason(request, decision.candidates),
            **common,
        )
    return ReadinessCheck(
        status=CheckStatus.PASS,
        measured=f"{decision.target} ({decision.dr_mode.value}, from {request.current_primary})",
        detail="; ".join(decision.rationale),
        **common,
    )


def capacity_checks(plan: PlanResult, signals: SignalsResult | None) -> list[ReadinessCheck]:
    """Each cloud target's free capacity (the signals' ``capacity``, free nodes) against what a
    failover there needs: the policy's ``failover.nodes`` for it, else its
    ``constraints.min_capacity``; none for a target the policy asks nothing of. ``unknown``
    when no source reports it. The pool's current nodes are not counted: an upper bound."""
    policy = plan.policy
    if policy is None:
        return []
    values = {c.site: c.values for c in signals.snapshot.candidates} if signals else {}
    checks = []
    for site in plan.sites:
        if site.cloud is None:
            continue
        sized = policy.failover.for_target(site.name, site.cloud.value)
        need = sized if sized is not None else policy.constraints.min_capacity
        if need is None:
            continue
        source = "policy failover.nodes" if sized is not None else "constraints.min_capacity"
        free = values.get(site.name, {}).get(SignalName.CAPACITY)
        common: dict[str, Any] = {
            "id": f"capacity.{site.name}",
            "threshold": f">= {need:g} free nodes ({source})",
            "runbooks": [_to(plan, site.name, None)],
            "protects": [
                "failover: decide (a target below min_capacity is not eligible)",
                "failover: prepare_target (the node pool scaled up for the failover)",
            ],
        }
        if free is None or free.value != free.value:  # missing or nan
            why = signals and "; ".join(signals.snapshot.errors)
            checks.append(
                ReadinessCheck(
                    status=CheckStatus.UNKNOWN,
                    measured="no source reports capacity",
                    detail=why or "",
                    **common,
                )
            )
            continue
        ok = free.value >= need
        checks.append(
            ReadinessCheck(
                status=CheckStatus.PASS if ok else CheckStatus.FAIL,
                measured=f"{free.value:g} free nodes ({free.source})",
                detail="" if ok else f"a failover to {site.name} needs {need:g}",
                **common,
            )
        )
    return checks


@dataclass(frozen=True)
class MoreReadings:
    """The readings of the checks added behind patch ``readiness-more-checks``: a history
    recorded before it has none, and its result has none of their checks."""

    wal: WalContinuityResult
    drills: DrillRecordResult
    schedules: SchedulesResult
    signals: SignalsResult | None
    """None when ``gather_signals`` failed (``signals_error`` says why)."""
    signals_error: str = ""


def more_checks(
    plan: PlanResult, topology: Topology, more: MoreReadings, inp: ReadinessInput, now: datetime
) -> list[ReadinessCheck]:
    """The checks of :class:`MoreReadings`, and the primary's slots (read by every assessment,
    checked from the patch on)."""
    names = runbook_names(plan)
    slots = slot_check(topology, inp.slot_retained_max_bytes, names)
    return [
        *([slots] if slots else []),
        wal_check(more.wal, [DRILL, *_failovers(plan)]),
        drill_check(more.drills, now),
        schedule_check(more.schedules, [DRILL]),
        decision_check(plan, topology, more.signals, more.signals_error),
        *capacity_checks(plan, more.signals),
    ]


CLOUD_MONITORING: dict[str, str] = {"azure": "azure_monitor", "gcp": "gcp_monitoring"}
"""The signals source whose reads are an authenticated read of each cloud's API (its
monitoring), by cloud: the reading readiness already makes."""
_NO_DATA = ("no data point", "no point in the last")
"""A monitoring error that is an answer (the API took the credentials, the metric had no
point): the API answered."""
TERRAFORM_STEPS = (
    "failover: prepare_target, release_target; burst: scale_pool (Terraform plan and apply take this lock)"
)


@dataclass(frozen=True)
class ApiReadings:
    """The readings of the checks added behind patch ``readiness-api-checks``: a history
    recorded before it has none, and its result none of their checks."""

    dns: DnsProbeResult | None
    """None when ``probe_dns`` could not run (``dns_error`` says why)."""
    terraform: TerraformStateResult | None
    """None when ``terraform_state`` could not run (``terraform_error`` says why)."""
    dns_error: str = ""
    terraform_error: str = ""


def _changers(plan: PlanResult) -> list[str]:
    """The runbooks that change production (every one but the drill, which never touches
    production DNS or the clouds' pools)."""
    return [n for n in runbook_names(plan) if n != DRILL]


def dns_api_check(plan: PlanResult, api: ApiReadings) -> ReadinessCheck:
    """The DNS provider answers an authenticated read of the zone (``probe_dns``, on the DNS
    queue): ``fail`` when it refuses the credentials or does not answer, ``unknown`` when the
    probe could not run."""
    probe = api.dns
    common: dict[str, Any] = {
        "id": "credentials.dns_api",
        "threshold": "the zone answers an authenticated read (DNS driver probe)",
        "runbooks": _changers(plan),
        "protects": [SECRET_STEPS["dns"]],
    }
    if probe is None:
        return ReadinessCheck(
            status=CheckStatus.UNKNOWN, measured="not probed", detail=api.dns_error, **common
        )
    took = f" in {probe.seconds * 1000:.0f} ms" if probe.seconds is not None else ""
    if not probe.answered:
        return ReadinessCheck(
            status=CheckStatus.FAIL,
            measured=f"{probe.driver} {probe.zone}: {probe.error_type or 'no answer'}{took}",
            detail=probe.error,
            **common,
        )
    serial = f", serial {probe.serial}" if probe.serial is not None else ""
    return ReadinessCheck(
        status=CheckStatus.PASS,
        measured=f"{probe.driver} {probe.zone}: answered ({probe.zone_id}{serial}){took}",
        detail=probe.detail,
        **common,
    )


def cloud_api_checks(
    plan: PlanResult, signals: SignalsResult | None, signals_error: str
) -> list[ReadinessCheck]:
    """Per cloud of the inventory's targets: its API answered the authenticated read readiness
    already makes, the monitoring source's (:data:`CLOUD_MONITORING`) in ``gather_signals``.
    ``pass`` when it returned a value or answered with no data point; ``fail`` when each of its
    reads failed otherwise (refused, unreachable); ``unknown`` when no such source read that
    cloud (none configured, or no signals gathered): nothing else in readiness holds the
    cloud's credentials."""
    clouds = sorted({s.cloud.value for s in plan.sites if s.cloud is not None})
    out = []
    for cloud in clouds:
        source = CLOUD_MONITORING.get(cloud, "")
        sites = [s.name for s in plan.sites if s.cloud is not None and s.cloud.value == cloud]
        common: dict[str, Any] = {
            "id": f"credentials.cloud_api.{cloud}",
            "threshold": f"the {cloud} API answers an authenticated read"
            f" ({source or 'its monitoring'} signals)",
            "runbooks": [r for r in _changers(plan) if any(r.endswith(f" {site}") for site in sites)],
            "protects": [
                f"failover to {', '.join(sites)}: decide (its signals), prepare_target (the cloud's cluster)"
            ],
        }
        if signals is None:
            out.append(
                ReadinessCheck(
                    status=CheckStatus.UNKNOWN,
                    measured="signals not read",
                    detail=signals_error,
                    **common,
                )
            )
            continue
        values = [
            name
            for c in signals.snapshot.candidates
            for name, signal in c.values.items()
            if signal.source == source
        ]
        errors = [
            e.removeprefix(f"{source}: ") for e in signals.snapshot.errors if e.startswith(f"{source}: ")
        ]
        empty = [e for e in errors if any(n in e for n in _NO_DATA)]
        refused = [e for e in errors if e not in empty]
        if values or empty:
            status = CheckStatus.PASS
            measured = f"{source}: answered, {len(values)} signals" + (
                f", {len(empty)} without a data point" if empty else ""
            )
        elif refused:
            status, measured = CheckStatus.FAIL, f"{source}: {len(refused)} reads failed"
        else:
            status = CheckStatus.UNKNOWN
            measured = (
                f"no {source} source reads {cloud}: readiness makes no authenticated read of its API"
                if source
                else f"no monitoring source for {cloud}"
            )
        out.append(
            ReadinessCheck(status=status, measured=measured, detail="; ".join(refused)[:500], **common)
        )
    return out


def terraform_state_checks(plan: PlanResult, api: ApiReadings) -> list[ReadinessCheck]:
    """Per Terraform root of the infra driver: its state is not locked (``terraform_state``, on
    the infra queue): ``fail`` when a process holds the lock (who and since when, from
    Terraform's lock info), ``warn`` for a lock info file left with no lock held, ``unknown``
    for a remote backend or when the reading failed; none for a driver without Terraform."""
    common: dict[str, Any] = {
        "threshold": "not locked (the next plan or apply can take the state lock)",
        "runbooks": _changers(plan),
        "protects": [TERRAFORM_STEPS],
    }
    if api.terraform is None:
        return [
            ReadinessCheck(
                id="credentials.terraform_state",
                status=CheckStatus.UNKNOWN,
                measured="not read",
                detail=api.terraform_error,
                **common,
            )
        ]
    out = []
    for lock in api.terraform.locks:
        where = f"{lock.backend} {lock.state_file or lock.workspace}".strip()
        held = ", ".join(
            p
            for p in (
                f"by {lock.who}" if lock.who else "",
                f"since {lock.created}" if lock.created else "",
                lock.operation,
                f"lock {lock.lock_id}" if lock.lock_id else "",
            )
            if p
        )
        if lock.status == StateLockStatus.LOCKED:
            status, measured = CheckStatus.FAIL, f"{where}: locked" + (f" ({held})" if held else "")
        elif lock.status == StateLockStatus.STALE:
            status = CheckStatus.WARN
            measured = f"{where}: stale lock info, no lock held" + (f" ({held})" if held else "")
        elif lock.status == StateLockStatus.FREE:
            status, measured = CheckStatus.PASS, f"{where}: not locked"
        else:
            status, measured = CheckStatus.UNKNOWN, f"{where}: not checked"
        out.append(
            ReadinessCheck(
                id=f"credentials.terraform_state.{lock.root}",
                status=status,
                measured=measured,
                detail=lock.note,
                **common,
            )
        )
    return out


def api_checks(plan: PlanResult, api: ApiReadings, more: MoreReadings | None) -> list[ReadinessCheck]:
    """The checks of :class:`ApiReadings`, and the clouds' APIs from the signals read behind
    ``readiness-more-checks`` (``unknown`` without them)."""
    return [
        dns_api_check(plan, api),
        *cloud_api_checks(
            plan,
            more.signals if more else None,
            more.signals_error if more else "signals not read",
        ),
        *terraform_state_checks(plan, api),
    ]


def evaluate(
    plan: PlanResult,
    topology: Topology,
    secrets: SecretsResult,
    queues: QueuesResult,
    backups: BackupAgeResult,
    inp: ReadinessInput,
    now: datetime,
    workflow_id: str = "",
    more: MoreReadings | None = None,
    api: ApiReadings | None = None,
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
        *(more_checks(plan, topology, more, inp, now) if more else []),
        *(api_checks(plan, api, more) if api else []),
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
