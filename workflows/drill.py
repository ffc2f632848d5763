"""``DrillWorkflow``: a DR drill that never touches production.

plan -> [take a backup] -> checkpoint -> restore the backup into a scratch directory -> start
it on the scratch address -> verify (it answers, the writer's table is there, its newest row)
-> RTO and RPO against the objectives -> tear the scratch server down (whatever happened) ->
evidence.

The drill reads backups and the WAL archive; it never connects to the primary or the standbys
(unless asked to take a fresh backup first) and never changes DNS.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from hybridops.constants import WorkflowType
    from hybridops.contracts.base import Phase, RunStatus
    from hybridops.contracts.drill import (
        DrillInput,
        DrillPlan,
        DrillPlanInput,
        DrillResult,
        RestoreInput,
        ScratchInput,
        SloCheck,
        TakeBackupInput,
        TeardownInput,
        VerifyRestoreInput,
    )
    from workflows import steps
    from workflows.runbook import RunbookBase
    from workflows.saga import Saga


@workflow.defn(name=WorkflowType.DRILL.value, failure_exception_types=[ValidationError])
class DrillWorkflow(RunbookBase):
    """Restore the latest backup into an isolated scratch server, measure, tear down."""

    RUNBOOK = "drill"
    EVIDENCE = steps.DRILL_EVIDENCE

    @workflow.run
    async def run(self, inp: DrillInput) -> DrillResult:
        info = workflow.info()
        res = DrillResult(
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            status=RunStatus.RUNNING,
            input=inp,
            started_at=workflow.now(),
        )
        plan: DrillPlan | None = None
        cancelled: asyncio.CancelledError | None = None
        teardown = Saga()
        try:
            plan = await self._step("plan", steps.DRILL_PLAN, DrillPlanInput(workflow_id=info.workflow_id))
            self._placed(plan.placement, plan.queue_suffix)
            # Whatever happens from here, the scratch server goes (a saga: shielded from
            # cancellation); it is one of the drill's steps, not a compensation.
            scratch = TeardownInput(scratch_dir=plan.scratch_dir)

            async def tear_down() -> None:
                await self._step("teardown_scratch", steps.DRILL_TEARDOWN, scratch)

            teardown.register("teardown_scratch", tear_down)
            await self._drill(inp, plan, res)
        except asyncio.CancelledError as err:
            cancelled, res.error = err, "cancelled"
        except Exception as err:
            res.error = steps.describe_error(err)
        if plan is not None:
            self._phase = Phase.TEARDOWN
            try:
                await teardown.compensate()
            except Exception as err:
                res.error = (res.error + "; " if res.error else "") + (
                    f"teardown failed, the scratch server may still run in {plan.scratch_dir}:"
                    f" {steps.describe_error(err)}"
                )
        res.passed = res.error is None and bool(res.slo) and all(c.passed for c in res.slo)
        res.status = RunStatus.SUCCEEDED if res.passed else RunStatus.FAILED
        if res.error is None and not res.passed:
            res.error = (
                "; ".join(f"{c.name}: {c.detail}" for c in res.slo if not c.passed) or "no SLO checked"
            )
        res.steps = self._steps
        res.operator_actions = self._operator
        return await self._end(res, cancelled)

    async def _drill(self, inp: DrillInput, plan: DrillPlan, res: DrillResult) -> None:
        backup = inp.backup
        if inp.take_backup_first:
            self._phase = Phase.BACKUP
            taken = await self._step("take_backup", steps.DRILL_BACKUP, TakeBackupInput(site=plan.primary))
            res.backup, backup = taken.backup, taken.backup.name
        await steps.checkpoint("drill planned")

        self._phase = Phase.RESTORE
        restore = await self._step(
            "restore_backup",
            steps.DRILL_RESTORE,
            RestoreInput(backup=backup, target_time=inp.target_time, scratch_dir=plan.scratch_dir),
        )
        res.backup, res.restore = restore.backup, restore.restore

        self._phase = Phase.START_SCRATCH
        scratch = await self._step(
            "start_scratch", steps.DRILL_START, ScratchInput(scratch_dir=plan.scratch_dir)
        )
        if scratch.usable_at is not None:
            res.rto_seconds = round((scratch.usable_at - restore.started_at).total_seconds(), 3)

        self._phase = Phase.VERIFY
        verify = await self._step(
            "verify_restore",
            steps.DRILL_VERIFY,
            VerifyRestoreInput(scratch_dir=plan.scratch_dir, table=plan.table),
        )
        res.rows_restored, res.newest_row_at = verify.rows, verify.newest_row_at
        # RPO: how old the newest restored row was when the restore began (or at the target
        # time of a point-in-time restore): what a real restore at that moment would have lost.
        reference = inp.target_time or restore.started_at
        if verify.newest_row_at is not None:
            res.rpo_seconds = round(max((reference - verify.newest_row_at).total_seconds(), 0.0), 3)

        rto_obj = inp.rto_objective_s or plan.rto_objective_s
        rpo_obj = inp.rpo_objective_s if inp.rpo_objective_s is not None else plan.rpo_objective_s
        res.slo = [
            _check("rto", res.rto_seconds, rto_obj, "time to a usable restored database"),
            _check(
                "rpo",
                res.rpo_seconds,
                rpo_obj,
                "age of the newest restored row"
                + ("" if verify.table_present else f" (table {plan.table} is missing from the backup)"),
            ),
        ]


def _check(name: str, measured: float | None, objective: float, what: str) -> SloCheck:
    if measured is None:
        return SloCheck(
            name=name, measured_s=None, objective_s=objective, passed=False, detail=f"{what}: not measured"
        )
    ok = measured <= objective
    return SloCheck(
        name=name,
        measured_s=measured,
        objective_s=objective,
        passed=ok,
        detail=f"{what} {measured:g} s {'<=' if ok else '>'} objective {objective:g} s",
    )
