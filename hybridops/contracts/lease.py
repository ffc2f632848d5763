"""The topology lease (``workflows/lease.py``): one runbook changes a database's topology at a time."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from hybridops.contracts.base import ActivityResult, Contract


class LeaseHolder(Contract):
    """The run that holds the lease on a database's topology."""

    workflow_id: str
    run_id: str = ""
    runbook: str = ""
    since: datetime | None = None


class LeaseState(Contract):
    """Input of ``TopologyLeaseWorkflow`` (and what it carries across continue-as-new)."""

    key: str
    check_s: float = Field(default=30.0, gt=0, le=3600)
    holder: LeaseHolder | None = None
    granted: int = 0
    """Leases granted so far (over every run of the lease workflow)."""


class LeaseRequest(Contract):
    """Argument of the lease's ``acquire`` Update, and input of ``acquire_lease``."""

    workflow_id: str = Field(min_length=1, max_length=400)
    run_id: str = Field(default="", max_length=100)
    runbook: str = Field(default="", max_length=40)
    wait_s: float = Field(default=0.0, ge=0, le=86400, allow_inf_nan=False)
    """How long to wait for a holder to release it; 0 refuses at once."""


class LeaseGrant(ActivityResult):
    """Answer of ``acquire``: granted, or refused naming who holds it."""

    granted: bool
    holder: LeaseHolder | None = None
    lease_id: str = ""


class HolderInput(Contract):
    """Input of ``lease_holder_open``: is this run still open?"""

    workflow_id: str
    run_id: str = ""


class HolderResult(ActivityResult):
    open: bool
    status: str = ""
