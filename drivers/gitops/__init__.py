"""GitOps: the driver interface, its errors, and the drivers (``argocd``, ``flux``, ``git``)."""

from drivers.gitops.base import GitOpsDriver
from drivers.gitops.errors import (
    GitOpsAppNotFound,
    GitOpsAuthFailed,
    GitOpsError,
    GitOpsNotReady,
    GitOpsRejected,
)
from drivers.gitops.registry import make_gitops_driver
from drivers.gitops.types import AppState, GitOpsResult

__all__ = [
    "AppState",
    "GitOpsAppNotFound",
    "GitOpsAuthFailed",
    "GitOpsDriver",
    "GitOpsError",
    "GitOpsNotReady",
    "GitOpsRejected",
    "GitOpsResult",
    "make_gitops_driver",
]
