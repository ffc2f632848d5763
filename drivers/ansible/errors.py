"""Errors of the Ansible runner, each carrying the ids it is about (playbook, hosts).

Fatal: a task failed on a host (the playbook or the host is wrong; running it again does the
same), the playbook could not run at all (syntax, a missing role). Retryable: hosts that could
not be reached (a network blip, a host still booting), a run past its deadline.
"""

from __future__ import annotations

from drivers.ansible.types import FailedTask, PlaybookResult
from hybridops.errors import FatalError, RetryableError


class PlaybookFailed(FatalError):
    """A task failed on one or more hosts. ``hosts`` names them, ``failed_tasks`` says which
    task and what it said (secrets redacted); ``result`` is the whole recap."""

    def __init__(
        self,
        message: str,
        *,
        hosts: list[str],
        failed_tasks: list[FailedTask] | None = None,
        result: PlaybookResult | None = None,
        **ids: object,
    ) -> None:
        self.hosts = list(hosts)
        self.failed_tasks = list(failed_tasks or [])
        self.result = result
        super().__init__(message, **ids)


class HostsUnreachable(RetryableError):
    """Ansible could not reach one or more hosts (and no task failed on any other)."""

    def __init__(
        self,
        message: str,
        *,
        hosts: list[str],
        result: PlaybookResult | None = None,
        **ids: object,
    ) -> None:
        self.hosts = list(hosts)
        self.result = result
        super().__init__(message, **ids)


class PlaybookError(FatalError):
    """``ansible-playbook`` could not run the playbook (a syntax error, a missing role or
    file, a bad inventory): no task failed, the run did. The message has the end of its
    output (secrets redacted)."""


class PlaybookTimeout(RetryableError):
    """The run went past its deadline and was stopped (its process group killed)."""
