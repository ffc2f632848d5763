"""Names shared by workflows, workers, the CLI and the lab: defined once, never repeated inline."""

from __future__ import annotations

from enum import StrEnum


class TaskQueue(StrEnum):
    """Task queues follow capability and credentials (DESIGN.md rule 7)."""

    CONTROL = "hybridops-control"
    """Workflows and cheap activities (evidence, planning)."""
    DB = "hybridops-db"
    """Activities that reach the databases."""
    INFRA = "hybridops-infra"
    """Terraform, Packer, Ansible, the lab infra driver."""
    DNS = "hybridops-dns"
    """Activities that change DNS."""


class WorkflowType(StrEnum):
    """Workflow types are named after their runbook."""

    FAILOVER = "FailoverWorkflow"
    FAILBACK = "FailbackWorkflow"
    DRILL = "DrillWorkflow"
    BURST = "BurstWorkflow"
    BOOTSTRAP = "BootstrapWorkflow"
    LEASE = "TopologyLeaseWorkflow"
    """Not a runbook: the one lease on a database's topology (workflows/lease.py)."""


class Runbook(StrEnum):
    """Runbook names, used in evidence paths and workflow ids."""

    FAILOVER = "failover"
    FAILBACK = "failback"
    DRILL = "drill"
    BURST = "burst"
    BOOTSTRAP = "bootstrap"


APPROVE_UPDATE = "approve"
"""Name of the Update that approves (or rejects) a run waiting at its approval gate."""

PROGRESS_QUERY = "progress"
"""Name of the Query that returns a run's current phase and steps so far."""

DEFAULT_NAMESPACE = "default"

ALERT_SIGNAL = "alert"
"""Name of the Signal that delivers an Alertmanager notification (``AlertNotice``) to the run
it started, e.g. when the alert resolves."""

ACQUIRE_UPDATE = "acquire"
"""Name of the lease workflow's Update that grants (or refuses) the lease to a run."""

RELEASE_SIGNAL = "release"
"""Name of the lease workflow's Signal that gives the lease back."""

LEASE_QUERY = "holder"
"""Name of the lease workflow's Query: who holds the lease now."""

STOP_SIGNAL = "stop"
"""Name of the Signal that ends a burst cleanly (it scales in)."""

FAULTS_DIR_ENV = "HYBRIDOPS_FAULTS_DIR"
"""Where the lab's ``crash`` faults leave their marks, so each fires once across worker
restarts (the lab sets it to ``<lab root>/faults``)."""
