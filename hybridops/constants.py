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
    READINESS = "ReadinessWorkflow"
    """Not a runbook: every precondition of every runbook, evaluated now; reads only
    (workflows/readiness.py)."""


class ActivityName(StrEnum):
    """Every activity's name, defined once: the step table (workflows/steps.py) schedules them,
    the ``@step_activity`` declarations (activities/) register them. A stored history records
    these strings, so a value never changes."""

    # The site steps every runbook uses (activities/sites.py).
    CHECKPOINT = "checkpoint"
    PLAN_SITES = "plan_failover"
    """The sites, where DNS points and the policy: the failover's and the failback's first step,
    and ``hybridops decide``'s (the name is from when only the failover had it)."""
    ASSESS_SITES = "assess_sites"
    PREPARE_TARGET = "prepare_target"
    RELEASE_TARGET = "release_target"
    FENCE_PRIMARY = "fence_primary"
    UNFENCE_PRIMARY = "unfence_primary"
    PROMOTE_STANDBY = "promote_standby"
    REPOINT_APPS = "repoint_apps"
    DNS_CUTOVER = "dns_cutover"
    VERIFY_WRITES = "verify_writes"
    MEASURE_RPO = "measure_rpo"
    FOLLOW_PRIMARY = "follow_primary"
    CHECK_PROMOTION = "check_promotion"
    """The cross-site safety rules of a promotion, read where every server can be read (a site
    agent holds only its own server's credentials): run right before the agent promotes."""
    CHECK_UNFENCE = "check_unfence"
    """The same for an unfence (compensation): no other server accepts writes."""
    CHECK_RESUME = "check_resume"
    """The same for a failback's resume of writes (compensation): no other server accepts writes."""
    ISOLATE_SITE = "isolate_site"
    """Cut off a site whose agent does not answer (its host is down): the infra driver's isolate."""
    # Failover's own, and its decide phase.
    WRITE_EVIDENCE = "write_evidence"
    GATHER_SIGNALS = "gather_signals"
    PROBE_AGENT = "probe_agent"
    """Restore mode: does a candidate's site agent take a step (is its host up)?"""
    PICK_BACKUP = "pick_backup"
    """Restore mode: which backup a restore would use (read-only, before anything changes)."""
    CHECK_RESTORE = "check_restore"
    """The cross-site safety rules of a restore (the guard of the agent's ``restore_primary``)."""
    RESTORE_PRIMARY = "restore_primary"
    """Restore mode's point of no return: the target's server replaced by a restored backup,
    started as the primary on a new timeline."""
    # Failback's own.
    REJOIN_STANDBY = "rejoin_standby"
    CATCH_UP = "catch_up"
    PAUSE_WRITES = "pause_writes"
    RESUME_WRITES = "resume_writes"
    PROMOTE_HOME = "promote_home"
    RETIRE_FENCE = "retire_fence"
    WRITE_FAILBACK_EVIDENCE = "write_failback_evidence"
    # Drill.
    PLAN_DRILL = "plan_drill"
    TAKE_BACKUP = "take_backup"
    RESTORE_BACKUP = "restore_backup"
    START_SCRATCH = "start_scratch"
    VERIFY_RESTORE = "verify_restore"
    TEARDOWN_SCRATCH = "teardown_scratch"
    WRITE_DRILL_EVIDENCE = "write_drill_evidence"
    # Burst.
    PLAN_BURST = "plan_burst"
    SCALE_POOL = "scale_pool"
    DEPLOY_WORKLOADS = "deploy_workloads"
    REMOVE_WORKLOADS = "remove_workloads"
    SET_TRAFFIC = "set_traffic"
    READ_LOAD = "read_load"
    WRITE_BURST_EVIDENCE = "write_burst_evidence"
    # Bootstrap.
    PLAN_BOOTSTRAP = "plan_bootstrap"
    BOOTSTRAP_STEP = "bootstrap_step"
    WRITE_BOOTSTRAP_EVIDENCE = "write_bootstrap_evidence"
    # The topology lease (workflows/lease.py), on the control queue.
    ACQUIRE_LEASE = "acquire_lease"
    LEASE_HOLDER_OPEN = "lease_holder_open"
    # Readiness (workflows/readiness.py): read-only, every one.
    CHECK_SECRETS = "check_secrets"
    DESCRIBE_QUEUES = "describe_queues"
    NEWEST_BACKUP = "newest_backup"
    LATEST_READINESS = "latest_readiness"
    VERIFY_WAL_ARCHIVE = "verify_wal_archive"
    LAST_DRILL = "last_drill"
    DESCRIBE_SCHEDULES = "describe_schedules"
    PROBE_DNS = "probe_dns"
    TERRAFORM_STATE = "terraform_state"


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
PAUSE_UPDATE = "pause"
"""Every runbook's operator control (issue 20 item 4): pause at the next step boundary."""
RESUME_UPDATE = "resume"
RETRY_UPDATE = "retry"
"""Run again the step that failed past the point of no return."""
SKIP_UPDATE = "skip"
"""Go on past it, saying why."""
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

BURST_STATE_QUERY = "burst_state"
"""Name of the burst workflow's Query: what the burst has done so far (``BurstState``)."""

STOP_SIGNAL = "stop"
"""Name of the Signal that ends a burst cleanly (it scales in)."""

FAULTS_DIR_ENV = "HYBRIDOPS_FAULTS_DIR"
"""Where the lab's ``crash`` faults leave their marks, so each fires once across worker
restarts (the lab sets it to ``<lab root>/faults``)."""


READINESS_SCHEDULE_ID = "hybridops-readiness"
"""The Temporal Schedule that runs the readiness workflow (``hybridops ready --schedule``)."""

READINESS_ID_PREFIX = "readiness-"
"""Readiness runs' workflow ids start with this."""


ALERT_REQUESTER = "alert:"
"""How a run the alert receiver started names its requester (``alert:<route>``): started by
detection, not by a person."""
