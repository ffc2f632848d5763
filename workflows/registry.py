"""Every workflow a worker serves, in one list: the five runbooks, the lease they share and
the readiness check (read-only).

The control worker registers them, and every replay (the audit's, the tests') replays them,
so a new runbook is served and replayed as soon as it is listed here.
"""

from __future__ import annotations

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
