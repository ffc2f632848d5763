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


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox every worker and replayer runs these workflows in. ``sshsig`` and
    ``cryptography`` pass through: the approve Update verifies signatures in the workflow
    (hybridops.signing), and a native extension re-imported inside the sandbox aborts the
    process."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSED_THROUGH)
    )


PASSED_THROUGH = ("sshsig", "cryptography")
