"""Terraform: the runner that drives the ``terraform`` (or ``tofu``) CLI through its
machine-readable interfaces, its result types and its errors. The root configurations it runs
are in ``infra/terraform/`` (``azure``, ``gcp``, ``lab``)."""

from drivers.terraform.errors import (
    TerraformAuthError,
    TerraformFailed,
    TerraformStateLocked,
    TerraformTimeout,
    UnexpectedDeletion,
)
from drivers.terraform.runner import TerraformRunner, address_allowed, summarise_plan
from drivers.terraform.types import ApplyResult, PlanSummary

__all__ = [
    "ApplyResult",
    "PlanSummary",
    "TerraformAuthError",
    "TerraformFailed",
    "TerraformRunner",
    "TerraformStateLocked",
    "TerraformTimeout",
    "UnexpectedDeletion",
    "address_allowed",
    "summarise_plan",
]
