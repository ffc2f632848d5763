"""Alert routes: which alert starts which runbook, with which input.

A YAML file (``runbooks/alert-routes.yaml``, or the inventory's ``alerts.routes``) validated
when ``hybridops serve alerts`` starts, with errors that name the key: a route whose ``input``
the runbook would refuse fails the start-up, not the first alert at 3 a.m.

Nothing here does I/O but :func:`load_routes`; matching and workflow ids are pure functions,
so the unit tests cover them without a server.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hybridops.constants import ALERT_REQUESTER, Runbook, TaskQueue, WorkflowType
from hybridops.contracts.base import REASON_MAX
from hybridops.contracts.failover import FailoverInput
from hybridops.errors import ConfigError

ROUTES_FILE = Path("runbooks") / "alert-routes.yaml"
"""Where the routes live in a checkout, when the inventory's ``alerts.routes`` is absent."""

WORKFLOW_ID_PREFIX = "alert"
"""Workflow ids of production runbooks started by an alert: ``alert-<route>-<group>-<episode>``."""
DRILL_WORKFLOW_ID_PREFIX = "drill"
"""Workflow ids of drill runbooks started by an alert labelled ``drill="true"``."""
GROUP_HASH_LEN = 12
EPISODE_FORMAT = "%Y%m%dT%H%M%S"

RECEIVER_FIELDS = frozenset(
    {"incident_started_at", "reason", "requested_by", "require_approval", "only_if_primary_down"}
)
"""Input fields the receiver sets from the alert (and from ``auto``); a route may not set them."""

ALERT_DEFAULTS: dict[str, Any] = {"await_alert_resolve_s": 900.0}
"""Input an alert-started run gets unless its route says otherwise: a failover waits (after it
succeeded) up to 15 minutes for its alert to resolve, and records it."""

_ROUTE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")


@dataclass(frozen=True)
class RunbookSpec:
    """How the receiver starts one runbook."""

    workflow_type: WorkflowType
    input_model: type[BaseModel]
    task_queue: TaskQueue


RUNBOOKS: dict[str, RunbookSpec] = {
    Runbook.FAILOVER.value: RunbookSpec(WorkflowType.FAILOVER, FailoverInput, TaskQueue.CONTROL),
}
"""The runbooks an alert may start, by name. A new runbook (drill, burst) is one line here."""


def runbook_spec(name: str) -> RunbookSpec:
    """The spec of a known runbook; a ``ValueError`` naming the known ones otherwise."""
    try:
        return RUNBOOKS[name]
    except KeyError:
        raise ValueError(f"unknown runbook {name!r}; known: {sorted(RUNBOOKS)}") from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Route(_Strict):
    """One route: alerts whose labels match start ``runbook`` with ``input``."""

    name: str
    """Short, lower-case, ``a-z0-9-``: it is part of the workflow ids this route starts."""
    match: dict[str, str] = {}
    """Label to exact value; every pair must hold (a missing label is the empty string)."""
    match_re: dict[str, str] = {}
    """Label to regular expression, anchored at both ends (as Alertmanager does)."""
    runbook: str
    """A name from :data:`RUNBOOKS`."""
    input: dict[str, Any] = {}
    """The runbook's input, validated against its input model when the file loads. The
    receiver adds ``incident_started_at``, ``reason``, ``requested_by``, ``require_approval``."""
    auto: bool = False
    """Start without a human: ``require_approval=False``. Off by default: an alert-started
    failover waits at its approval gate."""
    drill_runbook: str | None = None
    """What an alert labelled ``drill="true"`` starts instead; nothing when absent. Never the
    production runbook."""
    drill_input: dict[str, Any] = {}
    """The drill runbook's input, validated like ``input``."""

    _patterns: dict[str, re.Pattern[str]] = {}

    @field_validator("name")
    @classmethod
    def _check_name(cls, v: str) -> str:
        if not _ROUTE_NAME.match(v):
            raise ValueError(
                "must be 1 to 48 characters of a-z, 0-9 and '-', starting with a letter or digit"
            )
        return v

    @field_validator("runbook", "drill_runbook")
    @classmethod
    def _check_runbook(cls, v: str | None) -> str | None:
        if v is not None:
            runbook_spec(v)
        return v

    @field_validator("match_re")
    @classmethod
    def _check_patterns(cls, v: dict[str, str]) -> dict[str, str]:
        for label, pattern in v.items():
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"{label}: not a regular expression: {err}") from None
        return v

    @model_validator(mode="after")
    def _check(self) -> Route:
        if not self.match and not self.match_re:
            raise ValueError("match: a route needs 'match' or 'match_re' (a catch-all is refused)")
        if self.drill_runbook is not None and self.drill_runbook == self.runbook:
            raise ValueError("drill_runbook: must not be the production runbook")
        _validate_input(self.runbook, self.input, "input")
        if self.drill_runbook is not None:
            _validate_input(self.drill_runbook, self.drill_input, "drill_input")
        elif self.drill_input:
            raise ValueError("drill_input: set without drill_runbook")
        if not self.auto and "require_approval" not in runbook_spec(self.runbook).input_model.model_fields:
            raise ValueError(f"auto: runbook {self.runbook!r} has no approval gate; set 'auto: true'")
        self._patterns = {label: re.compile(p) for label, p in self.match_re.items()}
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an alert with these labels belongs to this route."""
        for label, value in self.match.items():
            if labels.get(label, "") != value:
                return False
        return all(p.fullmatch(labels.get(label, "")) for label, p in self._patterns.items())

    def build_input(self, *, drill: bool, incident_started_at: datetime, reason: str) -> BaseModel:
        """The runbook's input for an alert: the route's input plus what the alert says."""
        runbook = self.drill_runbook if drill else self.runbook
        assert runbook is not None
        spec = runbook_spec(runbook)
        extra: dict[str, Any] = {
            "incident_started_at": incident_started_at,
            "reason": reason[:REASON_MAX],  # an alert's summary may be longer than an input holds
            "requested_by": f"{ALERT_REQUESTER}{self.name}",
            "require_approval": not self.auto,
            "only_if_primary_down": True,
        }
        fields = spec.input_model.model_fields
        defaults = {k: v for k, v in ALERT_DEFAULTS.items() if k in fields}
        data = {**defaults, **(self.drill_input if drill else self.input)}
        data.update({k: v for k, v in extra.items() if k in fields})
        return spec.input_model.model_validate(data)


def _validate_input(runbook: str, data: dict[str, Any], key: str) -> None:
    spec = runbook_spec(runbook)
    if taken := sorted(RECEIVER_FIELDS & data.keys()):
        raise ValueError(f"{key}.{taken[0]}: set by the receiver from the alert (use 'auto' for approval)")
    try:
        spec.input_model.model_validate(data)
    except ValidationError as err:
        e = err.errors()[0]
        loc = ".".join(str(p) for p in e["loc"])
        raise ValueError(f"{key}.{loc}: {e['msg']}") from None


class RoutesFile(_Strict):
    """The whole routes file: the first route (in file order) that matches wins."""

    routes: list[Route] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> RoutesFile:
        seen: set[str] = set()
        for route in self.routes:
            if route.name in seen:
                raise ValueError(f"routes: duplicate route name {route.name!r}")
            seen.add(route.name)
        return self

    def route_for(self, label_sets: Sequence[Mapping[str, str]]) -> Route | None:
        """The first route that matches any of the alerts' label sets."""
        for route in self.routes:
            if any(route.matches(labels) for labels in label_sets):
                return route
        return None


# --------------------------------------------------------------------------- ids


def group_hash(group_key: str) -> str:
    """A short, stable digest of Alertmanager's ``groupKey`` (which may be long and carry
    characters we would rather not put in an id)."""
    return hashlib.sha256(group_key.encode()).hexdigest()[:GROUP_HASH_LEN]


def episode(starts_at: datetime) -> str:
    """The incident's episode: its earliest ``startsAt``, in UTC, to the second."""
    if starts_at.tzinfo is None:
        starts_at = starts_at.replace(tzinfo=UTC)
    return starts_at.astimezone(UTC).strftime(EPISODE_FORMAT)


def group_prefix(route: str, group_key: str, *, drill: bool = False) -> str:
    """The part of the id shared by every episode of one alert group on one route."""
    kind = DRILL_WORKFLOW_ID_PREFIX if drill else WORKFLOW_ID_PREFIX
    return f"{kind}-{route}-{group_hash(group_key)}-"


def incident_workflow_id(route: str, group_key: str, started_at: datetime, *, drill: bool = False) -> str:
    """The workflow id of the one run an incident may start.

    ``alert-<route>-<sha256(groupKey)[:12]>-<yyyymmddThhmmss>``: the same alert group and
    episode give the same id, whichever receiver (or restart) sees the notification; Temporal's
    id policies then make a second start a no-op. Drills get ``drill-...``, so a drill can never
    take the id (and the slot) of a production run.
    """
    return group_prefix(route, group_key, drill=drill) + episode(started_at)


# --------------------------------------------------------------------------- loading


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = str(e["msg"]).removeprefix("Value error, ")
        # Our validators name the sub-key first ("input.target: ..."): join it to the location.
        head, sep, rest = msg.partition(": ")
        if e["type"] == "value_error" and sep and re.fullmatch(r"[\w.]+", head):
            parts.append(f"{loc}.{head}: {rest}" if loc else msg)
        else:
            parts.append(f"{loc or '(top level)'}: {msg}")
    return "; ".join(parts)


def parse_routes(data: Any, source: str = "alert routes") -> RoutesFile:
    """Validate routes data; errors name the key that is wrong."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with 'routes' at the top level")
    try:
        return RoutesFile.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: {_describe(err)}") from None


def default_routes_path() -> Path:
    """``runbooks/alert-routes.yaml`` of this checkout (or of the current directory)."""
    repo = Path(__file__).resolve().parents[2] / ROUTES_FILE
    return repo if repo.exists() else ROUTES_FILE.absolute()


def load_routes(path: Path | None = None) -> RoutesFile:
    """Load and validate a routes file (the default one when ``path`` is None)."""
    path = path or default_routes_path()
    if not path.exists():
        raise ConfigError(f"no alert routes at {path} (inventory key 'alerts.routes')")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return parse_routes(data, str(path))
