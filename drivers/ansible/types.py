"""Contracts of the Ansible runner (see hybridops/contracts/base.py for the rules: every model here may
be recorded in a history, so none carries a secret; the runner redacts every text it copies
from Ansible's events)."""

from __future__ import annotations

from pydantic import Field

from hybridops.contracts.base import Contract


class HostRecap(Contract):
    """One host's line of the play recap: how many tasks ended how."""

    host: str
    ok: int = 0
    """Tasks that ran and succeeded (changed ones included, as Ansible counts them)."""
    changed: int = 0
    """Tasks that changed something (in check mode: would have)."""
    failed: int = 0
    """Tasks that failed (failures a task ignores on purpose are not counted)."""
    unreachable: int = 0
    """Tasks that could not reach the host (Ansible's ``dark``)."""
    skipped: int = 0
    """Tasks skipped by a condition (or, in check mode, by the module)."""


class FailedTask(Contract):
    """A task that failed on a host, or could not reach it."""

    host: str
    task: str
    """The task's name as the playbook gives it."""
    message: str
    """What the module said (``msg``, else stderr), secrets redacted."""
    unreachable: bool = False
    """The host could not be reached (not the task's fault)."""


class PlaybookResult(Contract):
    """What a playbook run did, from its recap and its events."""

    playbook: str
    """The playbook's file name (``network-validation.yml``)."""
    check: bool = False
    """Run in check mode (``--check --diff``): nothing was changed."""
    status: str
    """ansible-runner's final status: ``successful``, ``failed``, ``timeout``, ``canceled``."""
    rc: int | None = None
    """``ansible-playbook``'s exit code."""
    changed: bool = False
    """Whether any task on any host changed (or, in check mode, would change) something."""
    hosts: dict[str, HostRecap] = Field(default_factory=dict)
    """The recap, by host name."""
    failed_tasks: list[FailedTask] = Field(default_factory=list)
    """Failed and unreachable tasks, in the order they happened."""
    seconds: float = 0.0

    @property
    def failed_hosts(self) -> list[str]:
        """Hosts with at least one failed task."""
        return sorted(h for h, r in self.hosts.items() if r.failed)

    @property
    def unreachable_hosts(self) -> list[str]:
        """Hosts that could not be reached."""
        return sorted(h for h, r in self.hosts.items() if r.unreachable)

    @property
    def ok(self) -> bool:
        """No host failed or was unreachable, and the run finished."""
        return self.status == "successful" and not self.failed_hosts and not self.unreachable_hosts
