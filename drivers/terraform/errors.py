"""Errors of the Terraform runner, each carrying the ids it is about.

They sit under :mod:`hybridops.errors`' tree, so the activity boundary maps them as it maps
every domain error. Retryable: a state lock held by another run (it is released when that run
ends), a timeout, any other failure of the tool (cloud APIs throttle and time out; the activity's
retry policy bounds the attempts). Fatal: credentials the provider refuses (retrying cannot
fix them), a plan that would delete what the caller did not allow.
"""

from __future__ import annotations

from hybridops.errors import FatalError, RetryableError


class TerraformStateLocked(RetryableError):
    """Another operation holds the state lock. Carries the lock's id, who holds it and since
    when, as Terraform reports them (``terraform force-unlock <lock_id>`` is for humans)."""

    def __init__(
        self,
        message: str,
        *,
        lock_id: str | None = None,
        who: str | None = None,
        created: str | None = None,
        operation: str | None = None,
        **ids: object,
    ) -> None:
        self.lock_id = lock_id
        self.who = who
        self.created = created
        self.operation = operation
        super().__init__(message, lock_id=lock_id, who=who, created=created, **ids)


class TerraformAuthError(FatalError):
    """A provider (or the state backend) refused or could not find its credentials."""


class UnexpectedDeletion(FatalError):
    """A plan would delete or replace resources the caller did not allow; nothing was applied
    and the plan was discarded. ``addresses`` names them."""

    def __init__(self, message: str, *, addresses: list[str], **ids: object) -> None:
        self.addresses = list(addresses)
        super().__init__(message, **ids)


class TerraformFailed(RetryableError):
    """Terraform exited non-zero for another reason. The message has the command (never a
    secret) and the summary of its error diagnostics (secrets redacted)."""

    def __init__(self, message: str, *, diagnostics: list[str] | None = None, **ids: object) -> None:
        self.diagnostics = list(diagnostics or [])
        super().__init__(message, **ids)


class TerraformTimeout(RetryableError):
    """A Terraform command ran past its deadline; it was interrupted (so it could release its
    state lock), then killed."""
