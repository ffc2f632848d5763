"""The explicit table of GitOps drivers, imported lazily."""

from __future__ import annotations

from activities.gitops.base import GitOpsDriver
from hybridops.drivers import load_driver
from hybridops.inventory import GitOpsKind, GitOpsSettings

DRIVERS: dict[GitOpsKind, str] = {
    GitOpsKind.ARGOCD: "activities.gitops.argocd:ArgoCdDriver",
    GitOpsKind.FLUX: "activities.gitops.flux:FluxDriver",
    GitOpsKind.GIT: "activities.gitops.git:GitDriver",
}


def make_gitops_driver(settings: GitOpsSettings) -> GitOpsDriver:
    """The driver the inventory's ``gitops.driver`` names."""
    return load_driver(DRIVERS, settings.driver, "gitops.driver", GitOpsDriver, settings)
