"""What the Terraform runner returns. Every model may be recorded in a history: none holds a
secret (counts and resource addresses only; sensitive outputs are left out)."""

from __future__ import annotations

from pydantic import Field

from hybridops.contracts.base import Contract


class PlanSummary(Contract):
    """A saved plan, summarised from ``terraform show -json``: what applying it would do."""

    plan_file: str
    """The saved plan, in the runner's work directory (only :meth:`TerraformRunner.apply` reads
    it; it may hold sensitive values, so it is mode 0600 and removed once applied)."""
    workspace: str
    destroy: bool = False
    """A destroy plan."""
    create: list[str] = Field(default_factory=list)
    """Addresses of resources to create."""
    update: list[str] = Field(default_factory=list)
    """Addresses of resources to update in place."""
    delete: list[str] = Field(default_factory=list)
    """Addresses of resources to delete."""
    replace: list[str] = Field(default_factory=list)
    """Addresses of resources to delete and create again."""

    @property
    def changes(self) -> int:
        """How many resources the plan changes (the total an apply's progress counts to)."""
        return len(self.create) + len(self.update) + len(self.delete) + len(self.replace)

    @property
    def counts(self) -> dict[str, int]:
        """``{"create": n, "update": n, "delete": n, "replace": n}``."""
        return {
            "create": len(self.create),
            "update": len(self.update),
            "delete": len(self.delete),
            "replace": len(self.replace),
        }


class ApplyResult(Contract):
    """What an apply or a destroy did, from Terraform's ``change_summary``."""

    workspace: str
    added: int = 0
    changed: int = 0
    removed: int = 0
    completed: list[str] = Field(default_factory=list)
    """Addresses whose change completed, in order."""
    seconds: float = 0.0
