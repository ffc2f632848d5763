"""``FailoverWorkflow``: the failover runbook.

decide -> prepare target -> fence old primary -> [approval] -> promote (point of no return)
-> repoint apps -> DNS cutover -> verify -> rejoin standbys -> evidence.

Before the point of no return every world-changing step has registered its compensation,
and a failure (or a rejection, or an approval timeout) undoes them in reverse. After it, the
runbook only goes forward: failures are retried, then reported for a human. Every run,
whatever its ending, writes its evidence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from hybridops.capabilities import Capability, failover_needs
    from hybridops.constants import ALERT_REQUESTER, ALERT_SIGNAL, WorkflowType
    from hybridops.contracts.base import (
        AlertNotice,
        Cloud,
        HealthCheck,
        Phase,
        RtoSplit,
        RunStatus,
        StepOutcome,
        StepRecord,
    )
    from hybridops.contracts.burst import DeployWorkloadsInput, RemoveWorkloadsInput
    from hybridops.contracts.decision import (
        Decision,
        DecisionRequest,
        DecisionType,
        DrMode,
        SignalsInput,
        SignalSnapshot,
        SignalsResult,
    )
    from hybridops.contracts.failover import FailoverInput, FailoverResult
    from hybridops.contracts.readiness import LatestReadinessInput, LatestReadinessResult
    from hybridops.contracts.sites import (
        AssessInput,
        AssessResult,
        DnsCutoverInput,
        FenceInput,
        FenceResult,
        Finding,
        FindingKind,
        FollowInput,
        IsolateInput,
        PickBackupInput,
        PickBackupResult,
        PlanInput,
        PlanResult,
        PrepareInput,
        PromoteInput,
        ReleaseInput,
        RepointAppsInput,
        RestorePrimaryInput,
        RpoInput,
        RpoMeasure,
        RpoResult,
        SiteInput,
        Topology,
        UnfenceInput,
        VerifyInput,
    )
    from hybridops.decision import decide, hold_reason, policy_in_force, signal_targets, topology_of
    from hybridops.health import alert_check, error_rate_check
    from hybridops.policy import Policy, ReadinessOnFail, SplitBrainAction
    from hybridops.topology import diverged, keep_writer
    from workflows import steps
    from workflows.approval import BreakGlass
    from workflows.runbook import refuse_missing
    from workflows.saga import LeasedSaga, Saga

T = TypeVar("T")

RESTORE_PATCH = "failover-restore-mode"
"""Restore mode (issue 17): a run whose decision is ``restore`` restores the newest backup onto
the target instead of stopping with ``PolicyModeUnsupported``. Runs recorded before it replay
without the marker and stop as they did."""

GITOPS_PATCH = "failover-gitops-sync"
"""The patch from which a failover whose plan names workloads syncs them on the target's
cluster through GitOps before fencing (issue 17 item 4): a run recorded before it does not."""
SPLIT_FENCE_PATCH = "split-brain-fence-absent-agent"
"""From this patch a writer fenced to settle a split brain goes through the same fence as the
old primary: a site agent that takes no step within ``agent_start_timeout_s`` gets its site
isolated, the fence recorded unverified. Before it, such a run failed and left both writers
(seen once under load in CI: the agent alive but slow to poll)."""
HEALTH_PATCH = "failover-health-check"
"""The patch from which a failover asks monitoring after the cutover (the ``check_health``
step: the apps' error rate at the target against the policy's maximum) and records it with
the alert's resolution (issue 17 item 5): a run recorded before it schedules no such step."""
READINESS_PATCH = "failover-readiness"
"""The patch from which a failover reads the readiness it starts from (issue 20 item 3): a
run recorded before it schedules no such step."""
SIGNALS_WITH_ASSESS_PATCH = "failover-signals-with-assess"
"""From this patch the decide phase gathers the signals while it reads the servers (issue 21):
of every cloud site, since which of them are candidates depends on the assessment (never the
current primary); ``decide`` considers only the candidates. Before it, the signals step came
after the assessment, for the candidates alone."""
READINESS_WITH_CHECKPOINT_PATCH = "failover-readiness-with-checkpoint"
"""From this patch, with placement ``queues``, the readiness reading and the ``decided``
checkpoint run at once (issue 21). Both are queued activities the server records, so the
checkpoint need not wait for the reading to make it durable. Colocated, the reading is a local
activity whose marker only the next workflow task's completion records: the checkpoint still
comes after it there, and the patch is not asked."""
READINESS_WITH_ASSESS_PATCH = "failover-readiness-with-assess"
"""From this patch, with placement ``queues`` (and a plan that carries the policy, as every
plan since the policy moved into it does), the readiness reading runs while the servers are
read (issue 21): for every cloud site, since which of them is the target is decided after. The
decide phase then schedules no ``decided`` checkpoint: under ``queues`` every step before the
first change is a queued activity the server records (the plan's local activity was recorded
when the task that scheduled the assessment completed), and the task that decides is the one
that schedules the first change (prepare, fence), so no worker can act on a decision the
history does not hold. Asked only under ``queues``, at the assessment, and first, so that runs
recorded before it (no marker) replay the reading after the decision, with the checkpoint.
Histories: tests/histories/README.md."""
PREPARE_WITH_FENCE_PATCH = "failover-prepare-with-fence"
"""From this patch the target is prepared while the old primary is fenced (issue 21), when the
assessment found the old primary down and no workloads are to be synced first. A live primary
(a planned failover) keeps taking writes until the target is ready, and workloads are synced
before anything is fenced, so those runs keep the order, and the patch is asked only in the
others. Before it, prepare came first in every run."""
NO_LIVE_RESTORE_PATCH = "failover-no-restore-over-live-primary"
"""The patch from which a primary the run finds writable rules out restore mode: a planned
failover whose standby is momentarily unfit (reconnecting after a restart) holds instead of
restoring a backup over a live primary's newer writes."""
APPS_WITH_DNS_PATCH = "failover-apps-with-dns"
"""From this patch (issue 21) the apps are repointed while DNS moves, instead of before: both
send clients to the promoted target, neither is safer first, and an apps' GitOps sync (minutes
at worst) no longer holds the DNS clients' outage open. Before it, DNS waited for the apps."""
ISOLATE_WITH_MARK_PATCH = "failover-isolate-with-mark"
"""From this patch (issue 21) an old primary that did not answer the assessment, in a run the
detection alert started (most observers saw it take no write past the blip tolerance), is
isolated at once while its agent marks it: the promotion waits for the isolation, not for the
mark. The mark is what cost a dead host's run ``agent_start_timeout_s`` (its agent takes no
step) and a hung server's its connect timeout (its agent cannot connect either), and it ended in
an isolation anyway: a server that does not answer is always isolated. Asked only where it
applies (the infra driver can isolate); the mark ends before the run does. Before it, the
isolation came after the mark."""
PLAN_WITH_LEASE_PATCH = "failover-plan-with-lease"
"""From this patch (issue 21) the plan (the inventory, the policy, where DNS points) is read
while the lease is asked for, as a queued activity on the run's own queue: the two ran one
after the other (the plan, a local activity, waited for the task that asked for the lease),
about 100 ms on an alert's path. A lease another run holds is asked for again, waiting, and
the plan read again under it. Before it, the plan came after the lease."""
CLIENTS_WAIT_S = 10.0
"""How long the RPO step waits for the workload's first acknowledged write on the new primary
(the end of the outage clients saw), when a live writer keeps a ledger."""


def world_changes(
    plan: PlanResult,
    before: AssessResult,
    decision: Decision,
    plan_now: PlanResult,
    now: AssessResult,
    again: Decision,
) -> list[str]:
    """What moved between two looks at the world, in words (empty: nothing that matters)."""
    out = []
    if plan_now.dns_site != plan.dns_site:
        out.append(f"DNS pointed at {plan.dns_site or 'nothing'}, now at {plan_now.dns_site or 'nothing'}")
    was = {s.site: s for s in before.states}
    for s in now.states:
        w = was.get(s.site)
        if w is None:
            continue
        if s.writable != w.writable:
            out.append(f"{s.site} {'accepts' if s.writable else 'no longer accepts'} writes")
        elif s.reachable != w.reachable or s.in_recovery != w.in_recovery:
            role = lambda x: "down" if not x.reachable else ("standby" if x.in_recovery else "primary")  # noqa: E731
            out.append(f"{s.site} was {role(w)}, is {role(s)}")
        elif s.timeline != w.timeline:
            out.append(f"{s.site} moved from timeline {w.timeline} to {s.timeline}")
        if s.fenced != w.fenced:
            out.append(f"{s.site} {'was fenced' if s.fenced else 'lost its fence mark'} meanwhile")
    if again.target != decision.target or again.dr_mode != decision.dr_mode:
        out.append(
            f"the policy now decides {again.decision_type.value} to {again.target or '-'}"
            f" ({again.dr_mode.value}), not to {decision.target} ({decision.dr_mode.value})"
        )
    return out


@dataclass(frozen=True)
class Seen:
    """The servers as the run first read them, and the topology established from them."""

    assessed: AssessResult
    topology: Topology


@dataclass(frozen=True)
class Decided:
    """What the decide phase settled, for the phases after it."""

    plan: PlanResult
    assessed: AssessResult
    """The servers as the decision saw them (after a split brain was settled)."""
    request: DecisionRequest
    decision: Decision
    policy: Policy
    target: str
    """The decision's target (never None past the decide phase)."""
    backup: PickBackupResult | None = None
    """Restore mode: the backup the restore will use (None: promote the target's standby)."""

    @property
    def restore(self) -> bool:
        return self.backup is not None


@workflow.defn(name=WorkflowType.FAILOVER.value, failure_exception_types=[ValidationError])
class FailoverWorkflow(BreakGlass, LeasedSaga):
    """Fail the database and its apps over from the current primary to a cloud standby."""

    RUNBOOK = "failover"
    EVIDENCE = steps.EVIDENCE

    def __init__(self) -> None:
        super().__init__()
        self._alerts: list[AlertNotice] = []
        self._hosts_down: frozenset[str] = frozenset()
        """Restore mode: candidates whose site agent took no step (their host is down)."""
        self._restoring: bool | None = None
        """Restore mode: whether the restore step has begun (None: promote mode)."""
        self._readiness_asks_approval = False
        self._read_readiness_early = False
        """Whether the readiness was read with the servers (patch ``READINESS_WITH_ASSESS_PATCH``)."""
        self._early_readiness: LatestReadinessResult | None = None
        """That reading (None: it failed, and the run goes on without it)."""
        self._old: str | None = None
        """The primary the run moves away from (once decided)."""
        self._record: str | None = None
        """The DNS name clients use (once planned)."""
        self._detected = False
        """Whether the detection alert started the run (its observers saw the primary silent)."""
        self._marking: asyncio.Future[FenceResult] | None = None
        """The old primary's mark, while it runs beside the rest (patch ``failover-isolate-with-mark``)."""

    def _by_hand(self, phase: Phase) -> list[str]:
        """The exact next steps after a failure past the point of no return, per phase (the
        same as runbooks/failover.md, "When it fails"): forward to the new primary, never back."""
        run = workflow.info().workflow_id
        target, old = self._target or "the target", self._old or "the old primary"
        record = self._record or "the DNS name"
        cause = f"`hybridops status {run}` and its report: fix the cause the failed step's error names"
        apps = f"point every app the inventory names at {target}'s database (what repoint_apps does)"
        dns = (
            f"point {record} at {target}: run `hybridops failover` again once the DNS API answers"
            f" (it finds {target} the one writable server and repairs DNS), or set the record by hand"
        )
        verify = f"check as a client: {record} resolves to {target} and a write through it lands there"
        never = f"leave {old} fenced: bring it back with `hybridops failback`, never by removing its mark"
        match phase:
            case Phase.PROMOTE | Phase.RESTORE:
                first = (
                    f"check {target} is the one writable server; if not, stop and follow the page's"
                    " 'Promotion interrupted' or 'Two writable servers'"
                )
                return [cause, first, apps, dns, verify, never]
            case Phase.REPOINT_APPS:
                return [cause, apps, dns, verify, never]
            case Phase.DNS_CUTOVER:
                return [cause, dns, verify, never]
            case Phase.VERIFY:
                return [cause, verify, never]
            case _:
                return [cause, never]

    def _promotion_site(self) -> str | None:
        """In restore mode the target's server was not a standby to begin with (stopped, or
        unfit): before the restore began, its being down says nothing, and the run
        compensates. Once it began, a target that does not answer counts as restored (the
        restored server promotes itself at the end of recovery): the fences stay."""
        if self._restoring is False:
            return None
        return self._target

    @workflow.signal(name=ALERT_SIGNAL)
    def alert(self, notice: AlertNotice) -> None:
        """An alert notification for this run (its alert resolved, or fired again)."""
        self._alerts.append(notice)

    @workflow.run
    async def run(self, inp: FailoverInput) -> FailoverResult:
        info = workflow.info()
        started = workflow.now()
        res = FailoverResult(
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            status=RunStatus.RUNNING,
            input=inp,
            started_at=started,
            incident_started_at=inp.incident_started_at or started,
        )
        failure = await self._saga(
            res,
            inp.lease_wait_s,
            lambda saga: self._failover(inp, res, saga),
            (lambda: self._plan_beside_lease(inp)) if workflow.patched(PLAN_WITH_LEASE_PATCH) else None,
        )
        self._collect(res)
        res.alerts = self._alerts
        return await self._end(res, failure)

    async def _failover(self, inp: FailoverInput, res: FailoverResult, saga: Saga) -> None:
        """The sequence, a phase per method: before the point of no return each change has
        registered its compensation in ``saga``; after it the run only goes forward."""
        decided = await self._decide(inp, res)
        await self._gate(inp, decided)
        try:
            fence = await self._prepare_and_fence(decided, res, saga)
            if decided.restore:
                silent = await self._fence_silent(decided, res, saga)
                await self._restore(inp, decided, silent, res, saga)
            else:
                await self._promote(inp, decided, fence, res, saga)
            await self._cut_over(decided, res)
        finally:  # the old primary's mark ends before anything else (a compensation) begins
            await self._marked(res)
        await self._rejoin_standbys(decided)
        apps = await self._apps_health(decided) if workflow.patched(HEALTH_PATCH) else None
        if inp.await_alert_resolve_s > 0:
            await self._await_resolve(inp.await_alert_resolve_s)
        if apps is not None:
            res.health = [apps, alert_check(inp.requested_by, inp.await_alert_resolve_s, self._alerts)]

    @staticmethod
    def _silent_deadline(inp: FailoverInput, plan: PlanResult) -> dict[str, float]:
        """In a run the detection alert started for a primary that is down: the server DNS
        points at (the primary its agents found silent past the tolerance) answers within the
        policy's ``detection.confirm_timeout_s`` or counts as down. A healthy primary answers
        in ms, so a stale alert still stops the run; a hung one no longer holds the decision
        for the whole connect timeout."""
        if not (inp.only_if_primary_down and inp.requested_by.startswith(ALERT_REQUESTER)):
            return {}
        if plan.policy is None or plan.dns_site not in {s.name for s in plan.sites}:
            return {}
        return {plan.dns_site: plan.policy.detection.confirm_timeout_s}

    async def _plan_beside_lease(self, inp: FailoverInput) -> PlanResult:
        """The plan, read while the lease is asked for (not by a run that began too late:
        that one looks at nothing)."""
        self._refuse_late_start(inp.max_start_delay_s, "deciding")
        return await self._step("plan", steps.PLAN_BESIDE_LEASE, PlanInput())

    async def _establish(
        self, inp: FailoverInput, res: FailoverResult
    ) -> tuple[PlanResult, Seen, str, SignalsResult | None]:
        """Plan, and read the servers: who the primary is (the servers say, DNS only where
        clients go). A run started for a primary that turns out healthy stops here (after
        repairing DNS if it pointed elsewhere). Returns the current primary ("" while a
        split brain waits to be settled), and the signals when they were gathered meanwhile
        (patch ``failover-signals-with-assess``)."""
        self._phase = Phase.DECIDE
        self._refuse_late_start(inp.max_start_delay_s, "deciding")
        if self._beside is not None and self._leased_at_once:
            plan: PlanResult = self._beside.result()  # read while the lease was asked for
        else:
            plan = await self._step("plan", steps.PLAN, PlanInput())
        self._placed_by(plan)
        self._record = plan.dns_record
        assess_in = AssessInput(
            sites=[s.name for s in plan.sites], deadlines=self._silent_deadline(inp, plan)
        )
        gathered: SignalsResult | None = None
        if workflow.patched(SIGNALS_WITH_ASSESS_PATCH):
            # No site is known to be the current primary yet: every cloud site's signals.
            every_cloud = signal_targets(DecisionRequest(current_primary=""), plan.sites)
            assess = self._step("assess", steps.ASSESS, assess_in)
            signals = self._step("gather_signals", steps.SIGNALS, every_cloud)
            if (
                self._where.placement != "colocated"
                and plan.policy is not None
                and workflow.patched(READINESS_WITH_ASSESS_PATCH)
            ):
                # The readiness of a failover to each site the decision may choose, meanwhile.
                self._read_readiness_early = True
                read = self._read_readiness([s.name for s in every_cloud.sites], plan.policy)
                assessed, (gathered, self._early_readiness) = await steps.together(
                    assess, steps.together(signals, read)
                )
            else:
                assessed, gathered = await steps.together(assess, signals)
        else:
            assessed = await self._step("assess", steps.ASSESS, assess_in)
        topology = topology_of(plan, assessed.states)
        res.topology, res.findings = topology, topology.findings
        if topology.has(FindingKind.SPLIT_BRAIN):
            current = ""  # settled by the decide phase, once the policy is known
        elif topology.acting_primary is None:
            raise ApplicationError(
                "cannot establish the current primary: no server accepts writes, no standby names"
                " its upstream and DNS points at no site; " + "; ".join(f.detail for f in topology.findings),
                type="TopologyUnknown",
                non_retryable=True,
            )
        else:
            current = topology.acting_primary
        if inp.only_if_primary_down and current and topology.primary == current:
            await self._repair_dns(topology, plan, res)
            raise ApplicationError(
                f"the current primary {current} accepts writes: nothing to fail over (the alert or page"
                " that started this run is stale; a planned failover sets only_if_primary_down false)"
                + (
                    f"; DNS pointed at {topology.dns_site or 'nothing'} and was repaired"
                    if res.dns_repaired
                    else ""
                ),
                type="PrimaryHealthy",
                non_retryable=True,
            )
        return plan, Seen(assessed, topology), current, gathered

    async def _decide(self, inp: FailoverInput, res: FailoverResult) -> Decided:
        """Decide the target: everything the choice rests on is an activity result, so it is
        in the history and a replay decides the same. A hold, or a mode this runbook does not
        do, stops the run before anything changed."""
        workflow_id = workflow.info().workflow_id
        plan, seen, current, gathered = await self._establish(inp, res)
        assessed, topology = seen.assessed, seen.topology
        request = DecisionRequest(
            decision_type=DecisionType.FAILOVER, current_primary=current, target=inp.target
        )
        if gathered is None:
            gathered = await self._step("gather_signals", steps.SIGNALS, signal_targets(request, plan.sites))
        policy = policy_in_force(plan, gathered)
        if topology.has(FindingKind.SPLIT_BRAIN):
            assessed, current = await self._settle_split_brain(topology, policy, res, workflow_id)
            request = request.model_copy(update={"current_primary": current})
            if inp.only_if_primary_down:
                raise ApplicationError(
                    f"split brain settled: {current} is the one writable primary now (fenced:"
                    f" {', '.join(res.fenced)}); nothing to fail over",
                    type="PrimaryHealthy",
                    non_retryable=True,
                )
        detected = self._detected = inp.requested_by.startswith(ALERT_REQUESTER)
        decision, snapshot = decide(
            request,
            plan,
            assessed.states,
            gathered,
            detected,
            live_primary_blocks_restore=self._no_live_restore(),
        )
        res.decision, res.signals, res.target = decision, snapshot, decision.target
        if decision.decision_type == DecisionType.HOLD or decision.target is None:
            raise ApplicationError(
                f"the policy holds: {hold_reason(request, decision.candidates)}",
                type="PolicyHold",
                non_retryable=True,
            )
        restore = decision.dr_mode == DrMode.RESTORE and workflow.patched(RESTORE_PATCH)
        if restore:
            decision, snapshot = await self._restore_target(
                request, plan, assessed, gathered, detected, decision, snapshot
            )
            res.decision, res.signals, res.target = decision, snapshot, decision.target
        if decision.dr_mode != DrMode.WARM_PROMOTE and not restore:
            raise ApplicationError(
                f"the policy chose {decision.target} in {decision.dr_mode.value} mode, which this runbook"
                " does not do (it promotes a standby); restore from backup by hand (runbooks/failover.md)",
                type="PolicyModeUnsupported",
                non_retryable=True,
            )
        assert decision.target is not None
        self._target, self._old = decision.target, decision.old_primary or current
        self._policy, self._decision_id = policy, decision.decision_id
        refuse_missing(
            failover_needs(decision.target, decision.old_primary or current, plan.apps_need_infra(), restore),
            plan,
        )
        backup = None
        if restore:
            self._restoring = False
            # Which backup, to which time: refused here (naming the input's field) before
            # anything changes.
            backup = await self._step(
                "pick_backup",
                steps.PICK_BACKUP,
                PickBackupInput(backup=inp.restore_backup, target_time=inp.restore_to),
            )
            res.backup_picked = backup
        if self._read_readiness_early:
            # Read with the servers; no checkpoint (see READINESS_WITH_ASSESS_PATCH).
            await self._weigh_early_readiness(policy, decision.target, res)
        elif self._where.placement != "colocated" and workflow.patched(READINESS_WITH_CHECKPOINT_PATCH):
            await steps.together(
                self._started_from(policy, decision.target, res), steps.checkpoint("decided")
            )
        else:
            await self._started_from(policy, decision.target, res)
            await steps.checkpoint("decided")
        return Decided(plan, assessed, request, decision, policy, decision.target, backup)

    async def _restore_target(
        self,
        request: DecisionRequest,
        plan: PlanResult,
        assessed: AssessResult,
        gathered: SignalsResult,
        detected: bool,
        decision: Decision,
        snapshot: SignalSnapshot,
    ) -> tuple[Decision, SignalSnapshot]:
        """Restore mode: no standby is fit to promote, so the target is a site whose host can
        run the restore. With site agents, each restore candidate's agent is asked to take a
        step (a dead host's queue has no poller: its schedule-to-start timeout says so in
        seconds); the decision is taken again without the silent ones, so ``{}`` does not
        choose a site whose host died with the primary. A hold then stops the run."""
        if not self._where.site_queues:
            return decision, snapshot
        pool = [c.site for c in decision.candidates if c.eligible and c.mode == DrMode.RESTORE]
        down = frozenset(s for s in await asyncio.gather(*(self._agent_down(s) for s in pool)) if s)
        if not down:
            return decision, snapshot
        self._hosts_down = down
        decision, snapshot = decide(
            request, plan, assessed.states, gathered, detected, down, self._no_live_restore()
        )
        if decision.decision_type == DecisionType.HOLD or decision.target is None:
            raise ApplicationError(
                f"the policy holds: {hold_reason(request, decision.candidates)}",
                type="PolicyHold",
                non_retryable=True,
            )
        return decision, snapshot

    @staticmethod
    def _no_live_restore() -> bool:
        """Whether a writable primary rules out restore mode (patch ``NO_LIVE_RESTORE_PATCH``)."""
        return workflow.patched(NO_LIVE_RESTORE_PATCH)

    async def _agent_down(self, site: str) -> str | None:
        """``site`` when its agent took no step within the policy's start timeout, else None."""
        name = f"probe_agent_{site}"
        try:
            probe = SiteInput(site=site, run_id=workflow.info().workflow_id)
            await self._step(name, steps.PROBE_AGENT, probe)
        except ActivityError as err:
            if not steps.agent_absent(err):
                raise
            record = next(r for r in reversed(self._steps) if r.name == name)
            record.outcome = StepOutcome.SKIPPED
            wait = self._where.agent_start_s
            record.detail = f"{site}'s agent did not answer within {wait:g} s: its host is down"
            return site
        return None

    async def _started_from(self, policy: Policy, target: str, res: FailoverResult) -> None:
        """Record the readiness the run starts from: the newest evaluation (the Schedule's or
        ``hybridops ready``'s), read, not run again: during the incident the old primary is
        down and its checks fail by definition, while the evaluation before it says what was
        already wrong (a standby not streaming, a secret gone). A ``fail`` of ``failover to
        TARGET`` in a fresh one holds the run or asks for approval, as the policy says; a
        reading that fails is recorded and the run goes on (it never blocks a failover)."""
        if not workflow.patched(READINESS_PATCH):
            return
        inp = LatestReadinessInput(
            queue=workflow.info().task_queue, target=target, max_age_s=policy.readiness.max_age_s
        )
        try:
            seen = await self._step("readiness", steps.READY_LATEST, inp, optional=True)
        except ActivityError:
            return
        self._weigh_readiness(policy, seen, res)

    async def _read_readiness(self, targets: list[str], policy: Policy) -> LatestReadinessResult | None:
        """The newest readiness evaluation, for a failover to each of ``targets`` (patch
        ``READINESS_WITH_ASSESS_PATCH``); None when the reading failed (recorded as a failed
        step: it never blocks a failover)."""
        inp = LatestReadinessInput(
            queue=workflow.info().task_queue,
            target="",
            targets=targets,
            max_age_s=policy.readiness.max_age_s,
        )
        try:
            return await self._step("readiness", steps.READY_LATEST, inp, optional=True)
        except ActivityError:
            return None

    async def _weigh_early_readiness(self, policy: Policy, target: str, res: FailoverResult) -> None:
        """The readiness read with the servers, for the target decided since. A target it did not
        cover (none is expected: the decision chooses among the cloud sites read) is read now,
        as before the patch."""
        if self._early_readiness is None:
            return
        runbook = f"failover to {target}"
        seen = next((r for r in self._early_readiness.per_target if r.runbook == runbook), None)
        if seen is None:
            await self._started_from(policy, target, res)
            return
        self._weigh_readiness(policy, seen, res)

    def _weigh_readiness(self, policy: Policy, seen: LatestReadinessResult, res: FailoverResult) -> None:
        """Record the readiness the run starts from; a ``fail`` in a fresh one holds the run or
        asks for approval, as the policy says."""
        res.readiness = seen
        if not seen.found or seen.stale or not seen.failing:
            return
        on_fail = policy.readiness.on_fail
        why = (
            f"the readiness of {seen.runbook} fails ({', '.join(c.id for c in seen.failing)};"
            f" evaluated {seen.age_s or 0:.0f} s before, {seen.workflow_id})"
        )
        if on_fail == ReadinessOnFail.HOLD:
            raise ApplicationError(
                f"{why}: the policy holds (readiness.on_fail: hold); repair it, or fail over with"
                " another target",
                type="ReadinessFailed",
                non_retryable=True,
            )
        self._readiness_asks_approval = on_fail == ReadinessOnFail.APPROVE

    async def _gate(self, inp: FailoverInput, d: Decided) -> None:
        """The approval gate, when the input, the decision or an unverifiable fence asks for
        one. It comes before anything that hurts a live primary (a run waiting an hour must
        not keep a healthy primary fenced for that hour), and the run looks again after it:
        the world may have moved while it waited."""
        old_state = next((s for s in d.assessed.states if s.site == d.decision.old_primary), None)
        unreachable = old_state is None or not old_state.reachable
        if not (
            inp.require_approval
            or d.decision.requires_approval
            or self._readiness_asks_approval
            or (unreachable and d.policy.safety.unverified_fence_requires_approval)
        ):
            return
        await self._approval_gate(inp.approval_timeout_s)
        await self._look_again(inp, d.plan, d.assessed, d.decision, d.request)
        # Durable before the first change: a worker that dies after fencing must not look
        # again at a world its own fence changed.
        await steps.checkpoint("looked again")

    async def _prepare_and_fence(self, d: Decided, res: FailoverResult, saga: Saga) -> FenceResult:
        """Make the target ready, then fence the old primary; each registers its undo first.
        An old primary the assessment found down is fenced while the target is prepared
        (patch ``failover-prepare-with-fence``): fencing it costs no client a write."""
        workflow_id, target, old = workflow.info().workflow_id, d.target, d.decision.old_primary
        self._phase = Phase.PREPARE_TARGET
        cloud = next((s.cloud for s in d.plan.sites if s.name == target), None)
        saga.register(
            "release_target", lambda: self._undo(steps.RELEASE, ReleaseInput(site=target, run_id=workflow_id))
        )
        prepare = self._step(
            "prepare_target",
            steps.PREPARE,
            PrepareInput(
                site=target,
                run_id=workflow_id,
                restore=d.restore,
                nodes=d.policy.failover.for_target(target, cloud.value if cloud else None),
            ),
        )
        syncs = bool(d.plan.workloads) and cloud is not None
        old_state = next((s for s in d.assessed.states if s.site == old), None)
        old_down = old_state is not None and not old_state.reachable
        if not syncs and old_down and workflow.patched(PREPARE_WITH_FENCE_PATCH):
            fencing = (
                self._isolate_marking(old, res, saga)
                if self._detected
                and Capability.ISOLATE in d.plan.capabilities.get("infra", [])
                and workflow.patched(ISOLATE_WITH_MARK_PATCH)
                else self._fence(old, "fence_old_primary", "unfence_primary", res, saga)
            )
            _, fence = await steps.together(prepare, fencing)
            self._phase = Phase.FENCE
            return fence
        await prepare
        if d.plan.workloads and cloud is not None and workflow.patched(GITOPS_PATCH):
            await self._sync_workloads(d.plan.workloads, cloud, saga)

        self._phase = Phase.FENCE
        return await self._fence(old, "fence_old_primary", "unfence_primary", res, saga)

    async def _sync_workloads(self, workloads: list[str], cloud: Cloud, saga: Saga) -> None:
        """GitOps puts the workloads on the target's cluster and the run waits until they are
        synced and healthy (the driver's progress, what is not ready yet, is the step's
        heartbeat), before anything is fenced: a sync that never gets healthy stops the run
        with the old primary untouched and DNS unmoved, naming what is not healthy, and the
        compensation takes the workloads off again (registered first)."""
        self._phase = Phase.SYNC_WORKLOADS
        run = workflow.info().workflow_id
        off = RemoveWorkloadsInput(apps=workloads, cloud=cloud, run_id=run)
        saga.register("remove_workloads", lambda: self._undo(steps.BURST_REMOVE, off, "remove_workloads"))
        await self._step(
            "sync_workloads",
            steps.FAILOVER_SYNC,
            DeployWorkloadsInput(apps=workloads, cloud=cloud, run_id=run),
        )

    async def _fence(self, old: str, name: str, undo: str, res: FailoverResult, saga: Saga) -> FenceResult:
        """Fence ``old`` (its undo registered first); a server that did not answer is isolated
        and the fence recorded unverified."""
        workflow_id = workflow.info().workflow_id
        isolate = "isolate_old_primary" if name == "fence_old_primary" else f"isolate_{old}"
        saga.register(undo, lambda: self._undo(steps.UNFENCE, UnfenceInput(site=old, run_id=workflow_id)))
        try:
            fence = await self._step(name, steps.FENCE, FenceInput(site=old, run_id=workflow_id))
        except ActivityError as err:
            if not steps.agent_absent(err):
                raise
            # Not a failure of the run: the answer to "is the host alive?" was no. By name: the
            # target's preparation may have been recorded after it (they run at once).
            record = next(r for r in reversed(self._steps) if r.name == name)
            record.outcome = StepOutcome.SKIPPED
            record.detail = (
                f"{old}'s agent did not answer within {self._where.agent_start_s:g} s: its host is down"
            )
            fence = await self._isolate_absent(old, workflow_id, isolate)
        if fence.token is None and fence.isolated is None:
            # The agent marked a server that did not answer; isolating it needs the infra
            # driver, which the agent does not hold.
            isolated = await self._step(isolate, steps.ISOLATE, IsolateInput(site=old, run_id=workflow_id))
            fence.isolated = isolated.isolated
        if name == "fence_old_primary":
            res.fence = fence
        if fence.token is None:
            self._unverified(old, fence, res)
        return fence

    @staticmethod
    def _unverified(old: str, fence: FenceResult, res: FailoverResult) -> None:
        """The finding of a fence without its proof: ``old`` did not answer."""
        res.findings.append(
            Finding(
                kind=FindingKind.FENCE_UNVERIFIED,
                sites=[old],
                detail=f"{old} did not answer when it was fenced: {fence.detail}"
                + (f"; {fence.isolated}" if fence.isolated and fence.isolated not in fence.detail else ""),
            )
        )

    async def _isolate_marking(self, old: str, res: FailoverResult, saga: Saga) -> FenceResult:
        """An old primary that did not answer, in a run the detection alert started: isolated
        at once, while its agent marks it (patch ``failover-isolate-with-mark``). The isolation
        is what makes the promotion safe (it can never serve again); the mark only adds its
        half on the disk, and its step runs on until :meth:`_marked` (before the run ends, and
        before any compensation)."""
        workflow_id = workflow.info().workflow_id
        saga.register(
            "unfence_primary", lambda: self._undo(steps.UNFENCE, UnfenceInput(site=old, run_id=workflow_id))
        )
        self._marking = asyncio.ensure_future(
            # Optional: once past the point of no return, its failure must not wait for an operator.
            self._step(
                "fence_old_primary", steps.FENCE, FenceInput(site=old, run_id=workflow_id), optional=True
            )
        )
        why = f"{old} did not answer the assessment and the detection alert saw it take no writes"
        isolated = await self._step(
            "isolate_old_primary", steps.ISOLATE, IsolateInput(site=old, run_id=workflow_id, reason=why)
        )
        fence = FenceResult(
            changed=isolated.changed,
            was_running=False,
            isolated=isolated.isolated,
            detail=f"isolated at once ({why}); its agent marks it meanwhile",
        )
        res.fence = fence
        self._unverified(old, fence, res)
        return fence

    async def _marked(self, res: FailoverResult) -> None:
        """The end of the old primary's mark that :meth:`_isolate_marking` left running: its
        result joins the fence's record. It cannot undo the isolation, so a mark that failed is
        a finding, never the run's failure."""
        marking, self._marking = self._marking, None
        if marking is None:
            return
        old = self._old or "the old primary"
        try:
            marked = await marking
        except ActivityError as err:
            record = next(r for r in reversed(self._steps) if r.name == "fence_old_primary")
            if steps.agent_absent(err):
                record.outcome = StepOutcome.SKIPPED
                record.detail = (
                    f"{old}'s agent did not answer within {self._where.agent_start_s:g} s: its host"
                    " is down (isolated already)"
                )
                why = "its agent did not answer (its host is down)"
            else:
                why = f"its agent could not mark it: {steps.describe_error(err)}"
            if res.fence is not None:
                res.fence.detail += f"; not marked: {why}"
            return
        if res.fence is not None:
            res.fence.detail += f"; marked by its agent: {marked.detail}"
            res.fence.fenced_lsn = res.fence.fenced_lsn or marked.fenced_lsn

    async def _isolate_absent(
        self, old: str, workflow_id: str, name: str = "isolate_old_primary"
    ) -> FenceResult:
        """The old primary's agent did not take the fence step: nobody polls its queue, its
        host is down. The fence is unverified: the infra driver isolates the site (or says
        why it cannot), and the policy's approval rule for unverified fences applies."""
        wait = self._where.agent_start_s
        isolated = await self._step(
            name,
            steps.ISOLATE,
            IsolateInput(
                site=old, run_id=workflow_id, reason=f"{old}'s agent did not answer within {wait:g} s"
            ),
        )
        return FenceResult(
            changed=isolated.changed,
            was_running=False,
            isolated=isolated.isolated,
            detail=f"its agent did not answer within {wait:g} s (its host is down): not marked",
        )

    async def _promote(
        self, inp: FailoverInput, d: Decided, fence: FenceResult, res: FailoverResult, saga: Saga
    ) -> None:
        """Promote the target once it has replayed the fenced primary's last LSN: the point of
        no return (break glass when a safety rule blocks it)."""
        self._phase = Phase.PROMOTE
        promote_in = PromoteInput(
            site=d.target,
            run_id=workflow.info().workflow_id,
            wait_for_lsn=fence.fenced_lsn,
            max_catchup_s=inp.max_catchup_s,
            fence=fence.token,
            fenced=[d.decision.old_primary, *res.fenced] if self._where.site_queues else [],
        )
        await self._guarded("promote", steps.PROMOTE, promote_in, d.policy, res.blocked_by)
        self._pass_point_of_no_return(saga, res)

    async def _fence_silent(self, d: Decided, res: FailoverResult, saga: Saga) -> list[str]:
        """Restore mode: every other server that does not answer is fenced too (each undo
        registered first). A promotion's target streamed from the old primary, so the rules
        ask only that no one else writes; a restored server starts a history of its own, and
        a silent standby nobody fenced may be a writer nobody sees."""
        target, old = d.target, d.decision.old_primary
        silent = [
            s.site
            for s in d.assessed.states
            if s.site not in (target, old) and not s.reachable and not s.fenced and s.site not in res.fenced
        ]
        for site in silent:
            await self._fence(site, f"fence_{site}", f"unfence_{site}", res, saga)
        return silent

    async def _restore(
        self, inp: FailoverInput, d: Decided, silent: list[str], res: FailoverResult, saga: Saga
    ) -> None:
        """Restore mode's point of no return: the target's server replaced by the backup the
        decide phase picked, the WAL archive replayed, started as the primary on a new
        timeline (break glass when a safety rule blocks it)."""
        assert d.backup is not None
        self._phase = Phase.RESTORE
        self._restoring = True
        restore_in = RestorePrimaryInput(
            site=d.target,
            run_id=workflow.info().workflow_id,
            backup=d.backup.backup.name,
            target_time=inp.restore_to,
            fenced=[d.decision.old_primary, *silent, *res.fenced] if self._where.site_queues else [],
        )
        res.restore = await self._guarded(
            "restore_primary", steps.RESTORE_PRIMARY, restore_in, d.policy, res.blocked_by
        )
        self._pass_point_of_no_return(saga, res)

    async def _cut_over(self, d: Decided, res: FailoverResult) -> None:
        """Send the apps and clients to the new primary, check that a write lands there, and
        measure RTO and RPO."""
        target = d.target
        self._phase = Phase.REPOINT_APPS
        repoint = self._step(
            "repoint_apps", steps.REPOINT, RepointAppsInput(site=target, run_id=workflow.info().workflow_id)
        )
        cutover = self._guarded(
            "dns_cutover", steps.DNS_CUTOVER, DnsCutoverInput(site=target), d.policy, res.blocked_by
        )
        if workflow.patched(APPS_WITH_DNS_PATCH):
            # Where a failure stops the run: the cutover, unless the apps failed (what to
            # finish by hand then names both).
            self._phase = Phase.DNS_CUTOVER
            await steps.together(self._failing_in(Phase.REPOINT_APPS, repoint), cutover)
        else:
            await repoint
            self._phase = Phase.DNS_CUTOVER
            await cutover

        self._phase = Phase.VERIFY
        verify = await self._step("verify", steps.VERIFY, VerifyInput(site=target))
        lag = next((c.lag_seconds for c in d.decision.candidates if c.site == target), None)
        measured: RpoResult | None = None
        try:
            measured = await self._step(
                "measure_rpo",
                steps.RPO,
                RpoInput(
                    site=target,
                    incident_started_at=res.incident_started_at,
                    fallback_lag_seconds=lag,
                    clients_wait_s=CLIENTS_WAIT_S,
                ),
                optional=True,
            )
            res.rpo = measured.rpo
        except ActivityError:
            res.rpo = RpoMeasure(seconds=lag, method="lag")  # recorded as a failed step
        self._measure_rto(res, d.policy, verify.first_write_at, measured)

    async def _failing_in(self, phase: Phase, work: Awaitable[T]) -> T:
        """``work``, one of steps run at once: its failure sets the run's phase to ``phase``
        (where the run stopped, what to finish by hand)."""
        try:
            return await work
        except BaseException:
            self._phase = phase
            raise

    def _measure_rto(
        self, res: FailoverResult, policy: Policy, first_write_at: datetime, measured: RpoResult | None
    ) -> None:
        """The RTO clients saw: from the old primary's last acknowledged write to the clients'
        first on the new one, where a live writer's ledger saw both; else from the incident to
        the run's own first write through the DNS name. Split into detection, decision,
        execution and reconnect, and checked against the policy's objectives."""
        last = measured.last_ack_at if measured else None
        back = measured.first_ack_at if measured else None
        if last is not None and back is not None:
            since, end = last, back
            res.rto_counted_from = "the workload's last acknowledged write on the old primary (ledger)"
        else:
            since, end = res.incident_started_at, first_write_at
            res.rto_counted_from = "the incident (the alert's start, or the run's)"
        res.rto_since = since
        res.rto_seconds = round((end - since).total_seconds(), 3)
        changed = next((s.started_at for s in self._steps if s.name == "prepare_target"), None)
        res.rto_split = RtoSplit.between(since, res.started_at, changed, first_write_at, end)
        res.rto_objective_s = policy.constraints.rto_max_s
        res.rpo_objective_s = policy.constraints.rpo_max_s

    async def _rejoin_standbys(self, d: Decided) -> None:
        """The other standbys follow the new primary. Best effort: the failover itself is
        done; a standby that cannot follow is in the evidence for a human."""
        self._phase = Phase.REJOIN
        target, old = d.target, d.decision.old_primary
        others = [s.name for s in d.plan.sites if s.name not in (target, old) and s.cloud is not None]
        reachable = {s.site for s in d.assessed.states if s.reachable and s.in_recovery}
        others = [s for s in others if s in reachable]
        if others:
            try:
                await self._step(
                    "rejoin_standbys",
                    steps.FOLLOW,
                    FollowInput(sites=others, new_primary=target),
                    optional=True,
                )
            except ActivityError:
                pass

    async def _apps_health(self, d: Decided) -> HealthCheck:
        """Ask monitoring, once clients reach the new primary, how the apps at its site are
        doing: the signals source's error rate against ``constraints.max_error_rate``. It
        informs (in the evidence and the report); it fails nothing: the run is past its point
        of no return, and a source that does not answer is recorded as unknown."""
        self._phase = Phase.HEALTH
        site = next(s for s in d.plan.sites if s.name == d.target)
        try:
            got = await self._step("check_health", steps.SIGNALS, SignalsInput(sites=[site]), optional=True)
        except ActivityError as err:
            return error_rate_check(None, d.target, d.policy, steps.describe_error(err))
        check = error_rate_check(got.snapshot, d.target, d.policy)
        # The step's record says what was judged, not the signals step's own summary.
        record = next(r for r in reversed(self._steps) if r.name == "check_health")
        record.detail = f"{check.id}: {check.detail}"
        return check

    async def _repair_dns(self, topology: Topology, plan: PlanResult, res: FailoverResult) -> None:
        """The primary is healthy but DNS sends clients elsewhere (a restored zone, a record
        edited by hand): point it at the one writable server, under the same safety rules as
        a cutover. Clients get their primary back; nothing else changes."""
        if topology.primary is None or topology.dns_site == topology.primary:
            return
        await steps.checkpoint("dns repair")
        self._phase = Phase.DNS_CUTOVER
        policy = plan.policy or Policy()
        await self._guarded(
            "dns_repair",
            steps.DNS_CUTOVER,
            DnsCutoverInput(site=topology.primary),
            policy,
            res.blocked_by,
        )
        res.dns_repaired = True

    async def _look_again(
        self,
        inp: FailoverInput,
        plan: PlanResult,
        before: AssessResult,
        decision: Decision,
        request: DecisionRequest,
    ) -> None:
        """After a wait, read DNS, the servers and the signals again, and decide again on
        them: when the world moved (DNS, who is writable, the target's role or timeline, the
        decision), stop before acting, saying what changed."""
        self._phase = Phase.DECIDE
        plan_now = await self._step("plan_again", steps.PLAN, PlanInput())
        now = await self._step("assess_again", steps.ASSESS, AssessInput(sites=[s.name for s in plan.sites]))
        gathered = await self._step(
            "gather_signals_again", steps.SIGNALS, signal_targets(request, plan.sites)
        )
        again, _ = decide(
            request,
            plan_now,
            now.states,
            gathered,
            inp.requested_by.startswith(ALERT_REQUESTER),
            self._hosts_down,
            self._no_live_restore(),
        )
        changes = world_changes(plan, before, decision, plan_now, now, again)
        if changes:
            raise ApplicationError(
                "the world changed while the run waited: " + "; ".join(changes) + ". Nothing was fenced"
                " or promoted; start a new run on the world as it is",
                type="WorldChanged",
                non_retryable=True,
            )

    async def _settle_split_brain(
        self, topology: Topology, policy: Policy, res: FailoverResult, workflow_id: str
    ) -> tuple[AssessResult, str]:
        """Several servers accept writes. Record what each wrote on its own branch; then, as
        the policy says, hold (a human decides which data wins), or keep the writer DNS
        points at (clients write there) and fence every other one. Not compensated: undoing
        it would make the split brain again. Returns the servers as they are afterwards, and
        the primary kept."""
        res.diverged = diverged(topology)
        keep = keep_writer(topology)
        ranges = "; ".join(
            f"{d.site}: timeline {d.timeline}, {d.from_lsn or '?'} .. {d.to_lsn or '?'}" for d in res.diverged
        )
        if policy.safety.split_brain == SplitBrainAction.HOLD or keep is None:
            why = (
                "DNS points at none of them, so there is no writer to keep"
                if keep is None
                else "the policy holds (safety.split_brain: hold)"
            )
            raise ApplicationError(
                f"split brain: {', '.join(topology.writable)} accept writes ({why});"
                f" diverged writes: {ranges}. A human decides which data wins"
                " (runbooks/failover.md, Split brain)",
                type="SplitBrain",
                non_retryable=True,
            )
        await steps.checkpoint("split brain found")
        self._phase = Phase.FENCE
        for site in topology.writable:
            if site != keep:
                if workflow.patched(SPLIT_FENCE_PATCH):
                    # As the old primary's fence: an agent that takes no step in time (a dead or
                    # loaded host) gets its site isolated and the fence recorded unverified; the
                    # undo goes to a saga never compensated (undoing re-creates the split brain).
                    await self._fence(site, f"fence_writer_{site}", f"unfence_{site}", res, Saga())
                else:
                    await self._step(
                        f"fence_writer_{site}", steps.FENCE, FenceInput(site=site, run_id=workflow_id)
                    )
                res.fenced.append(site)
        after = await self._step(
            "assess_after_fence",
            steps.ASSESS,
            AssessInput(sites=[s.site for s in topology.servers]),
        )
        return after, keep

    async def _await_resolve(self, timeout_s: float) -> None:
        """Wait for the alert that started this run to resolve: monitoring's confirmation that
        the incident is over. Not a failure if it does not: the evidence says so."""
        self._phase = Phase.AWAIT_RESOLVE
        rec = StepRecord(name="alert_resolved", started_at=workflow.now())
        self._steps.append(rec)
        try:
            await workflow.wait_condition(
                lambda: any(a.status == "resolved" for a in self._alerts),
                timeout=timedelta(seconds=timeout_s),
            )
            rec.outcome, rec.detail = StepOutcome.UNCHANGED, "the alert resolved"
        except TimeoutError:
            rec.outcome, rec.detail = StepOutcome.SKIPPED, f"the alert still fires after {timeout_s:.0f} s"
        rec.ended_at = workflow.now()
