"""The readiness workflow's own steps (workflows/readiness.py), each read-only: resolve every
secret reference (reporting only whether it resolves), describe task queues, list backups.
The topology is read by the site steps every runbook uses (``plan_failover``,
``assess_sites``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from temporalio.client import ScheduleActionStartWorkflow

from activities.common import Activities, step_activity
from drivers.secrets import resolve_reference
from drivers.terraform.state import StateLock
from hybridops.client import queue_pollers
from hybridops.constants import READINESS_SCHEDULE_ID, ActivityName, WorkflowType
from hybridops.contracts.readiness import (
    SEVERITY,
    BackupAgeInput,
    BackupAgeResult,
    CheckStatus,
    DnsProbeInput,
    DnsProbeResult,
    DrillRecordInput,
    DrillRecordResult,
    LatestReadinessInput,
    LatestReadinessResult,
    QueuePollers,
    QueuesInput,
    QueuesResult,
    ReadinessResult,
    ScheduleReading,
    SchedulesInput,
    SchedulesResult,
    SecretCheck,
    SecretsInput,
    SecretsResult,
    StateLockReading,
    StateLockStatus,
    TerraformStateInput,
    TerraformStateResult,
    WalContinuityInput,
    WalContinuityResult,
)
from hybridops.drills import SCHEDULE_PREFIX, drill_status
from hybridops.errors import ConfigError, HybridOpsError
from hybridops.secrets import references


class ReadinessActivities(Activities):
    """Read-only steps of the readiness workflow. Built once per worker with its client (the
    task queue descriptions are Temporal's)."""

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.check_secrets,
            self.describe_queues,
            self.newest_backup,
            self.latest_readiness,
            self.verify_wal_archive,
            self.last_drill,
            self.describe_schedules,
            self.probe_dns,
            self.terraform_state,
        ]

    @step_activity(ActivityName.CHECK_SECRETS)
    async def check_secrets(self, inp: SecretsInput) -> SecretsResult:
        """Read-only: whether each secret reference of the inventory resolves here. The value
        is dropped at once; an error names the reference, never a value."""
        out = []
        for key, ref in references(self.inventory):
            scheme = ref.partition(":")[0]
            try:
                resolve_reference(ref)
            except Exception as err:  # a store's SDK may raise its own: the reference is unusable
                out.append(SecretCheck(key=key, scheme=scheme, resolves=False, error=str(err)))
            else:
                out.append(SecretCheck(key=key, scheme=scheme, resolves=True))
        bad = sum(not s.resolves for s in out)
        return SecretsResult(secrets=out, detail=f"{len(out)} references, {bad} do not resolve")

    @step_activity(ActivityName.DESCRIBE_QUEUES)
    async def describe_queues(self, inp: QueuesInput) -> QueuesResult:
        """Read-only: who polls each of ``inp.queues`` for activities, as Temporal describes
        the queue (a dead worker stays listed a while, its last poll growing older)."""
        if self.client is None:
            raise ConfigError("describing task queues needs a Temporal client (a worker's)")
        out = []
        for queue in inp.queues:
            try:
                pollers = await queue_pollers(self.client, queue)
            except Exception as err:  # an RPC error: the queue's state is unknown, not bad
                out.append(QueuePollers(queue=queue, error=str(err)[:200]))
                continue
            last = min((p.seconds_ago for p in pollers), default=None)
            out.append(QueuePollers(queue=queue, pollers=len(pollers), last_poll_s=last))
        return QueuesResult(queues=out)

    @step_activity(ActivityName.NEWEST_BACKUP)
    async def newest_backup(self, inp: BackupAgeInput) -> BackupAgeResult:
        """Read-only: the newest backup the backup driver lists; ``listed`` False (and why)
        when it cannot list them."""
        try:
            backups = await self.drivers.backup.list()
        except (HybridOpsError, OSError) as err:
            return BackupAgeResult(listed=False, detail=f"cannot list backups: {err}"[:300])
        if not backups:
            return BackupAgeResult(listed=True, detail="no backup")
        newest = max(backups, key=lambda b: b.finished_at or b.started_at or b.name)
        at = newest.finished_at or newest.started_at
        return BackupAgeResult(
            listed=True, count=len(backups), newest=newest.name, newest_at=at, detail=newest.name
        )

    @step_activity(ActivityName.VERIFY_WAL_ARCHIVE)
    async def verify_wal_archive(self, inp: WalContinuityInput) -> WalContinuityResult:
        """Read-only: the backup driver's ``verify_wal`` (is the WAL archive continuous?);
        ``verified`` False (and why) when the driver cannot check."""
        try:
            wal = await self.drivers.backup.verify_wal()
        except (HybridOpsError, OSError) as err:
            return WalContinuityResult(verified=False, detail=f"cannot verify the WAL archive: {err}"[:300])
        return WalContinuityResult(verified=True, wal=wal, detail=wal.detail[:300])

    @step_activity(ActivityName.LAST_DRILL)
    async def last_drill(self, inp: DrillRecordInput) -> DrillRecordResult:
        """Read-only: the recent drills on this inventory's control queue, as ``hybridops drill
        status`` lists them (Temporal's visibility); ``listed`` False when it cannot."""
        if self.client is None:
            raise ConfigError("listing drills needs a Temporal client (a worker's)")
        max_age_h = self.inventory.drill.max_age_h
        try:
            st = await drill_status(self.client, self.inventory)
        except Exception as err:  # an RPC error: the drill record is unknown, not bad
            return DrillRecordResult(
                listed=False, max_age_h=max_age_h, detail=f"cannot list drills: {err}"[:300]
            )
        return DrillRecordResult(
            listed=True,
            runs=len(st.runs),
            last_passed_at=st.last_passed_at,
            last_passed_id=st.last_passed_id,
            last_run_at=st.last_run_at,
            last_run_id=st.last_run_id,
            last_run_status=st.last_run_status,
            max_age_h=max_age_h,
            detail=f"{len(st.runs)} drills listed",
        )

    @step_activity(ActivityName.DESCRIBE_SCHEDULES)
    async def describe_schedules(self, inp: SchedulesInput) -> SchedulesResult:
        """Read-only: the drill schedules (``drill-*``) and the readiness schedule that start
        their workflow on ``inp.queue``, each described (paused or not). Listing is Temporal's
        visibility (a schedule just created may take a moment to be listed)."""
        if self.client is None:
            raise ConfigError("describing schedules needs a Temporal client (a worker's)")
        out = []
        try:
            ids = [
                e.id
                async for e in await self.client.list_schedules()
                if e.id.startswith(SCHEDULE_PREFIX) or e.id == READINESS_SCHEDULE_ID
            ]
        except Exception as err:  # an RPC error: the schedules' state is unknown, not bad
            return SchedulesResult(listed=False, detail=f"cannot list schedules: {err}"[:300])
        for sid in sorted(ids):
            try:
                desc = await self.client.get_schedule_handle(sid).describe()
            except Exception as err:  # deleted since it was listed, or an RPC error
                out.append(ScheduleReading(id=sid, error=str(err)[:200]))
                continue
            action = desc.schedule.action
            if isinstance(action, ScheduleActionStartWorkflow) and action.task_queue != inp.queue:
                continue  # another deployment's, on the same namespace
            state = desc.schedule.state
            out.append(ScheduleReading(id=sid, paused=state.paused, note=state.note or ""))
        return SchedulesResult(listed=True, schedules=out, detail=f"{len(out)} schedules")

    @step_activity(ActivityName.PROBE_DNS)
    async def probe_dns(self, inp: DnsProbeInput) -> DnsProbeResult:
        """Read-only: the DNS driver's ``probe`` of the zone holding the inventory's record (an
        authenticated read: GetHostedZone, Zones Get, managedZones.get, a TSIG-signed SOA
        query). A refusal or no answer is a reading (``answered`` False, the error's class
        and message, never a credential), not a failed step: the check then fails at once
        instead of being retried into an unknown."""
        dns = self.inventory.dns
        started = time.monotonic()
        try:
            probe = await self.drivers.dns.probe(dns.record)
        except (HybridOpsError, OSError) as err:
            return DnsProbeResult(
                driver=dns.driver.value,
                zone=dns.zone,
                error=str(err)[:300],
                error_type=type(err).__name__,
                seconds=round(time.monotonic() - started, 3),
                detail=f"{dns.driver.value} {dns.zone}: {type(err).__name__}",
            )
        return DnsProbeResult(
            driver=dns.driver.value,
            zone=probe.zone,
            answered=True,
            zone_id=probe.zone_id,
            serial=probe.serial,
            seconds=round(time.monotonic() - started, 3),
            detail=probe.detail,
        )

    @step_activity(ActivityName.TERRAFORM_STATE)
    async def terraform_state(self, inp: TerraformStateInput) -> TerraformStateResult:
        """Read-only: the infra driver's ``state_locks`` (each Terraform root's state lock,
        read without Terraform and without taking it); none for the lab's driver."""
        locks = await self.drivers.infra.state_locks()
        return TerraformStateResult(
            driver=self.inventory.infra.driver.value,
            locks=[_reading(lock) for lock in locks],
            detail=f"{len(locks)} roots",
        )

    @step_activity(ActivityName.LATEST_READINESS)
    async def latest_readiness(self, inp: LatestReadinessInput) -> LatestReadinessResult:
        """Read-only: the newest completed ``ReadinessWorkflow`` on ``inp.queue`` (Temporal's
        visibility, then its result) and its checks that matter to a failover to
        ``inp.target``. ``found`` False when there is none (no Schedule, never run)."""
        if self.client is None:
            raise ConfigError("reading the latest readiness needs a Temporal client (a worker's)")
        runbook = f"failover to {inp.target}"
        query = (
            f"WorkflowType = '{WorkflowType.READINESS.value}' AND TaskQueue = '{inp.queue}'"
            " AND ExecutionStatus = 'Completed'"
        )
        newest = None
        async for execution in self.client.list_workflows(query, limit=20):
            if execution.close_time is not None and (
                newest is None or newest.close_time is None or execution.close_time > newest.close_time
            ):
                newest = execution
        if newest is None:
            none = "no readiness evaluation on this queue"
            return LatestReadinessResult(
                runbook=runbook,
                detail=none,
                per_target=[
                    LatestReadinessResult(runbook=f"failover to {t}", detail=none) for t in inp.targets
                ],
            )
        handle = self.client.get_workflow_handle(newest.id, run_id=newest.run_id, result_type=ReadinessResult)
        result: ReadinessResult = await handle.result()
        checked = result.checked_at or newest.close_time
        age = (datetime.now(UTC) - checked).total_seconds() if checked else None
        out = _for_runbook(result, runbook, newest.id, checked, age, inp.max_age_s)
        out.per_target = [
            _for_runbook(result, f"failover to {t}", newest.id, checked, age, inp.max_age_s)
            for t in inp.targets
        ]
        return out


def _for_runbook(
    result: ReadinessResult,
    runbook: str,
    workflow_id: str,
    checked: datetime | None,
    age: float | None,
    max_age_s: float,
) -> LatestReadinessResult:
    """What one evaluation says of ``runbook``: its checks' worst status and the failing ones."""
    mine = [c for c in result.checks if runbook in c.runbooks]
    worst = max((c.status for c in mine), key=SEVERITY.__getitem__, default=CheckStatus.UNKNOWN)
    failing = [c for c in mine if c.status == CheckStatus.FAIL]
    stale = age is None or age > max_age_s
    return LatestReadinessResult(
        found=True,
        workflow_id=workflow_id,
        checked_at=checked,
        age_s=round(age, 1) if age is not None else None,
        stale=stale,
        runbook=runbook,
        status=worst,
        failing=failing,
        detail=f"{runbook}: {worst.value} ({len(failing)} failing)"
        + (f", {age:.0f} s old" if age is not None else "")
        + (" (stale)" if stale else ""),
    )


def _reading(lock: StateLock) -> StateLockReading:
    return StateLockReading(
        root=lock.root,
        workspace=lock.workspace,
        backend=lock.backend,
        status=StateLockStatus(lock.state.value),
        state_file=lock.state_file,
        lock_id=lock.lock_id,
        who=lock.who,
        operation=lock.operation,
        created=lock.created,
        note=lock.note,
    )
