"""Contracts of ``BootstrapWorkflow`` (see hybridops/contracts/base.py for the rules: no secrets)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from hybridops.contracts.base import (
    ActivityResult,
    Actor,
    Contract,
    OperatorRecord,
    RunStatus,
    ShortText,
    StepOutcome,
    StepRecord,
)


class BootstrapStep(StrEnum):
    """The steps, in order. Each converges: run again, it changes nothing that is right."""

    VALIDATE_NETWORK = "validate_network"
    BUILD_IMAGES = "build_images"
    RKE2 = "rke2"
    JENKINS = "jenkins"
    GITOPS_ENROLL = "gitops_enroll"


class BootstrapInput(Contract):
    """Input of ``BootstrapWorkflow``. Every field is defaulted: ``{}`` starts a valid run."""

    dry_run: bool = False
    """Ansible in check mode, Packer validate only: what would change, changing nothing."""
    steps: list[BootstrapStep] = Field(default=list(BootstrapStep), max_length=2 * len(BootstrapStep))
    """The steps to converge, in order; all of them by default (at most 10 entries)."""
    reason: ShortText = "bootstrap"
    """Why this run was started, for the evidence (at most 1000 characters)."""
    requested_by: Actor = "unknown"
    """Who or what started it, for the evidence (at most 200 characters)."""


class BootstrapStepInput(Contract):
    step: BootstrapStep
    dry_run: bool = False


class BootstrapStepResult(ActivityResult):
    hosts: dict[str, dict[str, int]] = {}
    """Per host: ok, changed, failed, unreachable, skipped (the Ansible recap)."""
    artifacts: list[str] = []
    skipped: bool = False
    """The step has nothing to do here (images without a Packer template): it neither
    changed nor checked anything, and is recorded as ``skipped``."""

    def step_outcome(self) -> StepOutcome:
        return StepOutcome.SKIPPED if self.skipped else super().step_outcome()


class BootstrapPlanInput(Contract):
    pass


class BootstrapPlan(ActivityResult):
    placement: str
    queue_suffix: str = ""


class BootstrapResult(Contract):
    workflow_id: str
    run_id: str
    status: RunStatus
    runbook: str = "bootstrap"
    input: BootstrapInput
    steps: list[StepRecord] = []
    operator_actions: list[OperatorRecord] = []
    """Pauses, resumes, retries and skips, taken or refused: who, when, why (issue 20 item 4)."""
    started_at: datetime
    ended_at: datetime | None = None
    error: str | None = None
    evidence_dir: str | None = None


class BootstrapEvidenceInput(Contract):
    result: BootstrapResult
