"""The decision policy: a YAML file (``runbooks/policy.yaml``) validated with errors that name
the key. The policy engine (:mod:`hybridops.decision`) reads it; nothing here does I/O but
:func:`load_policy`.

The policy travels with the decision as data (it is part of the recorded plan step's result,
and of the signals activity's for a burst), so a replay decides with the policy the run saw,
not the one on disk today.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hybridops.errors import ConfigError
from hybridops.signing import fingerprint


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BudgetMode(StrEnum):
    """What the budget gate (credits, hourly cost) does with a candidate that fails it."""

    ENFORCE = "enforce"
    """Rejects it."""
    WARN = "warn"
    """Keeps it, says so in the rationale, and requires approval."""
    OFF = "off"
    """Ignores credits and cost."""


class Strategy(StrEnum):
    """How eligible candidates are ranked."""

    BALANCED = "balanced"
    """By the weighted score."""
    COST = "cost"
    """Cheapest hourly cost first; the score breaks ties."""
    LATENCY = "latency"
    """Lowest latency first; the score breaks ties."""


class Constraints(Strict):
    """Hard constraints: a candidate that fails one is never chosen."""

    rto_max_s: float = Field(default=900.0, gt=0)
    """The recovery time objective: the mode's estimated RTO must not exceed it."""
    rpo_max_s: float = Field(default=300.0, ge=0)
    """The recovery point objective: a standby lagging more, or a restore losing more, fails."""
    min_credits: float | None = Field(default=None, ge=0)
    """Cloud credits a target must have left (budget gate)."""
    max_hourly_cost: float | None = Field(default=None, ge=0)
    """The most a target may cost per hour (budget gate)."""
    min_capacity: float | None = Field(default=None, ge=0)
    """Free nodes a target's cluster must have."""
    max_error_rate: float | None = Field(default=None, ge=0, le=1)
    """The highest error rate (0..1) a target's site may show."""
    max_signal_age_s: float = Field(default=120.0, gt=0)
    """A live signal older than this is stale: it counts as missing."""


class Budget(Strict):
    mode: BudgetMode = BudgetMode.ENFORCE


class Weights(Strict):
    """How much each criterion counts in the score. Each is normalised among the eligible
    candidates to 0..1 (1 the best); the score is the weighted mean."""

    latency: float = Field(default=0.2, ge=0)
    error_rate: float = Field(default=0.2, ge=0)
    cost: float = Field(default=0.2, ge=0)
    replication_lag: float = Field(default=0.3, ge=0)
    slo: float = Field(default=0.1, ge=0)

    @model_validator(mode="after")
    def _some(self) -> Weights:
        if sum(self.model_dump().values()) <= 0:
            raise ValueError("at least one weight must be above 0")
        return self


class Estimates(Strict):
    """What each DR mode is expected to achieve, checked against the constraints."""

    warm_promote_rto_s: float = Field(default=60.0, ge=0)
    """Promotion of a streaming standby, DNS and apps included."""
    restore_rto_s: float = Field(default=1800.0, ge=0)
    """Restore of the latest backup into the cloud, replay included."""
    restore_rpo_s: float = Field(default=60.0, ge=0)
    """Data a restore loses: the WAL archive's delay (``archive_timeout``)."""


class Approval(Strict):
    """When a decision requires a human's approval before it acts."""

    failover: bool = True
    """A failover waits for a human unless the policy says otherwise: a run started with
    ``{}`` from the UI (or by any alert) never promotes unattended by default."""
    burst: bool = False
    failback: bool = True
    restore: bool = True
    """Any decision in ``restore`` mode."""


class SplitBrainAction(StrEnum):
    """What a runbook does when it finds more than one writable server."""

    FENCE = "fence"
    """Keep the writer DNS points at (clients write there), fence every other one, record
    the writes each made on its own branch, and go on."""
    HOLD = "hold"
    """Change nothing and stop, naming the writers and their diverged writes: a human decides
    which data wins."""


class Detection(Strict):
    """How a dead or hung primary is told from a blip (drivers/postgres/liveness.py): every site
    agent writes to the primary every ``probe_interval_s``; the failover alert fires when a
    majority of the agents has seen no write succeed for longer than ``blip_tolerance_s``."""

    blip_tolerance_s: float = Field(default=2.0, gt=0, le=3600.0)
    """Silence a primary may keep (no write taken) before it counts as dead or hung: longer
    than a checkpoint's stall or a network blip, short against the RTO objective."""
    probe_interval_s: float = Field(default=0.1, gt=0, le=60.0)
    """How often each observer writes to the primary (a row of its own, a few hundred bytes of
    WAL). The alert fires past the tolerance plus two intervals (the measure's resolution)."""
    probe_timeout_s: float = Field(default=1.0, gt=0, le=60.0)
    """How long one probe write (or connect) may take before the observer gives up on it and
    opens a new connection; the silence is counted from the last write that succeeded either
    way."""
    confirm_timeout_s: float = Field(default=0.25, gt=0, le=60.0)
    """In a run the detection alert started: how long the assessment waits for the server DNS
    points at (the primary the agents found silent) to answer the protocol (its reply to an
    SSLRequest, before any authentication: two round trips from the control worker and a
    fork) before it counts as down. The agents have waited out the blip tolerance already, and
    a healthy primary answers in milliseconds; without it, a hung primary cost the run
    ``postgres.connect_timeout_s``. One that answers gets the connect timeout for the rest of
    the connect; every other server gets the connect timeout as before."""
    worker_heartbeat_timeout_s: float = Field(default=15.0, ge=2.0, le=600.0)
    """How long a worker running a queued step may go without a heartbeat before it counts as
    dead and the step runs again on another worker (its heartbeat comes every quarter of this).
    Part of the recovery time when a worker dies mid-step; short enough for that, long enough
    that a loaded host is not taken for a dead one."""


class Safety(Strict):
    """The rules that guard every irreversible step and every DNS change (DESIGN.md rule 12)."""

    split_brain: SplitBrainAction = SplitBrainAction.FENCE
    unverified_fence_requires_approval: bool = False
    """An old primary that was unreachable when it was fenced is only marked (and isolated
    where the infra driver can): the fence is unverified. True makes such a run wait for a
    human before promoting."""
    break_glass: bool = True
    """A step blocked by a safety rule waits for an approval that overrides that rule by name
    (with who and why); False fails the step at once."""
    break_glass_timeout_s: float = Field(default=3600.0, gt=0, le=86400.0)
    """How long a blocked step waits for an override."""
    agent_start_timeout_s: float = Field(default=10.0, gt=0, le=600.0)
    """With placement ``queues``: how long a step waits for the site's agent to take it. An
    agent that does not (its host is down: nobody polls the site's queue) makes the site
    unreachable: a fence is then unverified (isolated where the infra driver can), any other
    step fails naming the agent. Part of a dead host's failover time: keep it short."""
    agent_restart_timeout_s: float = Field(default=60.0, gt=0, le=600.0)
    """With placement ``queues``: how long a step waits for the site's agent when the agent took
    the step and died in it (its heartbeat stopped) and no agent took the step's retry within
    ``agent_start_timeout_s``. An agent that was alive a moment ago is more likely restarting
    (systemd's ``Restart=always``, a loaded host) than its host dead; without this wait a slow
    restart made the site unreachable and, past the point of no return, failed the run."""


class Operator(Strict):
    """What an operator may do to a running runbook (issue 20 item 4): pause and resume it
    between steps, and retry or skip a step that failed past the point of no return. Each is
    authorized like an approval (``approvers``: the runbook's list, four eyes, signatures)."""

    wait_after_failure_s: float = Field(default=3600.0, ge=0, le=7 * 86400.0)
    """How long a run whose step failed past the point of no return waits for ``hybridops
    retry`` or ``hybridops skip`` before it fails as it would have (finish by hand). 0: it
    does not wait."""


class ReadinessOnFail(StrEnum):
    """What a failover does when the readiness of the target it chose has a failing check."""

    PROCEED = "proceed"
    """Record it in the evidence and go on."""
    APPROVE = "approve"
    """Wait for an approval (the gate shows the failing checks in the evidence)."""
    HOLD = "hold"
    """Stop before anything changed (the run is ``held``)."""


class Readiness(Strict):
    """How the readiness a failover starts from weighs (issue 20 item 3)."""

    on_fail: ReadinessOnFail = ReadinessOnFail.APPROVE
    """A ``fail`` among the checks of ``failover to TARGET`` in the newest evaluation: ask a
    human (default: the failure was visible before the incident, someone should look), hold,
    or proceed (recorded in the evidence either way)."""
    max_age_s: float = Field(default=7200.0, gt=0, le=86400.0)
    """An evaluation older than this (four of the Schedule's 30-minute intervals) is recorded
    as stale and not acted on: what it saw may have been repaired since."""


SIGNER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$"
"""A signer's principal: the name after ``ssh:`` in approvers lists."""


class Signer(Strict):
    """An approver who signs (``approvers.signers``): their SSH public key and the header
    identities they also go by (so four eyes knows the run's starter when it is them)."""

    key: str = Field(max_length=2000)
    """The OpenSSH public key line (``ssh-ed25519 AAAA... comment``): Ed25519 or RSA."""
    identities: list[str] = []
    """The identities (``cert:CN=...``, ``api-key:...``, ``os:...``) this person starts runs as."""

    @field_validator("key")
    @classmethod
    def _parses(cls, key: str) -> str:
        try:
            fingerprint(key)
        except (ValueError, NotImplementedError) as err:
            raise ValueError(f"not an Ed25519 or RSA OpenSSH public key line: {err}") from None
        return key


class Approvers(Strict):
    """Who may approve a run (DESIGN.md rule 15): authorization, not a typed name.

    Each list holds identities as :mod:`hybridops.identity` makes them (``cert:CN=alice,...``,
    ``api-key:...``, ``os:alice@host``) or ``group:NAME`` (a list under ``groups``); empty: any
    identity. Break glass (a safety rule's override) needs one of ``override`` (the runbook's
    own approvers when empty)."""

    failover: list[str] = []
    failback: list[str] = []
    burst: list[str] = []
    override: list[str] = []
    groups: dict[str, list[str]] = {}
    allow_self_approval: bool = False
    """Four eyes: the identity that started a run may not approve it, unless this is true."""
    accept_unauthenticated: bool = False
    """Accept ``os:`` identities (a client without a certificate or an API key: nothing
    proves who it is). The lab's policy does; production's should not."""
    require_decision_id: bool = True
    """An approval must name the decision it approves (``hybridops approve`` sends the one it
    shows); a decision that changed meanwhile is not approved by it."""

    signers: dict[Annotated[str, Field(pattern=SIGNER_PATTERN)], Signer] = {}
    """Allowed signers: principal to key. An approval signed by one of these keys is by
    ``ssh:<principal>`` (list that in the approvers above), whatever its header claims."""
    require_signature: bool = False
    """Every approval (and override) must be signed by an allowed signer (hybridops approve
    --sign-key); the header identity is then only a claim, shown beside the signer."""
    signature_max_age_s: float = Field(default=900, gt=0, le=86400)
    """A signature older than this (by its signing time, against the run's clock) is expired."""

    def refusal(
        self,
        runbook: str,
        who: str | None,
        starter: str | None,
        override: bool,
        aliases: Sequence[str] = (),
        action: str = "approve",
    ) -> str | None:
        """Why ``who`` may not approve ``runbook``'s run started by ``starter`` (None: may).
        ``aliases``: other identities of the same person (a signer's), for four eyes;
        ``action``: what is asked, as the messages say it (an operator's pause, retry, ...)."""
        if not who:
            return f"no identity: {action} with `hybridops {action}` (it sends the client's identity)"
        if who.startswith("os:") and not self.accept_unauthenticated:
            return f"{who} is not authenticated (no client certificate or API key); the policy requires one"
        if (who == starter or (starter is not None and starter in aliases)) and not self.allow_self_approval:
            return (
                f"{who} started this run and may not {action} it (four eyes: approvers.allow_self_approval)"
            )
        allowed = (self.override or getattr(self, runbook, [])) if override else getattr(self, runbook, [])
        if not allowed:
            return None
        members = {
            m for entry in allowed for m in self.groups.get(entry[6:], []) if entry.startswith("group:")
        }
        if who in allowed or who in members or "*" in allowed:
            return None
        what = "override a safety rule" if override else f"{action} a {runbook}"
        return f"{who} may not {what} (approvers.{'override' if override else runbook}: {', '.join(allowed)})"


class FailoverSizing(Strict):
    """How a failover sizes its target (issue 17 item 1)."""

    nodes: dict[str, int] = {}
    """The node count the target cluster's pool is scaled up to before promotion, by site or
    cloud name (``azure: 3``); a pool already larger is left as it is, a target not named keeps
    its size. The compensation scales it back to the size it had before the run."""

    @field_validator("nodes")
    @classmethod
    def _nodes(cls, value: dict[str, int]) -> dict[str, int]:
        for name, n in value.items():
            if n < 0:
                raise ValueError(f"nodes.{name}: {n} < 0")
        return value

    def for_target(self, site: str, cloud: str | None) -> int | None:
        """The size for ``site`` (its own name first, then its cloud's); None: keep its size."""
        if site in self.nodes:
            return self.nodes[site]
        return self.nodes.get(cloud) if cloud else None


class Policy(Strict):
    """The whole policy file."""

    version: int = 1
    constraints: Constraints = Constraints()
    budget: Budget = Budget()
    weights: Weights = Weights()
    strategy: Strategy = Strategy.BALANCED
    tie_break: list[str] = ["azure", "gcp"]
    """Order that settles exact ties (after the score): site or cloud names, earlier first;
    names not listed come after, alphabetically."""
    estimates: Estimates = Estimates()
    approval: Approval = Approval()
    safety: Safety = Safety()
    detection: Detection = Detection()
    approvers: Approvers = Approvers()
    operator: Operator = Operator()
    readiness: Readiness = Readiness()
    failover: FailoverSizing = FailoverSizing()

    @model_validator(mode="after")
    def _check(self) -> Policy:
        if len(set(self.tie_break)) != len(self.tie_break):
            raise ValueError("tie_break: names must not repeat")
        return self

    def digest(self) -> str:
        """A short, stable digest of the policy's content (for the evidence). A section added
        after runs were recorded counts only when it differs from its defaults, so the digest
        (and the decision ids built on it) of every recorded policy stays what it was."""
        canon = json.dumps(
            self.model_dump(mode="json", exclude=self.later_defaults()), sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(canon.encode()).hexdigest()[:16]

    def later_defaults(self) -> dict[str, Any]:
        """What was added after runs were recorded and still holds its default: excluded from
        digests (a ``model_dump`` exclude), so a recorded policy digests as it did."""
        out: dict[str, Any] = {
            name: True for name, default in LATER_SECTIONS.items() if getattr(self, name) == default
        }
        for section, later in LATER_FIELDS.items():
            if out.get(section) is True:
                continue  # the whole section holds its defaults: left out already
            fields = {f for f, default in later.items() if getattr(getattr(self, section), f) == default}
            if fields:
                out[section] = fields
        return out


LATER_SECTIONS: dict[str, BaseModel] = {
    "detection": Detection(),
    "operator": Operator(),
    "readiness": Readiness(),
    "failover": FailoverSizing(),
}
"""Sections added to the policy after runs were recorded, with their defaults."""
LATER_FIELDS: dict[str, dict[str, object]] = {
    "approvers": {"signers": {}, "require_signature": False, "signature_max_age_s": 900.0},
    "safety": {"agent_restart_timeout_s": 60.0},
    "detection": {"confirm_timeout_s": 0.25},
}
"""Fields added to a section after runs were recorded, with their defaults: approvers' (signed
approvals), safety's (the wait for a restarting agent), detection's (the silent primary's
shorter deadline)."""


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


def parse_policy(data: Any, source: str = "policy") -> Policy:
    """Validate policy data; errors name the key that is wrong."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    try:
        return Policy.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: {_describe(err)}") from None


def default_policy_path() -> Path:
    """``runbooks/policy.yaml`` of this checkout (or of the current directory)."""
    repo = Path(__file__).resolve().parents[1] / "runbooks" / "policy.yaml"
    return repo if repo.exists() else Path("runbooks/policy.yaml").absolute()


SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""PyYAML's safe loader on libyaml where PyYAML was built with it: the same safe constructor,
the file parsed in about 0.5 ms instead of 9 (more on a loaded host). A failover's plan and
signals steps each load the policy, before the first step that changes anything."""


def load_policy(path: Path | None = None) -> Policy:
    """Load and validate a policy file (the default one when ``path`` is None)."""
    path = path or default_policy_path()
    if not path.exists():
        raise ConfigError(f"no policy at {path} (inventory key 'policy')")
    try:
        data = yaml.load(path.read_text(), Loader=SAFE_LOADER)  # SAFE_LOADER: a safe loader
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return parse_policy(data, str(path))
