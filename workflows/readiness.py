"""``ReadinessWorkflow``: every precondition every runbook would check, evaluated now (issue 20).

Read-only by construction: it runs only the steps of :data:`READ_ONLY_STEPS` (the plan and
assess steps every runbook starts with, and readiness' own readings), through
:meth:`ReadinessWorkflow._read`, which refuses any other; a lab test reads the history and
finds no other activity type in it. No lease, no approval, no evidence folder: it changes
nothing, so there is nothing to undo or to prove. Its result (``ReadinessResult``) is the
checks, computed by :func:`hybridops.readiness.evaluate` on the recorded readings.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from hybridops.constants import TaskQueue
    from hybridops.contracts.decision import SignalsResult
    from hybridops.contracts.readiness import (
        BackupAgeInput,
        BackupAgeResult,
        CheckStatus,
        DnsProbeInput,
        DnsProbeResult,
        DrillRecordInput,
        DrillRecordResult,
        QueuesInput,
        QueuesResult,
        ReadinessCheck,
        ReadinessInput,
        ReadinessResult,
        SchedulesInput,
        SchedulesResult,
        SecretsInput,
        SecretsResult,
        TerraformStateInput,
        TerraformStateResult,
        WalContinuityInput,
        WalContinuityResult,
    )
    from hybridops.contracts.sites import AssessInput, AssessResult, PlanInput, PlanResult
    from hybridops.decision import signal_targets, topology_of
    from hybridops.readiness import (
        ApiReadings,
        MoreReadings,
        evaluate,
        failover_request,
        queues_used,
        runbook_names,
        worst,
    )
    from workflows import steps
    from workflows.steps import In, Out

READ_ONLY_STEPS: tuple[steps.Step[Any, Any], ...] = (
    steps.PLAN,
    steps.ASSESS,
    steps.READY_SECRETS,
    steps.READY_QUEUES,
    steps.READY_BACKUPS,
    steps.READY_WAL,
    steps.READY_DRILLS,
    steps.READY_SCHEDULES,
    steps.SIGNALS,
    steps.READY_DNS_API,
    steps.READY_TF_STATE,
)
"""The only steps a readiness run may schedule: each reads and changes nothing."""
READ_ONLY = frozenset(s.activity.value for s in READ_ONLY_STEPS)
"""Their activity types (what a history records)."""
START_WITHIN = timedelta(seconds=20)
"""How long a queued reading may wait for a worker: nobody polling its queue is a finding
(the queue check says so), not a reason to wait for ever."""
MORE_CHECKS_PATCH = "readiness-more-checks"
"""Runs from here on also read the WAL archive, the drills, the schedules and the signals
(checks ``backups.wal_continuity``, ``drills.last_passed``, ``temporal.schedules``,
``decision.target``; ``topology.slots.<primary>`` from the assessment): histories recorded
before scheduled none of these steps."""
API_CHECKS_PATCH = "readiness-api-checks"
"""Runs from here on also probe the DNS API (``probe_dns``, on the DNS queue) and read the
Terraform states' locks (``terraform_state``, on the infra queue): checks
``credentials.dns_api``, ``credentials.terraform_state.<root>`` and, from the signals already
read, ``credentials.cloud_api.<cloud>``. Histories recorded before scheduled neither step."""


@workflow.defn(name="ReadinessWorkflow")
class ReadinessWorkflow:
    """Reads the topology, the credentials, the drivers' capabilities, the task queues' pollers
    and the newest backup, and returns every check (``hybridops ready``; a Schedule runs it every
    30 minutes). Its input ``{}`` works from the Temporal UI."""

    def __init__(self) -> None:
        self._where = steps.Where()

    @workflow.run
    async def run(self, inp: ReadinessInput) -> ReadinessResult:
        wf_id = workflow.info().workflow_id
        plan = await self._read(steps.PLAN, PlanInput())
        self._where = steps.Where(
            plan.placement,
            plan.queue_suffix,
            plan.site_queues or None,
            heartbeat_s=(
                plan.policy.detection.worker_heartbeat_timeout_s if plan.policy else steps.HEARTBEAT_TIMEOUT_S
            ),
        )
        names = runbook_names(plan)
        first = asyncio.gather(
            self._try(steps.ASSESS, AssessInput(sites=[s.name for s in plan.sites])),
            self._try(steps.READY_SECRETS, SecretsInput()),
            self._try(steps.READY_QUEUES, QueuesInput(queues=list(queues_used(plan)))),
            self._try(steps.READY_BACKUPS, BackupAgeInput()),
        )
        # Scheduled beside the first readings, so they add one round trip (the signals'), not four.
        extra = (
            asyncio.gather(
                self._try(steps.READY_WAL, WalContinuityInput()),
                self._try(steps.READY_DRILLS, DrillRecordInput()),
                self._try(
                    steps.READY_SCHEDULES, SchedulesInput(queue=TaskQueue.CONTROL.value + plan.queue_suffix)
                ),
            )
            if workflow.patched(MORE_CHECKS_PATCH)
            else None
        )
        apis = (
            asyncio.gather(
                self._try(steps.READY_DNS_API, DnsProbeInput()),
                self._try(steps.READY_TF_STATE, TerraformStateInput()),
            )
            if workflow.patched(API_CHECKS_PATCH)
            else None
        )
        assessed, secrets, queues, backups = await first
        more = await self._more(plan, assessed, extra) if extra is not None else None
        api = _api(*await apis) if apis is not None else None
        result = self._result(plan, inp, wf_id, names, assessed, secrets, queues, backups, more, api)
        export(result)
        return result

    def _result(
        self,
        plan: PlanResult,
        inp: ReadinessInput,
        wf_id: str,
        names: list[str],
        assessed: AssessResult | str,
        secrets: SecretsResult | str,
        queues: QueuesResult | str,
        backups: BackupAgeResult | str,
        more: MoreReadings | None = None,
        api: ApiReadings | None = None,
    ) -> ReadinessResult:
        now = workflow.now()
        unread: list[ReadinessCheck] = []
        for what, reading in (("topology", assessed), ("credentials", secrets), ("temporal", queues)):
            if isinstance(reading, str):
                unread.append(
                    ReadinessCheck(
                        id=f"{what}.read",
                        status=CheckStatus.UNKNOWN,
                        measured="could not be read",
                        runbooks=names,
                        detail=reading,
                    )
                )
        states = assessed.states if isinstance(assessed, AssessResult) else None
        result = evaluate(
            plan,
            topology_of(plan, states or []),
            secrets if isinstance(secrets, SecretsResult) else SecretsResult(),
            queues if isinstance(queues, QueuesResult) else QueuesResult(),
            backups
            if isinstance(backups, BackupAgeResult)
            else BackupAgeResult(listed=False, detail=f"cannot list backups: {backups}"),
            inp,
            now,
            wf_id,
            more,
            api,
        )
        if states is None:  # no reading of the servers: no verdict on them either
            result.checks = [c for c in result.checks if not c.id.startswith("topology.")]
        result.checks = unread + result.checks
        result.status = worst([c.status for c in result.checks])
        result.runbooks = {n: worst([c.status for c in result.checks if n in c.runbooks]) for n in names}
        return result

    async def _more(
        self,
        plan: PlanResult,
        assessed: AssessResult | str,
        extra: asyncio.Future[
            tuple[WalContinuityResult | str, DrillRecordResult | str, SchedulesResult | str]
        ],
    ) -> MoreReadings:
        """The readings of patch :data:`MORE_CHECKS_PATCH`; then the signals of a failover's
        decide phase, gathered for the candidates of the failover ``decision.target`` asks about
        (none: no one primary, nothing to gather)."""
        wal, drills, schedules = await extra
        states = assessed.states if isinstance(assessed, AssessResult) else []
        request = failover_request(topology_of(plan, states))
        signals: SignalsResult | str | None = None
        if request is not None:
            signals = await self._try(steps.SIGNALS, signal_targets(request, plan.sites))
        return MoreReadings(
            wal=wal
            if isinstance(wal, WalContinuityResult)
            else WalContinuityResult(detail=f"cannot verify the WAL archive: {wal}"),
            drills=drills
            if isinstance(drills, DrillRecordResult)
            else DrillRecordResult(detail=f"cannot list drills: {drills}"),
            schedules=schedules
            if isinstance(schedules, SchedulesResult)
            else SchedulesResult(detail=f"cannot list schedules: {schedules}"),
            signals=signals if isinstance(signals, SignalsResult) else None,
            signals_error=signals if isinstance(signals, str) else "",
        )

    async def _try(self, step: steps.Step[In, Out], arg: In) -> Out | str:
        """The step's result, or why it could not be read (the check is then ``unknown``)."""
        try:
            return await self._read(step, arg)
        except Exception as err:  # ActivityError: a reading that failed is a finding
            return steps.describe_error(err)

    async def _read(self, step: steps.Step[In, Out], arg: In) -> Out:
        """Run a read-only step: as a local activity (colocated, or a plan step), else queued,
        waiting at most :data:`START_WITHIN` for a worker to take it."""
        if step not in READ_ONLY_STEPS:
            raise ApplicationError(f"{step.activity} is not a read-only step", non_retryable=True)
        where = self._where
        if where.placement == "colocated" or step.local_only:
            return await steps.run_step(step, arg, where)
        return await workflow.execute_activity(
            step.activity,
            arg,
            result_type=step.result,
            task_queue=where.queue_of(step, arg),
            start_to_close_timeout=step.timeout,
            schedule_to_start_timeout=START_WITHIN,
            retry_policy=step.retry,
            heartbeat_timeout=timedelta(seconds=where.heartbeat_s),
        )


def _api(dns: DnsProbeResult | str, terraform: TerraformStateResult | str) -> ApiReadings:
    """The readings of patch :data:`API_CHECKS_PATCH`, a failed one as the reason it failed."""
    return ApiReadings(
        dns=dns if isinstance(dns, DnsProbeResult) else None,
        terraform=terraform if isinstance(terraform, TerraformStateResult) else None,
        dns_error=dns if isinstance(dns, str) else "",
        terraform_error=terraform if isinstance(terraform, str) else "",
    )


READY_GAUGE = "hybridops_readiness_runbook_ready"
FAILING_GAUGE = "hybridops_readiness_check_failing"


def export(result: ReadinessResult) -> None:
    """The run's verdicts as gauges of the worker's metrics (the SDK's workflow metric meter:
    nothing is recorded while a history replays): one per runbook (1 ready, 0 a check fails)
    and one per check (1 while it fails). The alert HybridOpsRunbookNotReady reads the first."""
    meter = workflow.metric_meter()
    ready = meter.create_gauge(READY_GAUGE, "1: no readiness check of the runbook fails; 0: one does.")
    for name, status in result.runbooks.items():
        ready.set(0 if status == CheckStatus.FAIL else 1, {"runbook": name})
    failing = meter.create_gauge(FAILING_GAUGE, "1 while the readiness check fails, else 0.")
    for check in result.checks:
        failing.set(1 if check.status == CheckStatus.FAIL else 0, {"check": check.id})
