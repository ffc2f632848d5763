"""Errors of the Packer runner, each carrying the ids it is about (template, command, builds).

Fatal: a template Packer rejects (retrying reads the same file), credentials a cloud refuses.
Retryable: ``packer init`` failing (plugins are downloaded: the network), a build that errored
(clouds throttle, time out, run out of capacity; the activity's retry policy bounds the
attempts), a command past its deadline.
"""

from __future__ import annotations

from drivers.packer.types import PackerArtifact
from hybridops.errors import FatalError, RetryableError


class PackerTemplateInvalid(FatalError):
    """``packer validate`` (or the start of a build) rejected the template or its variables;
    ``errors`` lists what Packer said (secrets redacted)."""

    def __init__(self, message: str, *, errors: list[str] | None = None, **ids: object) -> None:
        self.errors = list(errors or [])
        super().__init__(message, **ids)


class PackerAuthError(FatalError):
    """A builder could not authenticate with its cloud."""


class PackerInitFailed(RetryableError):
    """``packer init`` could not install the template's plugins."""


class PackerBuildFailed(RetryableError):
    """One or more builds errored. ``errors`` maps each failed build to what it said;
    ``artifacts`` has what the other builds produced (Packer keeps going with them)."""

    def __init__(
        self,
        message: str,
        *,
        errors: dict[str, list[str]],
        artifacts: list[PackerArtifact] | None = None,
        **ids: object,
    ) -> None:
        self.errors = {k: list(v) for k, v in errors.items()}
        self.artifacts = list(artifacts or [])
        super().__init__(message, **ids)


class PackerTimeout(RetryableError):
    """A Packer command ran past its deadline; it was interrupted (so it could clean up what it
    had created), then killed."""
