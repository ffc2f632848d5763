"""The explicit table of GitOps drivers, imported lazily."""

from __future__ import annotations

from drivers.gitops.base import GitOpsDriver
from drivers.loader import load_driver
from hybridops.inventory import GitOpsKind, GitOpsSettings

DRIVERS: dict[GitOpsKind, str] = {
    GitOpsKind.ARGOCD: "drivers.gitops.argocd:ArgoCdDriver",
    GitOpsKind.FLUX: "drivers.gitops.flux:FluxDriver",
    GitOpsKind.GIT: "drivers.gitops.git:GitDriver",
}


def make_gitops_driver(settings: GitOpsSettings) -> GitOpsDriver:
    """The driver the inventory's ``gitops.driver`` names."""
    return load_driver(DRIVERS, settings.driver, "gitops.driver", GitOpsDriver, settings)
