"""How each step runs: which activity, on which task queue, with which timeouts and retries.

Placement (the inventory's ``placement``, read once by the plan step and so in the history):

* ``colocated``: the control worker holds every driver, so steps run as *local activities*.
  On the dev server a local activity costs about 6 ms a step against about 25 to 35 ms for a
  queued one (measured on the lab's dev server, its SQLite file in WAL mode; 45 to 100 ms
  before, hybridops/lab/temporal.py; bench/failover.py prints each step's time beside the same
  activity called by a plain script), and a failover's RTO is made of these steps.
  They are safe here because every activity is idempotent: a local activity whose worker
  dies is run again by the next worker from the last recorded result, and converges.
* ``queues``: each step is a normal activity on the queue of its capability (DESIGN.md
  rule 7), for deployments where database and DNS credentials live on other workers. A step
  that touches a server's process or files (``on_site``) runs on the queue of the site it acts
  on, ``hybridops-db-<site>``, where that site's agent polls, next to its server. An agent
  holds only its own server's credentials, so the safety rules that need every server's view
  run first as the step's ``guard``, on the reader queue, with the same input; the agent then
  checks what it can see itself (its own server against the fencing proof). A dead host has no
  poller: the step's schedule-to-start timeout (the policy's ``agent_start_timeout_s``) says so
  in seconds, instead of the step waiting for ever.

The plan step itself always runs on the control queue as a local activity: it only reads
the inventory and DNS, and it is what says where the rest runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Generic, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutType
from temporalio.exceptions import TimeoutError as TimeoutError_

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from hybridops.constants import ActivityName, TaskQueue
    from hybridops.contracts import (
        bootstrap,
        burst,
        decision,
        drill,
        failback,
        failover,
        lease,
        readiness,
        sites,
    )
    from hybridops.contracts.base import (
        ActivityResult,
        CheckpointInput,
        CheckpointResult,
        EvidenceResult,
        StepOutcome,
        StepRecord,
    )

In = TypeVar("In", bound=BaseModel)
"""A step's input type."""
Out = TypeVar("Out", bound=BaseModel)
"""A step's result type."""
A = TypeVar("A", bound=ActivityResult)
"""The result type of a recorded step (it says whether it changed anything, on which attempt)."""
X = TypeVar("X")
Y = TypeVar("Y")

READ_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=2),
    maximum_attempts=5,
)
"""Read-only steps: a few quick tries."""
CHANGE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=8,
)
"""World-changing steps: idempotent, so retried with backoff; non-retryable errors stop at once."""
AFTER_PONR_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=30,
)
"""Past the point of no return there is no going back, only forward: retry for longer."""


HEARTBEAT_TIMEOUT_S = 15.0
"""How long a queued step may go without a heartbeat before its worker counts as dead, unless
the policy says otherwise (``detection.worker_heartbeat_timeout_s``). Steps heartbeat every
quarter of it (activities/common.py, KeepAlive)."""


@dataclass(frozen=True)
class Step(Generic[In, Out]):
    """One activity as the workflow calls it: a call names the step and its input, and the
    result type follows (mypy checks both, as with the SDK's ``execute_activity_method``)."""

    activity: ActivityName
    input: type[In]
    result: type[Out]
    queue: TaskQueue
    timeout: timedelta
    retry: RetryPolicy
    irreversible: bool = False
    local_only: bool = False
    """Always a local activity: a plan step, which reads the placement the rest follows."""
    own_queue: bool = False
    """A queued activity on the run's own task queue, whatever the placement (the server hands
    it to this worker with the task that schedules it): a plan step run beside another step,
    before the plan says where the rest go."""
    on_site: bool = False
    """Touches the server or files of the site its input names (``site``): with placement
    ``queues`` it runs on that site's agent queue."""
    guard: Step[In, Any] | None = None
    """With placement ``queues``: a read-only step run right before this one, with the same
    input, on a worker that sees every server (the cross-site safety rules)."""


@dataclass(frozen=True)
class Where:
    """Where a run's steps execute, from its plan step (so it is in the history)."""

    placement: str = "colocated"
    queue_suffix: str = ""
    site_queues: dict[str, str] | None = None
    """Each site's agent queue (placement ``queues``)."""
    agent_start_s: float = 10.0
    """How long an agent may take to pick up a step (schedule-to-start)."""
    heartbeat_s: float = HEARTBEAT_TIMEOUT_S
    """How long a queued step may go without a heartbeat before its worker counts as dead."""
    agent_restart_s: float = 60.0
    """How long an agent that died in a step may take to come back and take it again."""

    def queue_of(self, step: Step[Any, Any], arg: Any) -> str:
        """The task queue ``step`` runs on, for ``arg``."""
        if step.on_site and self.site_queues:
            sites = getattr(arg, "sites", None)
            site = getattr(arg, "site", None) or (sites[0] if sites and len(sites) == 1 else None)
            if site in self.site_queues:
                return self.site_queues[site]
        return step.queue.value + self.queue_suffix


PLAN = Step(
    ActivityName.PLAN_SITES,
    sites.PlanInput,
    sites.PlanResult,
    TaskQueue.CONTROL,
    timedelta(seconds=30),
    READ_RETRY,
    local_only=True,
)
PLAN_BESIDE_LEASE = replace(PLAN, local_only=False, own_queue=True)
"""The plan, queued beside the lease's request (patch ``failover-plan-with-lease``): a local
activity would wait for the task that schedules the request to end, and the two would run one
after the other."""
ASSESS = Step(
    ActivityName.ASSESS_SITES,
    sites.AssessInput,
    sites.AssessResult,
    TaskQueue.DB,
    timedelta(seconds=30),
    READ_RETRY,
)
SIGNALS = Step(
    ActivityName.GATHER_SIGNALS,
    decision.SignalsInput,
    decision.SignalsResult,
    TaskQueue.CONTROL,
    timedelta(seconds=30),
    READ_RETRY,
)
PREPARE = Step(
    ActivityName.PREPARE_TARGET,
    sites.PrepareInput,
    sites.PrepareResult,
    TaskQueue.INFRA,
    timedelta(minutes=30),
    CHANGE_RETRY,
)
RELEASE = Step(
    ActivityName.RELEASE_TARGET,
    sites.ReleaseInput,
    sites.ReleaseResult,
    TaskQueue.INFRA,
    timedelta(minutes=30),
    CHANGE_RETRY,
)
FENCE = Step(
    ActivityName.FENCE_PRIMARY,
    sites.FenceInput,
    sites.FenceResult,
    TaskQueue.DB,
    timedelta(seconds=120),
    CHANGE_RETRY,
    on_site=True,
)
CHECK_PROMOTION = Step(
    ActivityName.CHECK_PROMOTION,
    sites.PromoteInput,
    sites.CheckResult,
    TaskQueue.DB,
    timedelta(seconds=30),
    READ_RETRY,
)
CHECK_UNFENCE = Step(
    ActivityName.CHECK_UNFENCE,
    sites.UnfenceInput,
    sites.CheckResult,
    TaskQueue.DB,
    timedelta(seconds=30),
    READ_RETRY,
)
UNFENCE = Step(
    ActivityName.UNFENCE_PRIMARY,
    sites.UnfenceInput,
    sites.UnfenceResult,
    TaskQueue.DB,
    timedelta(seconds=120),
    CHANGE_RETRY,
    on_site=True,
    guard=CHECK_UNFENCE,
)
ISOLATE = Step(
    ActivityName.ISOLATE_SITE,
    sites.IsolateInput,
    sites.IsolateResult,
    TaskQueue.INFRA,
    timedelta(minutes=10),
    CHANGE_RETRY,
)
PROMOTE = Step(
    ActivityName.PROMOTE_STANDBY,
    sites.PromoteInput,
    sites.PromoteResult,
    TaskQueue.DB,
    timedelta(seconds=180),
    CHANGE_RETRY,
    irreversible=True,
    on_site=True,
    guard=CHECK_PROMOTION,
)
PROBE_AGENT = Step(
    ActivityName.PROBE_AGENT,
    sites.SiteInput,
    sites.CheckResult,
    TaskQueue.DB,
    timedelta(seconds=30),
    READ_RETRY,
    on_site=True,
)
PICK_BACKUP = Step(
    ActivityName.PICK_BACKUP,
    sites.PickBackupInput,
    sites.PickBackupResult,
    TaskQueue.DB,
    timedelta(seconds=60),
    READ_RETRY,
)
CHECK_RESTORE = Step(
    ActivityName.CHECK_RESTORE,
    sites.RestorePrimaryInput,
    sites.CheckResult,
    TaskQueue.DB,
    timedelta(seconds=30),
    READ_RETRY,
)
RESTORE_PRIMARY = Step(
    ActivityName.RESTORE_PRIMARY,
    sites.RestorePrimaryInput,
    sites.RestorePrimaryResult,
    TaskQueue.DB,
    # As long as the backup is big and the archive long (bench/failover.py --restore measures
    # it); it heartbeats its phases and bytes meanwhile, so a dead worker is known in seconds.
    timedelta(hours=6),
    CHANGE_RETRY,
    irreversible=True,
    on_site=True,
    guard=CHECK_RESTORE,
)
REPOINT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=30,
    non_retryable_error_types=["GitOpsNotReady"],
)
"""As :data:`AFTER_PONR_RETRY`, except that apps not synced and healthy by the GitOps driver's
deadline (``gitops.timeout_s``, which the attempt already waited out) end the step, naming
what is not healthy, so an operator sees it now rather than after 30 more deadlines."""
REPOINT = Step(
    ActivityName.REPOINT_APPS,
    sites.RepointAppsInput,
    sites.RepointAppsResult,
    TaskQueue.INFRA,
    # With app_database.via gitops: a commit, then the sync waits up to gitops.timeout_s.
    timedelta(minutes=20),
    REPOINT_RETRY,
)
DNS_CUTOVER = Step(
    ActivityName.DNS_CUTOVER,
    sites.DnsCutoverInput,
    sites.DnsResult,
    TaskQueue.DNS,
    timedelta(seconds=180),
    AFTER_PONR_RETRY,
)
VERIFY = Step(
    ActivityName.VERIFY_WRITES,
    sites.VerifyInput,
    sites.VerifyResult,
    TaskQueue.DB,
    timedelta(seconds=90),
    AFTER_PONR_RETRY,
)
RPO = Step(
    ActivityName.MEASURE_RPO, sites.RpoInput, sites.RpoResult, TaskQueue.DB, timedelta(seconds=60), READ_RETRY
)
FOLLOW = Step(
    ActivityName.FOLLOW_PRIMARY,
    sites.FollowInput,
    sites.FollowResult,
    TaskQueue.DB,
    timedelta(seconds=60),
    READ_RETRY,
)
CHECKPOINT = Step(
    ActivityName.CHECKPOINT,
    CheckpointInput,
    CheckpointResult,
    TaskQueue.CONTROL,
    timedelta(seconds=10),
    READ_RETRY,
)
EVIDENCE = Step(
    ActivityName.WRITE_EVIDENCE,
    failover.EvidenceInput,
    EvidenceResult,
    TaskQueue.CONTROL,
    timedelta(seconds=120),
    AFTER_PONR_RETRY,
)

# DrillWorkflow: restores take as long as the backup is big; the rest is quick.
DRILL_PLAN = Step(
    ActivityName.PLAN_DRILL,
    drill.DrillPlanInput,
    drill.DrillPlan,
    TaskQueue.CONTROL,
    timedelta(seconds=30),
    READ_RETRY,
    local_only=True,
)
DRILL_BACKUP = Step(
    ActivityName.TAKE_BACKUP,
    drill.TakeBackupInput,
    drill.BackupStepResult,
    TaskQueue.DB,
    timedelta(hours=2),
    CHANGE_RETRY,
)
DRILL_RESTORE = Step(
    ActivityName.RESTORE_BACKUP,
    drill.RestoreInput,
    drill.RestoreStepResult,
    TaskQueue.DB,
    timedelta(hours=4),
    CHANGE_RETRY,
)
DRILL_START = Step(
    ActivityName.START_SCRATCH,
    drill.ScratchInput,
    drill.ScratchResult,
    TaskQueue.DB,
    timedelta(hours=2),
    CHANGE_RETRY,
)
DRILL_VERIFY = Step(
    ActivityName.VERIFY_RESTORE,
    drill.VerifyRestoreInput,
    drill.VerifyRestoreResult,
    TaskQueue.DB,
    timedelta(minutes=5),
    READ_RETRY,
)
DRILL_TEARDOWN = Step(
    ActivityName.TEARDOWN_SCRATCH,
    drill.TeardownInput,
    drill.TeardownResult,
    TaskQueue.DB,
    timedelta(minutes=10),
    AFTER_PONR_RETRY,
)
DRILL_EVIDENCE = Step(
    ActivityName.WRITE_DRILL_EVIDENCE,
    drill.DrillEvidenceInput,
    EvidenceResult,
    TaskQueue.CONTROL,
    timedelta(seconds=120),
    AFTER_PONR_RETRY,
)

# FailbackWorkflow: a rejoin may be a base backup (hours); catch_up enforces its own deadline
# (the input's), so its timeout is only a backstop.
FAILBACK_REJOIN = Step(
    ActivityName.REJOIN_STANDBY,
    failback.RejoinInput,
    failback.RejoinResult,
    TaskQueue.DB,
    timedelta(hours=6),
    CHANGE_RETRY,
    on_site=True,
)
FAILBACK_CATCH_UP = Step(
    ActivityName.CATCH_UP,
    failback.CatchUpInput,
    failback.CatchUpResult,
    TaskQueue.DB,
    timedelta(hours=2),
    CHANGE_RETRY,
)
FAILBACK_PAUSE = Step(
    ActivityName.PAUSE_WRITES,
    failback.PauseInput,
    failback.PauseResult,
    TaskQueue.DB,
    timedelta(seconds=60),
    CHANGE_RETRY,
    on_site=True,
)
CHECK_RESUME = Step(
    ActivityName.CHECK_RESUME,
    failback.ResumeInput,
    sites.CheckResult,
    TaskQueue.DB,
    timedelta(seconds=30),
    READ_RETRY,
)
FAILBACK_RESUME = Step(
    ActivityName.RESUME_WRITES,
    failback.ResumeInput,
    failback.ResumeResult,
    TaskQueue.DB,
    timedelta(seconds=60),
    CHANGE_RETRY,
    on_site=True,
    guard=CHECK_RESUME,
)
FAILBACK_PROMOTE = Step(
    ActivityName.PROMOTE_HOME,
    failback.PromoteHomeInput,
    failback.PromoteHomeResult,
    TaskQueue.DB,
    timedelta(seconds=180),
    CHANGE_RETRY,
    irreversible=True,
    on_site=True,
    guard=CHECK_PROMOTION,
)
FAILBACK_RETIRE_FENCE = Step(
    ActivityName.RETIRE_FENCE,
    failback.RetireFenceInput,
    failback.RetireFenceResult,
    TaskQueue.DB,
    timedelta(seconds=60),
    AFTER_PONR_RETRY,
    on_site=True,
)
FAILBACK_EVIDENCE = Step(
    ActivityName.WRITE_FAILBACK_EVIDENCE,
    failback.FailbackEvidenceInput,
    EvidenceResult,
    TaskQueue.CONTROL,
    timedelta(seconds=120),
    AFTER_PONR_RETRY,
)

# BurstWorkflow: a node pool may take many minutes (Terraform); the load check is quick.
BURST_PLAN = Step(
    ActivityName.PLAN_BURST,
    burst.BurstPlanInput,
    burst.BurstPlan,
    TaskQueue.CONTROL,
    timedelta(seconds=30),
    READ_RETRY,
    local_only=True,
)
BURST_POOL = Step(
    ActivityName.SCALE_POOL,
    burst.PoolInput,
    burst.PoolResult,
    TaskQueue.INFRA,
    timedelta(minutes=45),
    CHANGE_RETRY,
)
BURST_DEPLOY = Step(
    ActivityName.DEPLOY_WORKLOADS,
    burst.DeployWorkloadsInput,
    burst.DeployWorkloadsResult,
    TaskQueue.INFRA,
    timedelta(minutes=20),
    CHANGE_RETRY,
)
SYNC_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=8,
    non_retryable_error_types=["GitOpsNotReady"],
)
"""A failover's GitOps sync: as :data:`CHANGE_RETRY`, except that apps not healthy by the
driver's deadline (``gitops.timeout_s``, which the attempt already waited out) end the step:
waiting again would only keep the old primary fenced longer before the compensation."""
FAILOVER_SYNC = Step(
    ActivityName.DEPLOY_WORKLOADS,
    burst.DeployWorkloadsInput,
    burst.DeployWorkloadsResult,
    TaskQueue.INFRA,
    timedelta(minutes=20),
    SYNC_RETRY,
)
BURST_REMOVE = Step(
    ActivityName.REMOVE_WORKLOADS,
    burst.RemoveWorkloadsInput,
    burst.RemoveWorkloadsResult,
    TaskQueue.INFRA,
    timedelta(minutes=20),
    AFTER_PONR_RETRY,
)
BURST_TRAFFIC = Step(
    ActivityName.SET_TRAFFIC,
    burst.WeightsInput,
    burst.WeightsResult,
    TaskQueue.DNS,
    timedelta(minutes=5),
    CHANGE_RETRY,
)
BURST_LOAD = Step(
    ActivityName.READ_LOAD,
    burst.LoadInput,
    burst.LoadResult,
    TaskQueue.CONTROL,
    timedelta(seconds=30),
    READ_RETRY,
)
BURST_EVIDENCE = Step(
    ActivityName.WRITE_BURST_EVIDENCE,
    burst.BurstEvidenceInput,
    EvidenceResult,
    TaskQueue.CONTROL,
    timedelta(seconds=120),
    AFTER_PONR_RETRY,
)

# BootstrapWorkflow: each step converges a host (RKE2 and Packer take many minutes).
BOOTSTRAP_PLAN = Step(
    ActivityName.PLAN_BOOTSTRAP,
    bootstrap.BootstrapPlanInput,
    bootstrap.BootstrapPlan,
    TaskQueue.CONTROL,
    timedelta(seconds=30),
    READ_RETRY,
    local_only=True,
)
BOOTSTRAP_STEP = Step(
    ActivityName.BOOTSTRAP_STEP,
    bootstrap.BootstrapStepInput,
    bootstrap.BootstrapStepResult,
    TaskQueue.INFRA,
    timedelta(hours=2),
    CHANGE_RETRY,
)
BOOTSTRAP_EVIDENCE = Step(
    ActivityName.WRITE_BOOTSTRAP_EVIDENCE,
    bootstrap.BootstrapEvidenceInput,
    EvidenceResult,
    TaskQueue.CONTROL,
    timedelta(seconds=120),
    AFTER_PONR_RETRY,
)


# The topology lease (workflows/lease.py). Both run on the control queue: ``acquire_lease`` is
# queued on the asking run's own queue (it may wait, and only the control worker holds the
# client it needs), ``lease_holder_open`` on the lease workflow's.
LEASE_ACQUIRE = Step(
    ActivityName.ACQUIRE_LEASE,
    lease.LeaseRequest,
    lease.LeaseGrant,
    TaskQueue.CONTROL,
    timedelta(seconds=60),
    RetryPolicy(maximum_interval=timedelta(seconds=5), maximum_attempts=10),
)
"""Its timeout is this plus the wait the request asks for."""
LEASE_HOLDER_OPEN = Step(
    ActivityName.LEASE_HOLDER_OPEN,
    lease.HolderInput,
    lease.HolderResult,
    TaskQueue.CONTROL,
    timedelta(seconds=30),
    RetryPolicy(maximum_interval=timedelta(seconds=10)),
)
"""Retried until it answers: a lease is freed only on a holder known to be closed."""


# ReadinessWorkflow (workflows/readiness.py): read-only steps, quick, on the control queue
# (the control worker holds the inventory's secret references and a Temporal client); the
# backups are listed where the drill's backup steps run.
READY_SECRETS = Step(
    ActivityName.CHECK_SECRETS,
    readiness.SecretsInput,
    readiness.SecretsResult,
    TaskQueue.CONTROL,
    timedelta(seconds=60),
    READ_RETRY,
)
READY_QUEUES = Step(
    ActivityName.DESCRIBE_QUEUES,
    readiness.QueuesInput,
    readiness.QueuesResult,
    TaskQueue.CONTROL,
    timedelta(seconds=30),
    READ_RETRY,
)
READY_BACKUPS = Step(
    ActivityName.NEWEST_BACKUP,
    readiness.BackupAgeInput,
    readiness.BackupAgeResult,
    TaskQueue.DB,
    timedelta(seconds=120),
    READ_RETRY,
)
READY_WAL = Step(
    ActivityName.VERIFY_WAL_ARCHIVE,
    readiness.WalContinuityInput,
    readiness.WalContinuityResult,
    TaskQueue.DB,
    timedelta(seconds=120),
    READ_RETRY,
)
READY_DRILLS = Step(
    ActivityName.LAST_DRILL,
    readiness.DrillRecordInput,
    readiness.DrillRecordResult,
    TaskQueue.CONTROL,
    timedelta(seconds=30),
    READ_RETRY,
)
READY_SCHEDULES = Step(
    ActivityName.DESCRIBE_SCHEDULES,
    readiness.SchedulesInput,
    readiness.SchedulesResult,
    TaskQueue.CONTROL,
    timedelta(seconds=30),
    READ_RETRY,
)
READY_DNS_API = Step(
    ActivityName.PROBE_DNS,
    readiness.DnsProbeInput,
    readiness.DnsProbeResult,
    TaskQueue.DNS,
    timedelta(seconds=30),
    READ_RETRY,
)
"""On the DNS queue: the worker that holds the DNS credentials is the one whose read counts."""
READY_TF_STATE = Step(
    ActivityName.TERRAFORM_STATE,
    readiness.TerraformStateInput,
    readiness.TerraformStateResult,
    TaskQueue.INFRA,
    timedelta(seconds=30),
    READ_RETRY,
)
"""On the infra queue: the worker that runs Terraform sees its local state files."""

READY_LATEST = Step(
    ActivityName.LATEST_READINESS,
    readiness.LatestReadinessInput,
    readiness.LatestReadinessResult,
    TaskQueue.CONTROL,
    timedelta(seconds=15),
    READ_RETRY,
)
"""A failover reads the newest readiness evaluation (Temporal's visibility and one result)."""


STEPS: dict[ActivityName, Step[Any, Any]] = {
    v.activity: v for v in list(globals().values()) if isinstance(v, Step)
}
"""Every step above, by its activity: the table workers/main.py registers each activity from,
on its step's queue (DESIGN.md rule 7)."""


async def together(first: Awaitable[X], second: Awaitable[Y]) -> tuple[X, Y]:
    """Run two steps (or phases of steps) at once, ``first`` started first, so their commands
    come in the same order on every replay. Both end before either's failure is raised (the
    first's, when both fail), so no step outlives the phase that started it; a cancellation
    cancels both, as it would the one step a sequence waits on.

    Only for steps that need nothing of each other, and behind a ``workflow.patched`` marker
    where they used to run one after the other (the commands change)."""
    one, two = asyncio.ensure_future(first), asyncio.ensure_future(second)
    try:
        await workflow.wait([one, two])  # asyncio.wait orders its set by hash: not deterministic
    except asyncio.CancelledError:
        one.cancel()
        two.cancel()
        raise
    failed = [err for err in (one.exception(), two.exception()) if err is not None]  # both read
    if failed:
        raise failed[0]
    return one.result(), two.result()


async def checkpoint(name: str) -> None:
    """Make everything so far durable in the history before the world is changed.

    A local activity's result reaches the history only when the workflow task completes, and
    a run of local activities can share one task. If the worker died after the first change
    to the world but before that task completed, a new worker would run the decide phase
    again, on a world this run had begun to change (DNS may already point at the new
    primary), and could decide differently. Scheduling a queued activity ends the task, so
    the decision is recorded and a new worker replays it instead.

    Why an activity and not a short timer: the server fires timers at a one-second
    granularity (a 1 ms ``workflow.sleep`` took about 1 s on the dev server), an activity on
    the control queue takes one round trip (tens of ms; less where the server dispatches it
    eagerly to this worker).
    """
    await workflow.execute_activity(
        CHECKPOINT.activity,
        CHECKPOINT.input(name=name),
        result_type=CHECKPOINT.result,
        start_to_close_timeout=CHECKPOINT.timeout,
        retry_policy=CHECKPOINT.retry,
    )


GUARDS_ADDED_LATER = {ActivityName.CHECK_RESUME: "resume-writes-guard"}
"""Guards added after runs were recorded: a run that scheduled its step without the guard
replays without it (the patch's marker decides)."""


def _guard_in_history(guard: Step[Any, Any]) -> bool:
    patch = GUARDS_ADDED_LATER.get(guard.activity)
    return patch is None or workflow.patched(patch)


async def run_step(step: Step[In, Out], arg: In, where: Where = Where()) -> Out:
    """Run ``step`` as a local activity (colocated) or on its task queue (queues), after its
    guard (queues)."""
    if step.own_queue:
        return await workflow.execute_activity(
            step.activity,
            arg,
            result_type=step.result,
            task_queue=workflow.info().task_queue,
            start_to_close_timeout=step.timeout,
            retry_policy=step.retry,
            # Before the plan, the policy's heartbeat timeout is not known: the default one.
            heartbeat_timeout=timedelta(seconds=HEARTBEAT_TIMEOUT_S),
        )
    if where.placement == "colocated" or step.local_only:
        return await workflow.execute_local_activity(
            step.activity,
            arg,
            result_type=step.result,
            start_to_close_timeout=step.timeout,
            retry_policy=step.retry,
        )
    if step.guard is not None and where.site_queues and _guard_in_history(step.guard):
        await run_step(step.guard, arg, where)  # a run with site agents (not before them)
    queue = where.queue_of(step, arg)
    on_agent = step.on_site and queue != step.queue.value + where.queue_suffix
    try:
        # Nobody polls a dead host's queue: say so in seconds, not never.
        return await _queued(step, arg, queue, where, where.agent_start_s if on_agent else None)
    except ActivityError as err:
        if not (on_agent and agent_restarting(err) and workflow.patched(AGENT_RESTART_PATCH)):
            raise
    # The site's agent took the step and died in it, and nobody took the retry within the
    # seconds a dead host gets: a supervisor is more likely restarting the agent (Restart=always,
    # a loaded host) than the host gone. Give it the restart's time, once; a host that is gone
    # then fails the step as before, agent_start_s + agent_restart_s later.
    return await _queued(step, arg, queue, where, where.agent_restart_s)


AGENT_RESTART_PATCH = "agent-restart-wait"
"""Runs recorded before a step waited for a restarting agent fail the step as they did."""


async def _queued(step: Step[In, Out], arg: In, queue: str, where: Where, start_s: float | None) -> Out:
    return await workflow.execute_activity(
        step.activity,
        arg,
        result_type=step.result,
        task_queue=queue,
        start_to_close_timeout=step.timeout,
        schedule_to_start_timeout=timedelta(seconds=start_s) if start_s is not None else None,
        retry_policy=step.retry,
        # Every queued step heartbeats while it runs (activities/common.py, KeepAlive): a worker
        # that dies mid-step is known dead in this time, and the step runs again elsewhere.
        heartbeat_timeout=timedelta(seconds=where.heartbeat_s),
    )


def agent_restarting(err: BaseException) -> bool:
    """Whether no agent took a step's retry after an agent had taken an earlier attempt (the
    schedule-to-start timeout's cause is that attempt's failure, e.g. its heartbeat timeout):
    the agent was alive moments ago. A step no agent ever took has no such cause."""
    while isinstance(err, ActivityError) and err.cause is not None:
        err = err.cause
    return (
        isinstance(err, TimeoutError_) and err.type == TimeoutType.SCHEDULE_TO_START and err.cause is not None
    )


def agent_absent(err: BaseException) -> bool:
    """Whether a step failed because no agent took it (schedule-to-start timeout)."""
    while isinstance(err, ActivityError) and err.cause is not None:
        err = err.cause
    return isinstance(err, TimeoutError_) and err.type == TimeoutType.SCHEDULE_TO_START


def describe_error(err: BaseException) -> str:
    """The innermost useful message of an error chain."""
    while isinstance(err, ActivityError) and err.cause is not None:
        err = err.cause
    if isinstance(err, ApplicationError) and err.type:
        return f"{err.type}: {err.message}"
    return f"{type(err).__name__}: {err}"


def failed_attempts(err: BaseException) -> int:
    """The attempt a failed step ended on (the activity boundary puts it in the details)."""
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError) and cause.details:
        detail = cause.details[0]
        if isinstance(detail, dict) and isinstance(detail.get("attempt"), int):
            return int(detail["attempt"])
    return 0


async def record_step(
    records: list[StepRecord], name: str, step: Step[In, A], arg: In, where: Where = Where()
) -> A:
    """Run one step and record it in ``records`` (start, end, attempts, outcome, detail) for
    the evidence: every runbook records its steps this one way."""
    rec = StepRecord(name=name, started_at=workflow.now(), irreversible=step.irreversible)
    records.append(rec)
    try:
        result = await run_step(step, arg, where)
    except Exception as err:  # ActivityError; a local activity's can arrive as its cause alone
        rec.ended_at, rec.outcome = workflow.now(), StepOutcome.FAILED
        rec.attempts, rec.detail = failed_attempts(err), describe_error(err)
        raise
    rec.ended_at, rec.attempts, rec.detail = workflow.now(), result.attempt, result.detail
    rec.outcome = result.step_outcome()
    return result
