"""The site steps every runbook uses (``activities/sites.py``): plan, assess, fence, promote,
repoint, DNS, verify, RPO, follow; and the topology read from the servers."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import ConfigDict, Field

from hybridops.capabilities import Capability
from hybridops.contracts.backup import BackupInfo
from hybridops.contracts.base import ActivityResult, Cloud, Contract
from hybridops.policy import Policy


# One type for a failover's measure (RpoMeasure) and every runbook's evidence (evidence.Rpo);
# its docstring is the evidence schema's description, so it stays one line.
class RpoMethod(StrEnum):
    """How an RPO was measured."""

    LEDGER = "ledger"
    """The writer's acknowledgement log, compared with the new primary's rows."""
    LAG = "lag"
    """Replication lag at decision time: an estimate, when the ledger could not be read."""
    LSN = "lsn"
    """A failback's switchover: home replayed the paused primary's final WAL position before
    it was promoted, so nothing acknowledged was lost."""
    NEWEST_ROW = "newest_row"
    """A drill's: the age of the newest restored row of the writer's table at the restore's
    start (or at the target time of a point-in-time restore)."""
    NONE = "none"
    """Not measured (the run ended before it could)."""


class RpoMeasure(Contract):
    """Recovery point: acknowledged writes lost, as a count and as seconds."""

    transactions_lost: int | None = None
    seconds: float | None = None
    method: RpoMethod = RpoMethod.NONE
    """A failover measures by ``ledger`` (the writer's acknowledgement log) or ``lag``
    (replication lag at decision time, an estimate), or not at all (``none``)."""


class RejoinMethod(StrEnum):
    """How a site may be made a standby of a new primary."""

    AUTO = "auto"
    """The cheapest that works: follow (a running standby that has not diverged), else
    pg_rewind, else a fresh base backup."""
    REWIND = "rewind"
    """pg_rewind only; fail when it cannot."""
    RECLONE = "reclone"
    """A fresh base backup (the old data directory is moved aside, never deleted)."""


class RejoinOutcome(StrEnum):
    """What rejoining did."""

    UNCHANGED = "unchanged"
    """The site already streamed from the source."""
    FOLLOWED = "followed"
    """A running standby pointed at the source (``primary_conninfo`` reloaded)."""
    REWOUND = "rewound"
    """Stopped, pg_rewind from the source, started as its standby."""
    RECLONED = "recloned"
    """A fresh base backup from the source into a new data directory."""


class ReplicationSlot(Contract):
    """A replication slot on a primary and the WAL it holds back."""

    name: str
    slot_type: str = "physical"
    active: bool = False
    retained_bytes: int | None = None
    """``pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)``: WAL the server keeps for it;
    None when the slot has no ``restart_lsn`` (never used)."""


class SiteState(Contract):
    """What one PostgreSQL server looked like when it was assessed: read from the server
    itself (and its data directory's marks), never from DNS."""

    site: str
    reachable: bool
    in_recovery: bool | None = None
    timeline: int | None = None
    receive_lsn: str | None = None
    replay_lsn: str | None = None
    current_lsn: str | None = None
    last_replay_at: datetime | None = None
    fenced: bool = False
    promoted_by: str | None = None
    """The run that promoted this server, when HybridOps did."""
    error: str = ""
    read_only: bool | None = None
    """``default_transaction_read_only`` as a new session gets it (a fenced or paused primary
    is read-only); None when unreachable."""
    system_identifier: str | None = None
    """The cluster's system identifier (``pg_control_system()``): every server of one cluster
    shares it; a server with another one is not a copy of this database."""
    upstream: str | None = None
    """The site a standby replicates from (its ``primary_conninfo`` host), when it is a site."""
    streaming: bool | None = None
    """A standby whose WAL receiver is streaming now."""
    timeline_switch_lsn: str | None = None
    """Where the server's current timeline began (its timeline history), when it can be read:
    the start of the writes it made on its own branch."""
    fenced_by: str | None = None
    """The run whose fence mark the data directory carries."""
    slots: list[ReplicationSlot] | None = None
    """A primary's replication slots (``pg_replication_slots``); None when not read (a
    standby, a server that does not answer, or a driver that does not read them)."""

    @property
    def writable(self) -> bool:
        """It answers and accepts writes: not in recovery and not read-only."""
        return self.reachable and self.in_recovery is False and self.read_only is not True


class FindingKind(StrEnum):
    """Something the topology shows that a runbook must not act on blindly."""

    SPLIT_BRAIN = "split_brain"
    """More than one server accepts writes."""
    DNS_DISAGREES = "dns_disagrees"
    """DNS points at another server than the one that accepts writes."""
    DNS_NOT_A_SITE = "dns_not_a_site"
    """The DNS record is missing or points at no server of the inventory."""
    NO_WRITABLE_SERVER = "no_writable_server"
    """No server accepts writes (the primary died, or was fenced)."""
    ROLE_UNKNOWN = "role_unknown"
    """A server does not answer and carries no fence mark: it may be a writer nobody sees."""
    SYSTEM_MISMATCH = "system_identifier_mismatch"
    """A server's system identifier differs from the cluster's: not a copy of this database."""
    UPSTREAM_DISAGREES = "upstream_disagrees"
    """The standbys follow different servers."""
    FENCE_UNVERIFIED = "fence_unverified"
    """The old primary did not answer when it was fenced: only its data directory is marked."""


class Finding(Contract):
    """One named disagreement or danger in a topology, for the evidence."""

    kind: FindingKind
    sites: list[str] = []
    detail: str


class DivergedWrites(Contract):
    """Writes a server made on its own branch of history, which another writer does not have:
    the LSN range from where its timeline began to its position when it was read."""

    site: str
    timeline: int | None = None
    from_lsn: str | None = None
    """Where its timeline began (None when the history could not be read)."""
    to_lsn: str | None = None


class Topology(Contract):
    """Who is who, established from the servers (DESIGN.md rule 11); DNS only says where
    clients go, and a disagreement is a finding, never a fact to act on."""

    servers: list[SiteState]
    dns_record: str = ""
    dns_value: str | None = None
    """The address the record holds now."""
    dns_site: str | None = None
    """The site whose address that is; None when it is no site's."""
    writable: list[str] = []
    """Every server that accepts writes now."""
    primary: str | None = None
    """The one writable server, when there is exactly one."""
    last_primary: str | None = None
    """When no server is writable: the server the standbys replicate from (else the one DNS
    points at), the primary that was; a failover's old primary."""
    system_identifier: str | None = None
    """The cluster's system identifier (the one most servers have)."""
    findings: list[Finding] = []

    def state(self, site: str) -> SiteState | None:
        return next((s for s in self.servers if s.site == site), None)

    @property
    def acting_primary(self) -> str | None:
        """The primary a runbook moves away from: the writable one, else the one that was."""
        return self.primary or self.last_primary

    def has(self, kind: FindingKind) -> bool:
        return any(f.kind == kind for f in self.findings)


class FenceToken(Contract):
    """Proof that a primary was fenced while it answered (as CloudNativePG's demotion token):
    a standby that replayed past ``lsn`` on ``timeline`` of ``system_identifier`` has every
    write the old primary ever acknowledged, so promoting it loses nothing."""

    system_identifier: str
    timeline: int
    lsn: str
    """The shutdown checkpoint's LSN (``pg_controldata``: Latest checkpoint location), else the
    last WAL position read before the stop."""


class PlanInput(Contract):
    """Input of ``plan_failover``: nothing, the plan is the inventory's and DNS's. (It had a
    ``target`` it never read; the step is local only, ``workflows/steps.py``, and a local
    activity's input is not in the history, so no recorded payload carries it.)"""


class SiteRef(Contract):
    """A site as the workflow needs to know it: no addresses, no credentials."""

    name: str
    cloud: Cloud | None = None


class PlanResult(ActivityResult):
    """What the inventory and DNS say the topology is."""

    # The JSON key of ``dns_site`` stays ``current_primary`` (its name before it said what it
    # holds): recorded histories load, and new payloads are the same JSON.
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)

    sites: list[SiteRef]
    dns_record: str
    dns_site: str = Field(alias="current_primary")
    """The site the DNS record points at ("" when it points at no site): where clients go,
    which is not always the primary (the servers say who is: the assess step)."""
    dns_value: str | None = None
    """The address the DNS record holds (None: no record)."""
    placement: str
    """``colocated`` or ``queues``: where steps run (see workflows/steps.py)."""
    queue_suffix: str = ""
    """The inventory's ``task_queue_suffix``, appended to the queue of every queued step."""
    policy: Policy | None = None
    """The policy in force (its approvals and safety rules), for runbooks that gather no
    signals (failback); None in histories of runs before it was recorded here."""
    site_queues: dict[str, str] = {}
    """With placement ``queues``: each site's agent queue (real names), where the steps that
    touch that site's server or files run. Empty in histories of runs before site agents."""
    capabilities: dict[str, list[Capability]] = {}
    """What the inventory's drivers offer, per component: ``postgres:SITE``, ``infra``,
    ``dns``, ``backup`` (DESIGN.md rule 14): checked before the first change."""
    drivers: dict[str, str] = {}
    """The driver behind each component of :attr:`capabilities` (for the refusal's words)."""
    apps: list[str] = []
    """The apps the inventory names (repointed after a promotion)."""
    workloads: list[str] = []
    """The GitOps workloads a failover syncs on the target's cluster (the inventory's
    ``workloads``); empty in runs recorded before them."""
    apps_via: str = "infra"
    """How ``repoint_apps`` moves the apps (the inventory's ``app_database.via``): ``infra``
    (the infra driver's ``repoint_apps`` capability) or ``gitops`` (an overlay committed to
    the GitOps repository and synced); ``infra`` in runs recorded before it."""

    def apps_need_infra(self) -> bool:
        """Whether moving the apps needs the infra driver's ``repoint_apps`` capability."""
        return bool(self.apps) and self.apps_via == "infra"


class AssessInput(Contract):
    sites: list[str]
    deadlines: dict[str, float] = {}
    """A shorter deadline (seconds) for some sites' answer than the connect timeout: the
    primary the detection's agents found silent (``detection.confirm_timeout_s``)."""


class AssessResult(ActivityResult):
    states: list[SiteState]
    topology: Topology | None = None
    """Deprecated, never set: nothing reads it (a workflow establishes the topology itself,
    ``hybridops.decision.topology_of``). Kept because recorded results carry it as ``null``
    and contracts refuse unknown fields, so without it those histories would not load."""


class SiteInput(Contract):
    """The fields of a step that acts on one site: the base of those steps' inputs. A workflow
    that sends a ``SiteInput`` sends the same JSON as any of them."""

    site: str
    run_id: str = ""
    """The workflow id acting, recorded in marks (fencing) so they can be traced."""


class PrepareInput(SiteInput):
    """Input of ``prepare_target``: the target cloud site."""

    restore: bool = False
    """Restore mode: the target's server will be replaced by a restored backup, so it need not
    be a healthy standby (it must not accept writes)."""
    nodes: int | None = None
    """The node count the target cluster's pool is scaled up to (the policy's
    ``failover.nodes``); None: the pool keeps its size."""


class ReleaseInput(SiteInput):
    """Input of ``release_target`` (compensation of ``prepare_target``)."""


class ReleaseResult(ActivityResult):
    """Result of ``release_target``."""


class FenceInput(SiteInput):
    """Input of ``fence_primary``: the old primary (or another writer) to fence."""


class FenceResult(ActivityResult):
    was_running: bool
    was_read_only: bool = False
    fenced_lsn: str | None = None
    """The old primary's last WAL position when it was fenced while alive."""
    token: FenceToken | None = None
    """The fencing proof, when the server answered; None: the fence is unverified (the
    server was unreachable: only its data directory is marked)."""
    isolated: str | None = None
    """What the infra driver did to cut an unreachable server off for good (its isolate
    capability), or why nothing was done."""

    @property
    def verified(self) -> bool:
        return self.token is not None


class UnfenceInput(SiteInput):
    """Input of ``unfence_primary`` (compensation of ``fence_primary``)."""


class CheckResult(ActivityResult):
    """A safety check that passed (one that fails raises ``SafetyRuleViolated``)."""


class IsolateInput(SiteInput):
    """Input of ``isolate_site``: a site whose agent did not take its fence step."""

    reason: str = ""


class IsolateResult(ActivityResult):
    isolated: str
    """What the infra driver did, or why nothing could be done."""


class UnfenceResult(ActivityResult):
    """Result of ``unfence_primary``."""


class PrepareResult(ActivityResult):
    started: bool = False
    """The target's server was started by this call (compensation stops it again)."""


class PromoteInput(Contract):
    site: str
    run_id: str = ""
    wait_for_lsn: str | None = None
    max_catchup_s: float = 30.0
    fence: FenceToken | None = None
    """The old primary's fencing proof: promote only once the target replayed past it."""
    overrides: list[str] = []
    """Safety rules an approver overrode for this step (break glass, recorded)."""
    allow_fenced: bool = False
    """Promote even though the target carries a fence mark: failback's home, a fenced old
    primary that was rejoined as a standby."""
    fenced: list[str] = []
    """Sites this run fenced, verified or not: one that does not answer counts as fenced for
    the safety rules (its agent's host may be down, its mark unreadable from elsewhere)."""


class PromoteResult(ActivityResult):
    timeline: int
    promoted_at: datetime | None = None
    replay_lsn: str | None = None
    last_replay_at: datetime | None = None


class PickBackupInput(Contract):
    """Input of ``pick_backup``: which backup a restore-mode failover would restore."""

    backup: str = "LATEST"
    """A backup's name, or ``LATEST`` (the newest one that finished before ``target_time``)."""
    target_time: datetime | None = None
    """Recovery stops here (the failover input's ``restore_to``); None: all archived WAL."""


class PickBackupResult(ActivityResult):
    """The backup a restore will use (read-only: nothing changed)."""

    backup: BackupInfo
    archived_timelines: list[int] = []
    """The timelines the WAL archive holds now: the restored server's must be none of them."""


class RestorePrimaryInput(Contract):
    """Input of ``restore_primary``: restore mode's point of no return."""

    site: str
    run_id: str = ""
    backup: str = "LATEST"
    """The backup ``pick_backup`` chose (its real name): a retry restores the same one."""
    target_time: datetime | None = None
    """Recovery stops at this time; None: replays all archived WAL."""
    fenced: list[str] = []
    """Sites this run fenced, verified or not (they count as fenced for the safety rules)."""
    overrides: list[str] = []
    """Safety rules an approver overrode for this step (break glass, recorded)."""


class RestorePrimaryResult(ActivityResult):
    """What the restore did, for the evidence: which backup, how far the WAL was replayed, the
    timeline the restored primary took, how long it took."""

    backup: str
    backup_started_at: datetime | None = None
    backup_finished_at: datetime | None = None
    backup_site: str | None = None
    """The server the backup was taken from."""
    backup_end_lsn: str | None = None
    target_time: datetime | None = None
    replayed_to_lsn: str | None = None
    """Where recovery ended: the new timeline starts here."""
    timeline: int
    archived_timelines: list[int] = []
    """The archive's timelines before the restore (the new one is above all of them)."""
    fetch_seconds: float = 0.0
    """Fetching the backup into a fresh directory."""
    recovery_seconds: float = 0.0
    """Replaying the archive and the promotion at its end."""
    restore_seconds: float = 0.0
    """The whole step, fetch to writable."""
    promoted_at: datetime | None = None
    replaced: str | None = None
    """Where the target's previous data directory was moved (never deleted)."""


class DnsCutoverInput(Contract):
    site: str
    """Point the runbook's DNS record at this site."""
    overrides: list[str] = []
    """Safety rules an approver overrode for this step (break glass, recorded)."""


class DnsResult(ActivityResult):
    record: str
    value: str
    previous: str | None = None


class RepointAppsInput(Contract):
    site: str
    run_id: str | None = None
    """The run, recorded where the apps' change is (the GitOps commit's message); absent in
    runs recorded before it."""


class RepointAppsResult(ActivityResult):
    """Result of ``repoint_apps``."""

    via: str = "infra"
    """How the apps were moved: ``infra`` or ``gitops`` (the inventory's ``app_database.via``)."""
    revision: str | None = None
    """With ``gitops``: the GitOps repository's commit the apps run (synced and healthy)."""


class VerifyInput(Contract):
    site: str
    """The site the DNS name must lead to."""
    deadline_s: float = 30.0


class VerifyResult(ActivityResult):
    resolved_to: str
    resolved_via: str = ""
    """How the name was resolved: ``DNS query to ADDR:PORT`` (as a client), or the provider's
    API where no DNS server stands behind it (the lab's moto); empty in older runs."""
    first_write_at: datetime
    """Commit time of the first probe write that succeeded through the DNS name."""


class RpoInput(Contract):
    site: str
    incident_started_at: datetime
    fallback_lag_seconds: float | None = None
    clients_wait_s: float = 0.0
    """How long to wait for the workload's first acknowledged write on ``site`` (the end of the
    outage its clients saw), when its writer was alive at the incident; 0: look once."""


class RpoResult(ActivityResult):
    rpo: RpoMeasure
    last_ack_at: datetime | None = None
    """The workload's last acknowledged write on another site: the old primary's last sign of
    life. None without a ledger."""
    first_ack_at: datetime | None = None
    """The workload's first acknowledged write on ``site`` after it: the end of the outage its
    clients saw. None when not seen (no ledger, no writer running)."""


class FollowInput(Contract):
    sites: list[str]
    new_primary: str


class FollowResult(ActivityResult):
    """Result of ``follow_primary``."""
