"""The failback runbook's own activities: methods of one class, handed its drivers.

``FailbackWorkflow`` also schedules the site steps every runbook shares (plan_failover,
assess_sites, fence_primary, repoint_apps, dns_cutover, verify_writes, checkpoint:
activities/sites.py). Each activity here reads the world and converges it (DESIGN.md rule 2),
declared with :func:`activities.common.step_activity`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporalio.client import Client

from activities.common import Activities, result_of, step_activity, write_run_evidence
from activities.sites import promote_checked
from drivers.lazy import Drivers
from drivers.postgres import PostgresDriver
from drivers.topology import TopologyReader, refuse
from hybridops import metrics
from hybridops.constants import ActivityName
from hybridops.contracts.base import EvidenceResult, RuleViolation, StepRecord
from hybridops.contracts.failback import (
    CatchUpInput,
    CatchUpResult,
    FailbackEvidenceInput,
    PauseInput,
    PauseResult,
    PromoteHomeInput,
    PromoteHomeResult,
    RejoinInput,
    RejoinOutcome,
    RejoinResult,
    ResumeInput,
    ResumeResult,
    RetireFenceInput,
    RetireFenceResult,
)
from hybridops.contracts.sites import CheckResult
from hybridops.errors import PreconditionFailed
from hybridops.inventory import Inventory
from hybridops.markup import md
from hybridops.topology import Rule


def _step_table(steps: list[StepRecord]) -> list[str]:
    rows = ["| step | outcome | attempts | time | detail |", "| --- | --- | --- | --- | --- |"]
    for s in steps:
        ms = f"{(s.ended_at - s.started_at).total_seconds() * 1000:.0f} ms" if s.ended_at else "-"
        mark = " (irreversible)" if s.irreversible else ""
        outcome = s.outcome.value if s.outcome else "-"
        rows.append(f"| {md(s.name)}{mark} | {outcome} | {s.attempts} | {ms} | {md(s.detail)} |")
    return rows


class FailbackActivities(Activities):
    """Activities of ``FailbackWorkflow``. Built once per worker with its drivers."""

    def __init__(
        self, inventory: Inventory, drivers: Drivers | None = None, client: Client | None = None
    ) -> None:
        super().__init__(inventory, drivers, client)
        self._topology: TopologyReader | None = None

    @property
    def pg(self) -> PostgresDriver:
        return self.drivers.postgres

    @property
    def topology(self) -> TopologyReader:
        """The topology from the servers alone: failback's checks read no DNS (a database
        worker may hold no DNS credentials)."""
        if self._topology is None:
            self._topology = TopologyReader(self.inventory, self.pg, None)
        return self._topology

    def all(self) -> list[Callable[..., Any]]:
        """Every activity of the runbook's own, for worker registration."""
        return [
            self.rejoin_standby,
            self.catch_up,
            self.pause_writes,
            self.check_resume,
            self.resume_writes,
            self.promote_home,
            self.retire_fence,
            self.write_failback_evidence,
        ]

    @step_activity(ActivityName.REJOIN_STANDBY)
    async def rejoin_standby(self, inp: RejoinInput) -> RejoinResult:
        """Make a site a streaming standby of the primary: follow, pg_rewind, or re-clone.
        Never a server that accepts writes: one this run promoted is past its rejoin (a step
        run again after a worker died), any other is refused (rewinding it would discard its
        writes)."""
        state = await self.pg.assess(inp.site)
        if state.reachable and state.in_recovery is False:
            if inp.run_id and state.promoted_by == inp.run_id:
                return RejoinResult(
                    outcome=RejoinOutcome.UNCHANGED,
                    detail=f"{inp.site} was promoted by {inp.run_id}: past its rejoin",
                )
            if state.writable:
                raise PreconditionFailed(
                    f"{inp.site} is a primary that accepts writes: it is never rewound (fence it first)",
                    site=inp.site,
                )
        return result_of(RejoinResult, await self.pg.rewind(inp.site, inp.source, inp.run_id, inp.method))

    @step_activity(ActivityName.CATCH_UP)
    async def catch_up(self, inp: CatchUpInput) -> CatchUpResult:
        """Read-only: wait until a standby has replayed close enough (or exactly up to an LSN).
        A site this run already promoted is past it (a step run again after a worker died)."""
        state = await self.pg.assess(inp.site)
        if inp.run_id and state.reachable and state.in_recovery is False and state.promoted_by == inp.run_id:
            return CatchUpResult(detail=f"{inp.site} was promoted by {inp.run_id}: past its catch-up")
        caught_up = await self.pg.catch_up(
            inp.site, inp.source, inp.max_lag_bytes, inp.timeout_s, inp.target_lsn
        )
        return result_of(CatchUpResult, caught_up)

    @step_activity(ActivityName.PAUSE_WRITES)
    async def pause_writes(self, inp: PauseInput) -> PauseResult:
        """The switchover's start: the primary read-only, its sessions ended, its final LSN."""
        return result_of(PauseResult, await self.pg.pause_writes(inp.site, inp.run_id))

    @step_activity(ActivityName.CHECK_RESUME)
    async def check_resume(self, inp: ResumeInput) -> CheckResult:
        """Read-only: the guard of the agent's resume of writes (no other server accepts
        writes), run where every server can be read."""
        await self._resume_rules(inp.site)
        return CheckResult(detail=f"{inp.site} may take writes again")

    async def _resume_rules(self, site: str) -> None:
        others = [w for w in (await self.topology.read()).writable if w != site]
        if others:
            raise refuse(
                [
                    RuleViolation(
                        rule=Rule.SINGLE_WRITER, site=w, detail=f"{w} accepts writes: {site} stays paused"
                    )
                    for w in others
                ],
                f"resume writes on {site}",
            )

    @step_activity(ActivityName.RESUME_WRITES)
    async def resume_writes(self, inp: ResumeInput) -> ResumeResult:
        """Compensation of ``pause_writes``: never while another server accepts writes (home
        promoted after all): the paused primary then stays read-only, for a human. A site
        agent sees its own server only (it holds no other server's credentials): its guard
        step (``check_resume``) checked the others right before."""
        if not self.drivers.is_agent():
            await self._resume_rules(inp.site)
        changed = await self.pg.resume_writes(inp.site)
        return ResumeResult(changed=changed, detail=f"{inp.site} writable" if changed else "not paused")

    @step_activity(ActivityName.PROMOTE_HOME)
    async def promote_home(self, inp: PromoteHomeInput) -> PromoteHomeResult:
        """Irreversible: promote home once it replayed the paused primary's final LSN, after
        the same safety rules as a failover's promotion (the paused primary is read-only, so
        home will be the one writer). Home still carries the fence mark of the failover that
        left it; it is a rewound standby now, so the mark does not forbid this (it is retired
        once home serves)."""
        promoted = await promote_checked(
            self.pg,
            self.topology,
            inp.model_copy(update={"allow_fenced": True}),
            agent=self.drivers.is_agent(),
        )
        return PromoteHomeResult(**promoted.model_dump())

    @step_activity(ActivityName.RETIRE_FENCE)
    async def retire_fence(self, inp: RetireFenceInput) -> RetireFenceResult:
        """Remove the fence marks of sites that have their role back (primary, or streaming)."""
        retired = [site for site in inp.sites if await self.pg.retire_fence(site)]
        for site in retired:
            metrics.SITE_FENCED.labels(site).set(0)
        return RetireFenceResult(changed=bool(retired), detail=f"retired: {retired or 'none'}")

    @step_activity(ActivityName.WRITE_FAILBACK_EVIDENCE)
    async def write_failback_evidence(self, inp: FailbackEvidenceInput) -> EvidenceResult:
        """Write the run's evidence folder; the history is fetched from the server."""
        return await write_run_evidence(self.client, Path(self.inventory.output_dir), inp.result)
