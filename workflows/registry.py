"""Every workflow a worker serves, in one list: the five runbooks, the lease they share and
the readiness check (read-only).

The control worker registers them, and every replay (the audit's, the tests') replays them,
so a new runbook is served and replayed as soon as it is listed here.
"""

from __future__ import annotations

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from workflows.bootstrap import BootstrapWorkflow
from workflows.burst import BurstWorkflow
from workflows.drill import DrillWorkflow
from workflows.failback import FailbackWorkflow
from workflows.failover import FailoverWorkflow
from workflows.lease import TopologyLeaseWorkflow
from workflows.readiness import ReadinessWorkflow

WORKFLOWS: list[type] = [
    FailoverWorkflow,
    FailbackWorkflow,
    DrillWorkflow,
    BurstWorkflow,
    BootstrapWorkflow,
    TopologyLeaseWorkflow,
    ReadinessWorkflow,
]


def workflow_runner(strict: bool = False) -> SandboxedWorkflowRunner:
    """The sandbox the workers (and, ``strict``, every replayer) run these workflows in.

    ``sshsig`` and ``cryptography`` pass through: the approve Update verifies signatures in the
    workflow (hybridops.signing), and a native extension re-imported inside the sandbox aborts
    the process.

    A worker also passes the workflow modules through (``workflows``): the sandbox otherwise
    imports a runbook's module afresh on each run's first workflow task, 35 to 60 ms of a
    failover's time to its first step on the lab (bench/failover.py, "head"; a replay of a
    failover's history, 160 ms, takes 55 ms passed through). It is safe because those modules
    keep no state across runs: their globals are constants, a run's state lives on its workflow
    instance, and the one global that is not a constant, the
    approval identity's ``ContextVar`` (workflows/identity.py), holds a value per context, set
    and reset around each update, which a run's update task copies for itself; it was passed
    through already (workflows/approval.py imports it in ``imports_passed_through``;
    tests/unit/test_identity_passthrough.py has two runs' updates in flight at once).

    What passing through gives up is the sandbox's check of the workflow code's own calls
    (``datetime.now()`` in a passed-through module is not refused). A ``strict`` runner keeps
    that check: the replayer is strict, so CI's replay of every stored history
    (tests/unit/test_audit_replay.py) and ``hybridops audit replay`` still refuse a
    nondeterministic call on every path a history takes."""
    passed = PASSED_THROUGH if strict else (*PASSED_THROUGH, *WORKFLOW_MODULES)
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules(*passed))


PASSED_THROUGH = ("sshsig", "cryptography")
WORKFLOW_MODULES = ("workflows",)
"""The project's workflow modules (the package and all below it), deterministic code only."""
