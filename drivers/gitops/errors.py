"""Errors of the GitOps drivers, each carrying the ids it is about.

They sit under :mod:`hybridops.errors`' tree, so the activity boundary maps them as it maps every
domain error: a refused credential or a missing application is fatal (retrying cannot help); an
API that failed or apps that did not become healthy in time are retryable (the calls converge).
"""

from __future__ import annotations

from hybridops.errors import FatalError, RetryableError


class GitOpsError(RetryableError):
    """The GitOps system failed transiently: a 5xx, a timeout, a refused connection, a push
    that lost a race."""


class GitOpsAuthFailed(FatalError):
    """The GitOps system refused the credentials (401) or the permission (403)."""


class GitOpsRejected(FatalError):
    """The GitOps system rejected a request as invalid (a 4xx other than 401, 403, 404)."""


class GitOpsAppNotFound(FatalError):
    """The GitOps object of an app does not exist, and the inventory gives no spec to create it."""


class GitOpsNotReady(RetryableError):
    """Apps did not become synced and healthy (or gone) before the deadline."""

    def __init__(self, message: str, not_ready: list[str], **ids: object) -> None:
        super().__init__(f"{message}: {'; '.join(not_ready)}", **ids)
        self.not_ready = not_ready
