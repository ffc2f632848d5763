"""Errors of the backup drivers and the scratch server, each carrying the ids it is about.

They sit under :mod:`hybridops.errors`' tree, so the activity boundary maps them as it maps every
domain error: a missing backup is fatal (retrying cannot make it exist); a backup tool that
failed or timed out is retryable (object storage hiccups are the common cause).
"""

from __future__ import annotations

from hybridops.errors import FatalError, PreconditionFailed, RetryableError


class BackupNotFound(FatalError):
    """The backup asked for does not exist (or no backup fits the asked target time)."""


class BackupToolFailed(RetryableError):
    """``pg_basebackup``, ``wal-g`` or another tool exited non-zero. The message has the
    command (never a secret) and the last lines of its stderr (secrets redacted)."""


class BackupToolTimeout(RetryableError):
    """A backup tool ran past its deadline; its whole process group was killed."""


class RestoreTargetNotEmpty(PreconditionFailed):
    """A restore was pointed at a directory that holds something it did not put there."""


class ScratchServerFailed(FatalError):
    """The scratch server did not start, or did not finish recovery in time. The message has
    the last lines of its log."""
