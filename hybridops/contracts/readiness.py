"""DR readiness (``ReadinessWorkflow``, ``hybridops ready``): every precondition a runbook
would check, evaluated now, by reading only. No field carries a secret: a credential check
says whether its reference resolves, never the value."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from hybridops.contracts.backup import WalVerifyResult
from hybridops.contracts.base import ActivityResult, Contract, Seconds


class CheckStatus(StrEnum):
    """A check's verdict, worst last."""

    PASS = "pass"
    UNKNOWN = "unknown"
    """It could not be measured (no driver can say, or the reading failed)."""
    WARN = "warn"
    """A runbook would run, but a best-effort part of it would be skipped or be late."""
    FAIL = "fail"
    """A runbook would refuse, or fail, at the step it protects."""


SEVERITY = {CheckStatus.PASS: 0, CheckStatus.UNKNOWN: 1, CheckStatus.WARN: 2, CheckStatus.FAIL: 3}
"""How bad each status is, to pick a run's worst."""


class ReadinessCheck(Contract):
    """One precondition, measured now."""

    id: str
    """Stable across runs (``topology.streaming.azure``): a gauge label and an alert's name."""
    status: CheckStatus
    measured: str = ""
    """What was read (``lag 0.4 s``, ``last poll 3 s ago``), never a secret."""
    threshold: str = ""
    """What it must be to pass."""
    runbooks: list[str] = []
    """The runbooks (and targets) it matters to: ``failover to azure``, ``drill``."""
    protects: list[str] = []
    """The runbook steps that would refuse or fail without it (``failover: promote_target``)."""
    detail: str = ""


class ReadinessInput(Contract):
    """Input of ``ReadinessWorkflow``: every field defaulted, so ``{}`` from the UI works."""

    backup_max_age_h: float = 26.0
    """The newest backup may be this old (a daily backup, with two hours of slack)."""
    poll_fresh_s: float = 70.0
    """A task queue's last poll may be this old: a worker long-polls for up to a minute, so a
    last poll older than this is a worker gone."""
    slot_retained_max_bytes: int = 1 << 30
    """A replication slot on the primary may hold back this much WAL (1 GiB): past it, a slot
    nobody consumes is filling the primary's disk (``topology.slots.<primary>``)."""
    requested_by: str = ""


class ReadinessResult(Contract):
    """Every check, and the verdict per runbook (the worst of its checks)."""

    workflow_id: str = ""
    checked_at: datetime | None = None
    status: CheckStatus = CheckStatus.UNKNOWN
    """The worst check's status."""
    runbooks: dict[str, CheckStatus] = {}
    """Each runbook (and target) and the worst status of the checks that matter to it."""
    checks: list[ReadinessCheck] = []

    @property
    def failed(self) -> list[ReadinessCheck]:
        return [c for c in self.checks if c.status == CheckStatus.FAIL]


class SecretsInput(Contract):
    """Input of ``check_secrets``: nothing, the references are the inventory's."""


class SecretCheck(Contract):
    """One secret reference: whether it resolves. Its key and scheme, never its value."""

    key: str
    """Where the inventory holds it (``dns.credentials_ref``)."""
    scheme: str
    resolves: bool
    error: str = ""
    """Why it does not (the reference is named, the value never)."""


class SecretsResult(ActivityResult):
    secrets: list[SecretCheck] = []


class QueuesInput(Contract):
    """Input of ``describe_queues``: the task queues (real names) to describe."""

    queues: list[str]


class QueuePollers(Contract):
    """Who Temporal saw polling a task queue for activities."""

    queue: str
    pollers: int = 0
    last_poll_s: float | None = None
    """How long ago the freshest poller last polled; None: no poller."""
    error: str = ""


class QueuesResult(ActivityResult):
    queues: list[QueuePollers] = []


class BackupAgeInput(Contract):
    """Input of ``newest_backup``: nothing, the backup driver is the inventory's."""


class BackupAgeResult(ActivityResult):
    """The newest backup, when the backup driver can list them."""

    listed: bool = False
    """False: the driver could not list (``detail`` says why): the age is unknown."""
    count: int = 0
    newest: str | None = None
    newest_at: datetime | None = None
    """When it finished (else started)."""


class LatestReadinessInput(Contract):
    """Input of ``latest_readiness``: the readiness a failover starts from (issue 20 item 3)."""

    queue: str
    """The control task queue of the run's inventory: readiness runs of this deployment run
    on it (another lab's or deployment's, on the same namespace, do not count)."""
    target: str
    """The site the failover chose: the checks that matter to ``failover to TARGET`` count."""
    max_age_s: Seconds = 7200.0
    """An evaluation older than this is recorded but not acted on (``stale``)."""
    targets: list[str] = []
    """Also what the evaluation says of a failover to each of these sites (``per_target``): a
    failover reads it while it reads the servers, before it has chosen among them (patch
    ``failover-readiness-with-assess``). ``target`` may then be empty."""


class LatestReadinessResult(ActivityResult):
    """The newest completed readiness evaluation (scheduled or ``hybridops ready``), as the
    failover saw it, and what it says of the chosen target."""

    found: bool = False
    workflow_id: str | None = None
    checked_at: datetime | None = None
    age_s: float | None = None
    """How old it was when the failover read it."""
    stale: bool = False
    """Older than ``max_age_s``: recorded, not acted on."""
    runbook: str = ""
    """``failover to TARGET``."""
    status: CheckStatus = CheckStatus.UNKNOWN
    """The worst status of the checks that matter to ``runbook`` (unknown: none found)."""
    failing: list[ReadinessCheck] = []
    """The checks that matter to ``runbook`` and failed."""
    per_target: list[LatestReadinessResult] = []
    """For each of the input's ``targets``, in its order: the same reading for ``failover to
    TARGET`` (its own ``per_target`` empty)."""


class WalContinuityInput(Contract):
    """Input of ``verify_wal_archive``: nothing, the backup driver is the inventory's."""


class WalContinuityResult(ActivityResult):
    """The backup driver's ``verify_wal``, when it could run."""

    verified: bool = False
    """False: the driver could not verify (``detail`` says why): continuity is unknown."""
    wal: WalVerifyResult | None = None


class DrillRecordInput(Contract):
    """Input of ``last_drill``: nothing, the drills are those on the inventory's control queue."""


class DrillRecordResult(ActivityResult):
    """The recent drills as Temporal's visibility lists them (``hybridops drill status``)."""

    listed: bool = False
    """False: the drills could not be listed (``detail`` says why)."""
    runs: int = 0
    last_passed_at: datetime | None = None
    last_passed_id: str | None = None
    last_run_at: datetime | None = None
    last_run_id: str | None = None
    last_run_status: str | None = None
    """The newest drill's execution status (``COMPLETED``, ``FAILED``, ``RUNNING``...)."""
    max_age_h: float = 192.0
    """The inventory's ``drill.max_age_h``: the last passed drill may be this old."""


class SchedulesInput(Contract):
    """Input of ``describe_schedules``: the control task queue whose schedules count (another
    deployment's, on the same namespace, do not)."""

    queue: str


class ScheduleReading(Contract):
    """One Temporal Schedule a runbook created (a drill's, readiness' own)."""

    id: str
    paused: bool = False
    note: str = ""
    error: str = ""
    """Why it could not be described (its state is then unknown)."""


class SchedulesResult(ActivityResult):
    listed: bool = False
    """False: the schedules could not be listed (``detail`` says why)."""
    schedules: list[ScheduleReading] = []


class DnsProbeInput(Contract):
    """Input of ``probe_dns``: nothing, the zone and the record are the inventory's."""


class DnsProbeResult(ActivityResult):
    """One authenticated read of the DNS zone (the DNS driver's ``probe``), as the worker of the
    DNS queue (the one holding the DNS credentials) saw it. Never a credential."""

    driver: str = ""
    zone: str = ""
    answered: bool = False
    """The provider answered the authenticated read; False: ``error`` says why."""
    zone_id: str = ""
    serial: int | None = None
    """The zone's SOA serial, where the read returns it (RFC 2136)."""
    error: str = ""
    error_type: str = ""
    """The domain error's class: ``DnsAuthError`` (refused), ``DnsError`` (unreachable,
    retryable), ``DnsZoneNotFound``, ``ConfigError`` (the driver could not be built)."""
    seconds: float | None = None
    """How long the read took (answered or not)."""


class TerraformStateInput(Contract):
    """Input of ``terraform_state``: nothing, the roots are the inventory's infra driver's."""


class StateLockStatus(StrEnum):
    """A Terraform state's lock, as drivers/terraform/state.py reads it."""

    FREE = "free"
    LOCKED = "locked"
    STALE = "stale"
    """A lock info file left by a Terraform that was killed; no process holds the lock."""
    UNKNOWN = "unknown"
    """A remote backend, or a state that could not be read."""


class StateLockReading(Contract):
    """The lock of one root configuration's state (no path of the worker's disk)."""

    root: str
    workspace: str = ""
    backend: str = ""
    status: StateLockStatus = StateLockStatus.UNKNOWN
    state_file: str = ""
    """Relative to the root (local backend)."""
    lock_id: str = ""
    who: str = ""
    operation: str = ""
    created: str = ""
    note: str = ""


class TerraformStateResult(ActivityResult):
    """Each Terraform root's state lock (none for an infra driver without Terraform state)."""

    driver: str = ""
    locks: list[StateLockReading] = []
