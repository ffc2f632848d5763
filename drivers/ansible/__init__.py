"""Ansible: the runner that drives playbooks through ``ansible-runner``, streaming their events
into heartbeats and turning their recap into a :class:`PlaybookResult`, and its errors. The
playbooks and roles it runs are in ``infra/ansible/``."""

from drivers.ansible.errors import HostsUnreachable, PlaybookError, PlaybookFailed, PlaybookTimeout
from drivers.ansible.runner import AnsibleRunner, run_playbook
from drivers.ansible.types import FailedTask, HostRecap, PlaybookResult

__all__ = [
    "AnsibleRunner",
    "FailedTask",
    "HostRecap",
    "HostsUnreachable",
    "PlaybookError",
    "PlaybookFailed",
    "PlaybookResult",
    "PlaybookTimeout",
    "run_playbook",
]
