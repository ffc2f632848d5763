"""``BurstWorkflow``: add capacity in a cloud while the on-prem site is busy, then give it back.

decide (the policy, decision type burst) -> node pool +N -> workloads (GitOps) -> a share of
the traffic (weighted DNS) -> hold: every ``check_interval_s`` read the load and the cost so
far, continuing as new every ``checks_per_run`` checks so the history stays bounded -> scale
in when the load falls, on the ``stop`` signal, at the budget cap or at the teardown deadline:
traffic back, workloads removed, node pool back -> evidence.

Scale-in undoes exactly what :class:`BurstState` records as done, as a saga built from that
state, so it is the same code for a clean end and for a failure anywhere (the compensation),
and it survives continue-as-new (the state is the next run's input; closures are not).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from hybridops.constants import BURST_STATE_QUERY, STOP_SIGNAL, WorkflowType
    from hybridops.contracts.base import Phase, RunStatus, StepRecord
    from hybridops.contracts.burst import (
        BurstInput,
        BurstPlan,
        BurstPlanInput,
        BurstResult,
        BurstState,
        DeployWorkloadsInput,
        LoadInput,
        PoolInput,
        RemoveWorkloadsInput,
        WeightsInput,
        burst_cost,
        carried_state,
    )
    from hybridops.contracts.decision import DecisionRequest, DecisionType
    from hybridops.decision import evaluate, signal_targets
    from hybridops.errors import InputError
    from workflows import steps
    from workflows.approval import ApprovalGate
    from workflows.runbook import SAFETY_PATCH, Rejected
    from workflows.saga import Saga


@workflow.defn(name=WorkflowType.BURST.value, failure_exception_types=[ValidationError])
class BurstWorkflow(ApprovalGate):
    """Burst into a cloud and back."""

    RUNBOOK = "burst"
    EVIDENCE = steps.BURST_EVIDENCE

    def __init__(self) -> None:
        super().__init__()
        self._stop_requested: str | None = None
        self._state: BurstState | None = None

    @workflow.signal(name=STOP_SIGNAL)
    def stop(self, reason: str = "stopped") -> None:
        """Scale in now, cleanly."""
        self._stop_requested = reason or "stopped"

    def _visible_steps(self) -> list[StepRecord]:
        return self._steps + self._compensations

    def _hold_state(self, state: BurstState) -> BurstState:
        """From here on ``state`` is what the run has done: its steps are the run's records
        (so they continue as new with it) and scale-in undoes what it says was done."""
        self._state, self._steps, self._target = state, state.steps, state.target
        return state

    def _carry(self, state: BurstState) -> BurstState:
        """Carry on from the state of the run this one continues: its steps, then this run's."""
        state.steps = [*state.steps, *self._steps]
        return self._hold_state(state)

    @workflow.query(name=BURST_STATE_QUERY)
    def burst_state(self) -> BurstState | None:
        return self._state

    @workflow.run
    async def run(self, inp: BurstInput) -> BurstResult:
        info = workflow.info()
        # Before anything runs: a state given in a start is refused and changes nothing.
        try:
            carried = carried_state(inp, info.continued_run_id)
        except InputError as err:
            raise ApplicationError(str(err), type=type(err).__name__, non_retryable=True) from None
        res = BurstResult(
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            status=RunStatus.RUNNING,
            input=inp.model_copy(update={"state": None}),
            started_at=carried.started_at if carried else workflow.now(),
        )
        plan: BurstPlan | None = None
        failure: BaseException | None = None
        try:
            self._phase = Phase.PLAN
            plan = await self._step("plan", steps.BURST_PLAN, BurstPlanInput())
            self._placed(plan.placement, plan.queue_suffix)
            cap = inp.budget_cap if inp.budget_cap is not None else plan.budget_cap
            state = self._carry(carried) if carried is not None else await self._scale_out(inp, plan, res)
            res.ended_because = await self._hold(inp, plan, state, cap)
        except (Exception, asyncio.CancelledError) as err:
            failure = err
            res.error = steps.describe_error(err)
            res.ended_because = res.error
        if plan is not None and self._state is not None:
            await self._scale_in(plan, self._state, res)
        if res.status != RunStatus.FAILED:
            if failure is None:
                res.status = RunStatus.SUCCEEDED
            elif isinstance(failure, Rejected):
                res.status = RunStatus.REJECTED
            else:
                res.status = RunStatus.COMPENSATED if self._changed_anything() else RunStatus.HELD
        self._collect(res)
        return await self._end(res, failure)

    # ------------------------------------------------------------------ phases

    async def _decide(self, inp: BurstInput, plan: BurstPlan, res: BurstResult) -> BurstState:
        """Decide where to burst (the policy, decision type burst), behind the approval gate
        when asked for; nothing has scaled yet, so a hold, a rejection or the gate's timeout
        ends the run with nothing to undo. Returns the state the rest of the burst keeps."""
        self._phase = Phase.DECIDE
        if plan.topology is not None and len(plan.topology.writable) != 1:
            raise ApplicationError(
                "the database has no single writable primary ("
                + "; ".join(f.detail for f in plan.topology.findings)
                + "): a burst adds load to it; settle it first (runbooks/failover.md)",
                type="TopologyUnsafe",
                non_retryable=True,
            )
        request = DecisionRequest(
            decision_type=DecisionType.BURST, current_primary=plan.home, target=inp.target
        )
        gathered = await self._step("gather_signals", steps.SIGNALS, signal_targets(request, plan.sites))
        decision = evaluate(request, gathered.snapshot, gathered.policy)
        res.decision = decision
        if decision.target is None or decision.cloud is None:
            why = "; ".join(f"{c.site}: {c.rejected_because}" for c in decision.candidates) or "no candidates"
            raise ApplicationError(
                f"the policy holds: no cloud to burst into ({why})", type="PolicyHold", non_retryable=True
            )
        workflow.deprecate_patch(SAFETY_PATCH)  # where ``patched`` was: recorded histories replay
        if inp.require_approval or decision.requires_approval:
            self._policy, self._decision_id = gathered.policy, decision.decision_id
            await self._approval_gate(inp.approval_timeout_s)
        state = BurstState(
            started_at=res.started_at,
            target=decision.target,
            cloud=decision.cloud,
            decision=decision,
            steps=self._steps,
        )
        return self._hold_state(state)

    async def _scale_out(self, inp: BurstInput, plan: BurstPlan, res: BurstResult) -> BurstState:
        """Decide, then scale out: node pool, workloads, a share of the traffic. Each change is
        written into the state before it is made (its compensation registered: scale-in
        builds the saga from the state), so scale-in knows to undo it."""
        workflow_id = workflow.info().workflow_id
        state = await self._decide(inp, plan, res)
        await steps.checkpoint("burst decided")

        self._phase = Phase.SCALE_OUT
        current = await self._step(
            "pool_size", steps.BURST_POOL, PoolInput(cloud=state.cloud, run_id=workflow_id)
        )
        state.pool_before = current.nodes
        state.pool_after = current.nodes + inp.extra_nodes
        await self._step(
            "scale_out",
            steps.BURST_POOL,
            PoolInput(cloud=state.cloud, nodes=state.pool_after, run_id=workflow_id),
        )

        self._phase = Phase.DEPLOY
        state.deployed = list(plan.apps)
        await self._step(
            "deploy_workloads",
            steps.BURST_DEPLOY,
            DeployWorkloadsInput(apps=plan.apps, cloud=state.cloud, run_id=workflow_id),
        )

        self._phase = Phase.SHIFT_TRAFFIC
        home, target = plan.home, state.target
        weights = {
            home: (plan.endpoints[home], 100 - inp.traffic_share),
            target: (plan.endpoints[target], inp.traffic_share),
        }
        state.weights_before = {}  # attempted: scale-in puts back what the step found
        shifted = await self._step(
            "shift_traffic",
            steps.BURST_TRAFFIC,
            WeightsInput(record=plan.record, weights=weights, ttl=plan.ttl),
        )
        state.weights_before = shifted.before
        return state

    async def _hold(self, inp: BurstInput, plan: BurstPlan, state: BurstState, cap: float) -> str:
        """Check the load every interval until a reason to scale in; continue as new when
        this run has made ``checks_per_run`` checks."""
        self._phase = Phase.HOLD
        checks_here = 0
        while True:
            if self._stop_requested:
                return f"stopped: {self._stop_requested}"
            load = await steps.run_step(steps.BURST_LOAD, LoadInput(), self._where)
            state.checks += 1
            checks_here += 1
            state.last_load = load.load
            if load.load is not None:
                state.peak_load = max(state.peak_load or 0.0, load.load)
            _, cost = self._cost(state, plan)
            elapsed = (workflow.now() - state.started_at).total_seconds()
            if load.load is not None and load.load < inp.scale_in_below:
                return f"load: {load.load:g} < {inp.scale_in_below:g}"
            if cost >= cap:
                return f"budget: estimated cost {cost:.2f} >= cap {cap:g}"
            if elapsed >= inp.max_duration_s:
                return f"deadline: {elapsed:.0f} s >= {inp.max_duration_s:g} s"
            if checks_here >= inp.checks_per_run:
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self._stop_requested:
                    return f"stopped: {self._stop_requested}"
                state.runs += 1
                state.carried_from = workflow.info().run_id  # the next run checks it came from here
                workflow.continue_as_new(inp.model_copy(update={"state": state}))
            try:
                await workflow.wait_condition(
                    lambda: self._stop_requested is not None, timeout=timedelta(seconds=inp.check_interval_s)
                )
            except TimeoutError:
                pass

    async def _scale_in(self, plan: BurstPlan, state: BurstState, res: BurstResult) -> None:
        """Undo what the state says was done, in reverse (traffic, workloads, node pool), as a
        saga: each undo is tried even when an earlier one failed, shielded from cancellation,
        the first failure reported at the end. The same for a clean end and for a failure
        anywhere; then the state's figures into the result."""
        self._phase = Phase.SCALE_IN
        try:
            await self._saga_of(plan, state).compensate()
        except Exception as err:
            res.error = (
                res.error + "; " if res.error else ""
            ) + f"scale-in failed: {steps.describe_error(err)}"
            res.status = RunStatus.FAILED
        res.target, res.decision = state.target, state.decision
        res.checks, res.runs, res.peak_load = state.checks, state.runs, state.peak_load
        res.node_hours, res.cost_estimate = self._cost(state, plan)

    def _saga_of(self, plan: BurstPlan, state: BurstState) -> Saga:
        """The burst's compensations, registered in the order their steps ran, from the
        state: a saga's closures do not survive continue-as-new, the state does (it is the
        next run's input), so each run builds its saga from the state it holds."""
        workflow_id = workflow.info().workflow_id
        saga = Saga()
        if state.pool_before is not None:
            pool = PoolInput(cloud=state.cloud, nodes=state.pool_before, run_id=workflow_id)
            saga.register("pool_back", lambda: self._undo(steps.BURST_POOL, pool, "pool_back"))
        if state.deployed:
            workloads = RemoveWorkloadsInput(apps=state.deployed, cloud=state.cloud, run_id=workflow_id)
            saga.register(
                "remove_workloads", lambda: self._undo(steps.BURST_REMOVE, workloads, "remove_workloads")
            )
        if state.weights_before is not None:
            before = state.weights_before or {plan.home: (plan.endpoints[plan.home], 100)}
            back = WeightsInput(record=plan.record, weights=before, ttl=plan.ttl)
            saga.register("traffic_back", lambda: self._undo(steps.BURST_TRAFFIC, back, "traffic_back"))
        return saga

    # ------------------------------------------------------------------ helpers

    def _cost(self, state: BurstState, plan: BurstPlan) -> tuple[float, float]:
        """Node-hours so far and their estimated cost (extra nodes x hours x price)."""
        return burst_cost(state, plan.price_per_node_hour, workflow.now())
