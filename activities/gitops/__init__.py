"""GitOps: the driver interface, its errors, and the drivers (``argocd``, ``flux``, ``git``)."""

from activities.gitops.base import GitOpsDriver
from activities.gitops.errors import (
    GitOpsAppNotFound,
    GitOpsAuthFailed,
    GitOpsError,
    GitOpsNotReady,
    GitOpsRejected,
)
from activities.gitops.registry import make_gitops_driver
from activities.gitops.types import AppState, GitOpsResult

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
