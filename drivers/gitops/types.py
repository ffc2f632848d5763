"""Contracts of the GitOps drivers (see hybridops/contracts/base.py for the rules: every model here may be
recorded in a history, so none carries a secret)."""

from __future__ import annotations

from hybridops.contracts.base import Contract


class AppState(Contract):
    """One app on one cloud's cluster, as the GitOps system sees it."""

    name: str
    """The app (``netbox``), not the GitOps object's name (``burst-netbox-azure``)."""
    synced: bool
    """The cluster holds what the desired state says (for ``undeploy``: the app is gone)."""
    healthy: bool
    """Its workloads are healthy (for ``undeploy``: nothing of it is left)."""
    detail: str = ""
    """What is not synced or not healthy, in the GitOps system's own words."""


class GitOpsResult(Contract):
    """What a deploy, an undeploy or a status call found or did."""

    cloud: str
    changed: bool = False
    """Whether the call changed anything; false when the desired state already held."""
    apps: list[AppState] = []
    revision: str | None = None
    """The revision applied: a git commit sha, or Argo CD's / Flux's revision."""
    not_ready: list[str] = []
    """One line per app that is not where it should be, with the reason."""
