"""``FailbackWorkflow``: the failback runbook. After a failover, bring the home site (on-prem)
back as the primary with zero data loss.

plan -> checkpoint -> rejoin home as a standby of the cloud primary (follow, pg_rewind, or a
fresh base backup) -> catch up -> [approval] -> pause writes on the cloud primary -> home
replays the paused primary's final LSN -> promote home (point of no return) -> repoint apps ->
DNS back home -> verify a write lands at home -> the other standbys follow home -> fence the
old cloud primary and rejoin it as a standby of home -> retire the fence marks -> evidence.

At no moment are there two writable primaries: the cloud primary is read-only (paused) before
home is promoted, and it stays read-only until it is fenced and rejoined. Before the point of
no return a failure resumes writes on the cloud primary (the only compensation: rejoining home
is not undone; it is a standby either way). After it, the runbook only goes forward.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from hybridops.capabilities import Capability, failback_needs
    from hybridops.constants import WorkflowType
    from hybridops.contracts.base import Phase, RunStatus, StepOutcome, StepRecord
    from hybridops.contracts.failback import (
        CatchUpInput,
        FailbackInput,
        FailbackResult,
        PauseInput,
        PauseResult,
        PromoteHomeInput,
        RejoinInput,
        RejoinMethod,
        ResumeInput,
        RetireFenceInput,
    )
    from hybridops.contracts.sites import (
        AssessInput,
        DnsCutoverInput,
        FenceInput,
        PlanInput,
        PlanResult,
        RepointAppsInput,
        SiteState,
        VerifyInput,
        VerifyResult,
    )
    from hybridops.policy import Policy
    from hybridops.topology import establish
    from workflows import steps
    from workflows.approval import BreakGlass
    from workflows.runbook import refuse_missing
    from workflows.saga import LeasedSaga, Saga
    from workflows.steps import describe_error

SKIP_IMPOSSIBLE_REJOIN = "failback-skip-impossible-rejoin"
"""Patch: a run recorded before it tried to rejoin an old primary whose driver can neither
rewind nor re-clone (and failed, warning); newer runs skip that step, saying why."""


def _refuse(message: str, kind: str) -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


def _check_roles(states: dict[str, SiteState], home: str, primary: str) -> None:
    """The cloud primary must be a healthy primary to switch over from, and home must not be
    one too (two primaries: a human decides which data wins)."""
    now = states[primary]
    if not now.reachable or now.in_recovery is not False or now.fenced:
        raise _refuse(
            f"the cloud primary {primary} is not a healthy primary (reachable={now.reachable},"
            f" in_recovery={now.in_recovery}, fenced={now.fenced}): nothing to switch over from",
            "PrimaryNotHealthy",
        )
    was = states[home]
    if was.reachable and was.in_recovery is False:
        raise _refuse(
            f"home {home} answers as a primary while {primary} is the primary that DNS points at:"
            " two primaries; a human must decide which data wins (runbooks/failback.md)",
            "HomeIsPrimary",
        )


@dataclass(frozen=True)
class Planned:
    """What the plan phase found, for the phases after it."""

    plan: PlanResult
    home: str
    primary: str
    """The cloud primary the run switches over from."""
    states: dict[str, SiteState]
    """Each server as the plan read it."""
    others: list[str]
    """The other sites, whose standbys follow home at the end."""


@workflow.defn(name=WorkflowType.FAILBACK.value, failure_exception_types=[ValidationError])
class FailbackWorkflow(BreakGlass, LeasedSaga):
    """Bring the home site back as the primary after a failover, with zero data loss."""

    RUNBOOK = "failback"
    EVIDENCE = steps.FAILBACK_EVIDENCE
    PROMOTED_CHECK = "assess_home"

    @workflow.run
    async def run(self, inp: FailbackInput) -> FailbackResult:
        info = workflow.info()
        res = FailbackResult(
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            status=RunStatus.RUNNING,
            input=inp,
            started_at=workflow.now(),
        )
        failure = await self._saga(res, inp.lease_wait_s, lambda saga: self._failback(inp, res, saga))
        self._collect(res)
        return await self._end(res, failure)

    async def _failback(self, inp: FailbackInput, res: FailbackResult, saga: Saga) -> None:
        """The sequence, a phase per method: only the pause of writes is compensated (by
        resuming them); after home's promotion the run only goes forward."""
        p = await self._plan(inp, res)
        await self._rejoin_home(inp, res, p)
        await self._gate(inp, p)
        switch_started = workflow.now()
        pause = await self._switch_over(inp, res, saga, p)
        verify = await self._cut_over(inp, res, p)
        res.write_pause_seconds = round((verify.first_write_at - pause.paused_at).total_seconds(), 3)
        res.switchover_seconds = round((workflow.now() - switch_started).total_seconds(), 3)
        await self._rejoin_the_rest(res, p)

    async def _plan(self, inp: FailbackInput, res: FailbackResult) -> Planned:
        """Who the primary is (the servers say; DNS is only where clients go), and what each
        server is. Nothing changes before the checkpoint, so a new worker replays this instead
        of planning on a changed world."""
        self._phase = Phase.PLAN
        self._refuse_late_start(inp.max_start_delay_s, "planning")
        plan = await self._step("plan", steps.PLAN, PlanInput())
        self._placed_by(plan)
        sites = {s.name: s for s in plan.sites}
        home = inp.home or next((s.name for s in plan.sites if s.cloud is None), "")
        if home not in sites:
            raise _refuse(f"home: no site {home!r} in the inventory ({sorted(sites)})", "InputError")
        assessed = await self._step("assess", steps.ASSESS, AssessInput(sites=list(sites)))
        topology = establish(assessed.states, plan.dns_record, plan.dns_value, plan.dns_site or None)
        res.topology, res.findings = topology, topology.findings
        if len(topology.writable) > 1:
            raise _refuse(
                f"split brain: {', '.join(topology.writable)} accept writes; a failback needs"
                " exactly one primary to switch over from (a failover run settles a split brain;"
                " runbooks/failover.md)",
                "SplitBrain",
            )
        if topology.primary is None:
            raise _refuse(
                "no server accepts writes: there is no primary to fail back from; "
                + "; ".join(f.detail for f in topology.findings),
                "NoPrimary",
            )
        primary = topology.primary
        if primary == home or sites[primary].cloud is None:
            raise _refuse(
                f"{primary} is the writable primary, not a cloud site: nothing to fail back",
                "NothingToFailBack",
            )
        self._target, res.home, res.old_primary = home, home, primary
        states = {s.site: s for s in assessed.states}
        _check_roles(states, home, primary)
        res.warnings += refuse_missing(failback_needs(home, primary, plan.apps_need_infra()), plan)
        res.other_standbys = [n for n in sites if n not in (home, primary)]
        await steps.checkpoint("planned")
        return Planned(plan, home, primary, states, res.other_standbys)

    async def _rejoin_home(self, inp: FailbackInput, res: FailbackResult, p: Planned) -> None:
        """Home becomes a standby of the cloud primary and catches up while writes flow. Not
        compensated: a standby is a fine state to stop in, and the next run starts there."""
        workflow_id = workflow.info().workflow_id
        self._phase = Phase.REJOIN_HOME
        rejoin = await self._step(
            "rejoin_home",
            steps.FAILBACK_REJOIN,
            RejoinInput(site=p.home, source=p.primary, run_id=workflow_id, method=inp.rejoin_method),
        )
        res.rejoin, res.moved_aside, res.rejoin_seconds = rejoin.outcome, rejoin.moved_aside, rejoin.seconds
        self._phase = Phase.CATCH_UP
        caught = await self._step(
            "catch_up",
            steps.FAILBACK_CATCH_UP,
            CatchUpInput(
                site=p.home,
                source=p.primary,
                max_lag_bytes=inp.max_lag_bytes,
                timeout_s=inp.max_catchup_s,
                run_id=workflow_id,
            ),
        )
        res.catch_up_seconds = caught.waited_s

    async def _gate(self, inp: FailbackInput, p: Planned) -> None:
        """The approval gate when asked for; then, after the waits (catch-up, the gate), look
        again before pausing anything, and make that look durable: a worker that dies after
        the pause must not look again at a world its own pause changed (it would see no writer
        and stop, leaving it paused)."""
        self._policy = p.plan.policy
        if inp.require_approval or (self._policy is not None and self._policy.approval.failback):
            await self._approval_gate(inp.approval_timeout_s)
        await self._look_again(p.plan, p.home, p.primary)
        await steps.checkpoint("looked again")

    async def _switch_over(
        self, inp: FailbackInput, res: FailbackResult, saga: Saga, p: Planned
    ) -> PauseResult:
        """Writes pause on the cloud primary (undone by resuming them), home replays everything
        the primary wrote, then home is promoted: the point of no return."""
        workflow_id = workflow.info().workflow_id
        self._phase = Phase.PAUSE_WRITES
        saga.register(
            "resume_writes",
            lambda: self._undo(steps.FAILBACK_RESUME, ResumeInput(site=p.primary, run_id=workflow_id)),
        )
        pause = await self._step(
            "pause_writes", steps.FAILBACK_PAUSE, PauseInput(site=p.primary, run_id=workflow_id)
        )
        res.paused_at, res.final_lsn = pause.paused_at, pause.final_lsn
        await self._step(
            "wait_replayed",
            steps.FAILBACK_CATCH_UP,
            CatchUpInput(
                site=p.home,
                source=p.primary,
                target_lsn=pause.final_lsn,
                timeout_s=inp.max_pause_s,
                run_id=workflow_id,
            ),
        )

        self._phase = Phase.PROMOTE
        promoted = await self._guarded(
            "promote_home",
            steps.FAILBACK_PROMOTE,
            PromoteHomeInput(
                site=p.home, run_id=workflow_id, wait_for_lsn=pause.final_lsn, max_catchup_s=inp.max_pause_s
            ),
            self._paused_policy(inp),
            res.blocked_by,
        )
        self._pass_point_of_no_return(saga, res)
        res.timeline = promoted.timeline
        # Durable now: a worker that dies later replays the switchover instead of running it
        # again against a home that is already the primary.
        await steps.checkpoint("home promoted")
        return pause

    async def _cut_over(self, inp: FailbackInput, res: FailbackResult, p: Planned) -> VerifyResult:
        """Apps and clients back home, and a write seen landing there."""
        self._phase = Phase.REPOINT_APPS
        repoint = RepointAppsInput(site=p.home, run_id=workflow.info().workflow_id)
        await self._step("repoint_apps", steps.REPOINT, repoint)
        self._phase = Phase.DNS_CUTOVER
        cutover = DnsCutoverInput(site=p.home)
        await self._guarded("dns_cutover", steps.DNS_CUTOVER, cutover, self._policy_for(inp), res.blocked_by)
        self._phase = Phase.VERIFY
        verify = await self._step("verify", steps.VERIFY, VerifyInput(site=p.home))
        res.first_write_at = verify.first_write_at
        return verify

    async def _rejoin_the_rest(self, res: FailbackResult, p: Planned) -> None:
        """Home serves. The other standbys follow it (first, before the old primary writes its
        shutdown checkpoint, so they do not get WAL home never had); best effort. Then the old
        primary, read-only since the pause, is stopped and marked, and rewound onto home's
        timeline (it diverged by little more than its shutdown checkpoint); the fence marks of
        the servers that are standbys of home again are retired."""
        workflow_id, home, primary = workflow.info().workflow_id, p.home, p.primary
        self._phase = Phase.REJOIN
        for site in p.others:
            state = p.states.get(site)
            if state is None or not state.reachable or not state.in_recovery:
                res.warnings.append(f"{site} was not a running standby at the start: not rejoined")
                continue
            try:
                await self._step(
                    f"rejoin_{site}",
                    steps.FAILBACK_REJOIN,
                    RejoinInput(site=site, source=home, run_id=workflow_id),
                    optional=True,
                )
            except ActivityError as err:
                res.warnings.append(f"{site} did not rejoin {home}: {describe_error(err)}")

        self._phase = Phase.FENCE
        await self._step("fence_old_primary", steps.FENCE, FenceInput(site=primary, run_id=workflow_id))
        self._phase = Phase.REJOIN_OLD_PRIMARY
        retire = [home]
        offered = p.plan.capabilities.get(f"postgres:{primary}")
        cannot = offered is not None and not {Capability.REWIND, Capability.RECLONE} & set(offered)
        if cannot and workflow.patched(SKIP_IMPOSSIBLE_REJOIN):
            # Its driver can do neither (a CloudNativePG cluster: its operator re-creates it as
            # a replica); the plan step said so, and the run does not try what it cannot do.
            driver = p.plan.drivers.get(f"postgres:{primary}", "its driver")
            now = workflow.now()
            self._steps.append(
                StepRecord(
                    name="rejoin_old_primary",
                    started_at=now,
                    ended_at=now,
                    outcome=StepOutcome.SKIPPED,
                    detail=f"{primary} ({driver}) can neither rewind nor re-clone: fenced, left to its"
                    " operator",
                )
            )
        else:
            try:
                old = await self._step(
                    "rejoin_old_primary",
                    steps.FAILBACK_REJOIN,
                    RejoinInput(site=primary, source=home, run_id=workflow_id, method=RejoinMethod.AUTO),
                    optional=True,
                )
                res.old_primary_rejoin = old.outcome
                retire.append(primary)
            except ActivityError as err:
                res.warnings.append(f"{primary} (fenced) did not rejoin {home}: {describe_error(err)}")

        self._phase = Phase.RETIRE_FENCES
        if self._where.site_queues:
            # Each mark is in its own site's data directory: its agent retires it.
            for site in retire:
                await self._step(
                    f"retire_fence_{site}", steps.FAILBACK_RETIRE_FENCE, RetireFenceInput(sites=[site])
                )
        else:
            await self._step("retire_fences", steps.FAILBACK_RETIRE_FENCE, RetireFenceInput(sites=retire))

    def _policy_for(self, inp: FailbackInput) -> Policy:
        """The policy the plan recorded; histories before it: break glass on, waiting as long
        as the approval gate does."""
        if self._policy is not None:
            return self._policy
        policy = Policy()
        policy.safety.break_glass_timeout_s = min(inp.approval_timeout_s, 86400.0)
        return policy

    def _paused_policy(self, inp: FailbackInput) -> Policy:
        """The policy while writes are paused (home's promotion): a safety rule that blocks it
        waits for an override no longer than writes may stay paused (``max_pause_s``); then
        the run stops and writes resume on the cloud primary (the compensation), instead of
        refusing every write for the policy's break-glass timeout (an hour by default)."""
        policy = self._policy_for(inp)
        if policy.safety.break_glass_timeout_s <= inp.max_pause_s:
            return policy
        safety = policy.safety.model_copy(update={"break_glass_timeout_s": inp.max_pause_s})
        return policy.model_copy(update={"safety": safety})

    async def _look_again(self, plan: PlanResult, home: str, primary: str) -> None:
        """DNS, the servers: still the cloud primary writable alone, home still its streaming
        standby? Else stop before pausing writes, saying what changed."""
        plan_now = await self._step("plan_again", steps.PLAN, PlanInput())
        now = await self._step("assess_again", steps.ASSESS, AssessInput(sites=[s.name for s in plan.sites]))
        topology = establish(now.states, plan_now.dns_record, plan_now.dns_value, plan_now.dns_site or None)
        changes = []
        if plan_now.dns_site != plan.dns_site:
            changes.append(
                f"DNS pointed at {plan.dns_site or 'nothing'}, now at {plan_now.dns_site or 'nothing'}"
            )
        if topology.writable != [primary]:
            changes.append(f"writable servers are {topology.writable or 'none'}, not [{primary}]")
        h = topology.state(home)
        if h is None or not h.reachable or not h.in_recovery or h.upstream != primary:
            changes.append(f"{home} is no longer a standby of {primary}")
        if changes:
            raise _refuse(
                "the world changed while the run waited: "
                + "; ".join(changes)
                + ". Writes were not paused; start a new run on the world as it is",
                "WorldChanged",
            )
